#!/usr/bin/env bash
# Benchmark proxy.read_from: GET through the proxy over 3 primaries with
# one replica each, read_from: any against read_from: primary, in one
# run (the two proxies alternate line by line over the same servers).
#
#   bench/proxy/replicas.sh       # from the repository root
#
# Environment: N (GETs per -P 1 line, default 100000), NP (per -P 16
# line, default 400000), CLIENTS (default 50), BASE_PORT (default 17200;
# uses BASE_PORT..BASE_PORT+7). Needs redis-server, redis-benchmark,
# redis-cli and go.
set -euo pipefail

N=${N:-100000}
NP=${NP:-400000}
CLIENTS=${CLIENTS:-50}
BASE_PORT=${BASE_PORT:-17200}
KEYSPACE=100000

for bin in redis-server redis-benchmark redis-cli go; do
	command -v "$bin" >/dev/null || { echo "bench-replicas: $bin not found" >&2; exit 1; }
done
NAME=bench-replicas
. "$(dirname "$0")/lib.sh"

PRIMARIES=($BASE_PORT $((BASE_PORT + 1)) $((BASE_PORT + 2)))
REPLICAS=($((BASE_PORT + 3)) $((BASE_PORT + 4)) $((BASE_PORT + 5)))
P_PRIMARY=$((BASE_PORT + 6)) P_ANY=$((BASE_PORT + 7))
for p in "${PRIMARIES[@]}"; do
	redis-server --bind 127.0.0.1 --port "$p" --save '' --appendonly no --dir "$WORK" \
		--repl-diskless-sync-delay 0 --logfile "$WORK/redis-$p.log" &
	PIDS+=($!)
done
for p in "${PRIMARIES[@]}"; do wait_port "$p"; done
for i in 0 1 2; do
	redis-server --bind 127.0.0.1 --port "${REPLICAS[$i]}" --save '' --appendonly no --dir "$WORK" \
		--replicaof 127.0.0.1 "${PRIMARIES[$i]}" --logfile "$WORK/redis-${REPLICAS[$i]}.log" &
	PIDS+=($!)
done
for p in "${REPLICAS[@]}"; do wait_port "$p"; done

(cd "$ROOT" && go build -o "$WORK/proxybench" ./bench/proxy/cmd)
SHARDS="127.0.0.1:${PRIMARIES[0]},127.0.0.1:${PRIMARIES[1]},127.0.0.1:${PRIMARIES[2]}"
"$WORK/proxybench" serve -listen "127.0.0.1:$P_PRIMARY" -allow-writes -read-from primary -shards "$SHARDS" >"$WORK/p1.log" 2>&1 &
PIDS+=($!)
"$WORK/proxybench" serve -listen "127.0.0.1:$P_ANY" -read-from any -shards "$SHARDS" >"$WORK/p2.log" 2>&1 &
PIDS+=($!)
wait_port "$P_PRIMARY"
wait_port "$P_ANY"

# Fill the keyspace through the proxy, wait until the replicas have it
# and the proxy has them in rotation (it checks every 2 s).
redis-benchmark -h 127.0.0.1 -p "$P_PRIMARY" -c "$CLIENTS" -d 64 -r "$KEYSPACE" -P 16 -n $((KEYSPACE * 3)) -t set -q >/dev/null 2>&1
for p in "${PRIMARIES[@]}"; do redis-cli -p "$p" WAIT 1 10000 >/dev/null; done
sleep 5

# bench port P n → "rps p50 p99"
bench() {
	redis-benchmark -h 127.0.0.1 -p "$1" -c "$CLIENTS" -d 64 -r "$KEYSPACE" -P "$2" -n "$3" --csv -q -t get 2>/dev/null |
		awk -F'","' 'NR==2 { gsub(/"/, "", $0); split($0, f, ","); print f[2], f[5], f[7] }'
}
gets() { # port → GET calls on each server, space separated
	for p in "${PRIMARIES[@]}" "${REPLICAS[@]}"; do
		redis-cli -p "$p" INFO commandstats | awk -F'[=,:]' '/^cmdstat_get:/ { print $3; found=1 } END { if (!found) print 0 }'
	done | paste -sd' '
}

echo "read_from benchmark: redis-benchmark -c $CLIENTS -d 64 -r $KEYSPACE -t get, 3 primaries + 3 replicas (redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s | %-26s | %-26s | %-8s\n' "" "primary rps p50 p99 (ms)" "any rps p50 p99 (ms)" "any/prim"
printf -- '-%.0s' $(seq 1 80); echo
for pipe in 1 16; do
	n=$N
	[ "$pipe" = 16 ] && n=$NP
	read -r pr pp50 pp99 <<<"$(bench "$P_PRIMARY" "$pipe" "$n")"
	before=$(gets)
	read -r ar ap50 ap99 <<<"$(bench "$P_ANY" "$pipe" "$n")"
	after=$(gets)
	printf '%-10s | %10s %6s %6s   | %10s %6s %6s   | %7s\n' "GET -P $pipe" "$pr" "$pp50" "$pp99" "$ar" "$ap50" "$ap99" \
		"$(awk -v a="$ar" -v b="$pr" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')"
	echo "  any: GETs per server (3 primaries, 3 replicas): $(paste -d- <(tr ' ' '\n' <<<"$after") <(tr ' ' '\n' <<<"$before") | bc | paste -sd' ')"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

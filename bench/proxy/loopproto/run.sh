#!/usr/bin/env bash
# Measure the event-loop prototype (loopproto on internal/evloop) against
# nutcracker and the proxy over the same 3 shards, in one run: rps, p99 and
# CPU per request (the process's user+system time over each redis-benchmark
# run ÷ requests) for GET at -c 50 -P 1, -c 500 -P 1 and -c 50 -P 16.
#
#   bench/proxy/loopproto/run.sh
#
# Environment: N (requests per -P 1 line, default 100000), NP (per -P 16
# line, default 400000), ROUNDS (times each line is run, default 1),
# BASE_PORT (default 17200; uses BASE_PORT..BASE_PORT+10), GNET (optional:
# a binary taking the same flags built on another loop library, such as
# the gnet prototype of issue 19; adds targets gnet1 and gnet2).
# Targets: nutcracker; proxy (bench/proxy/cmd, today's goroutine proxy);
# loop1 (1 loop, GOMAXPROCS=1); loop1g2 (1 loop, GOMAXPROCS=2); loop2
# (2 loops, GOMAXPROCS=2); gnet1 and gnet2 likewise with GNET.
set -euo pipefail

N=${N:-100000}
NP=${NP:-400000}
ROUNDS=${ROUNDS:-1}
BASE_PORT=${BASE_PORT:-17200}
KEYSPACE=100000

for bin in redis-server redis-benchmark redis-cli nutcracker go; do
	command -v "$bin" >/dev/null || { echo "loopproto: $bin not found" >&2; exit 1; }
done
NAME=loopproto
. "$(dirname "$0")/../lib.sh"

S1=$BASE_PORT S2=$((BASE_PORT + 1)) S3=$((BASE_PORT + 2))
declare -A PORT PID
PORT[nutcracker]=$((BASE_PORT + 3)) PORT[proxy]=$((BASE_PORT + 4))
PORT[loop1]=$((BASE_PORT + 5)) PORT[loop1g2]=$((BASE_PORT + 6)) PORT[loop2]=$((BASE_PORT + 7))
TARGETS=(nutcracker proxy loop1 loop1g2 loop2)
if [ -n "${GNET:-}" ]; then
	TARGETS+=(gnet1 gnet2)
	PORT[gnet1]=$((BASE_PORT + 9)) PORT[gnet2]=$((BASE_PORT + 10))
fi

for p in $S1 $S2 $S3; do
	redis-server --bind 127.0.0.1 --port "$p" --save '' --appendonly no --dir "$WORK" \
		--logfile "$WORK/redis-$p.log" &
	PIDS+=($!)
done
for p in $S1 $S2 $S3; do wait_port "$p"; done

(cd "$(dirname "$0")" && go build -o "$WORK/loopproto" . && go build -o "$WORK/proxybench" ../cmd)
ulimit -n 32768 2>/dev/null || ulimit -n "$(ulimit -Hn)"
SHARDS="127.0.0.1:$S1,127.0.0.1:$S2,127.0.0.1:$S3"

nutcracker_conf "$WORK/nutcracker.yml" "${PORT[nutcracker]}" "$S1" "$S2" "$S3"
nutcracker -c "$WORK/nutcracker.yml" -o "$WORK/nutcracker.log" -s $((BASE_PORT + 8)) &
PID[nutcracker]=$!
"$WORK/proxybench" serve -listen "127.0.0.1:${PORT[proxy]}" -allow-writes -shards "$SHARDS" >"$WORK/proxy.log" 2>&1 &
PID[proxy]=$!
GOMAXPROCS=1 "$WORK/loopproto" -listen "127.0.0.1:${PORT[loop1]}" -shards "$SHARDS" -loops 1 >"$WORK/loop1.log" 2>&1 &
PID[loop1]=$!
GOMAXPROCS=2 "$WORK/loopproto" -listen "127.0.0.1:${PORT[loop1g2]}" -shards "$SHARDS" -loops 1 >"$WORK/loop1g2.log" 2>&1 &
PID[loop1g2]=$!
GOMAXPROCS=2 "$WORK/loopproto" -listen "127.0.0.1:${PORT[loop2]}" -shards "$SHARDS" -loops 2 >"$WORK/loop2.log" 2>&1 &
PID[loop2]=$!
if [ -n "${GNET:-}" ]; then
	GOMAXPROCS=1 "$GNET" -listen "127.0.0.1:${PORT[gnet1]}" -shards "$SHARDS" -loops 1 >"$WORK/gnet1.log" 2>&1 &
	PID[gnet1]=$!
	GOMAXPROCS=2 "$GNET" -listen "127.0.0.1:${PORT[gnet2]}" -shards "$SHARDS" -loops 2 >"$WORK/gnet2.log" 2>&1 &
	PID[gnet2]=$!
fi
for t in "${TARGETS[@]}"; do
	PIDS+=("${PID[$t]}")
	wait_port "${PORT[$t]}"
done

# Fill the keyspace through both placements (nutcracker hashes keys
# itself; the others place them by slot), so GETs find values.
for t in nutcracker loop1; do
	redis-benchmark -h 127.0.0.1 -p "${PORT[$t]}" -c 50 -P 16 -d 64 -r "$KEYSPACE" -n 300000 -t set -q >/dev/null
done

# bench target clients P n → "rps p99 cpu"
bench() {
	local t=$1 clients=$2 pipe=$3 n=$4 t0 t1 out
	t0=$(ticks "${PID[$t]}")
	out=$(redis-benchmark -h 127.0.0.1 -p "${PORT[$t]}" -c "$clients" -d 64 -r "$KEYSPACE" -P "$pipe" -n "$n" --csv -q -t get 2>/dev/null |
		awk -F'","' 'NR==2 { gsub(/"/, "", $0); split($0, f, ","); print f[2], f[7] }')
	t1=$(ticks "${PID[$t]}")
	echo "$out $(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')"
}

echo "loopproto benchmark: redis-benchmark GET -d 64 -r $KEYSPACE, 3 shards, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cells: rps / p99 ms / CPU per request µs"
echo
printf '%-16s' ""
for t in "${TARGETS[@]}"; do printf ' | %-22s' "$t"; done
echo
for round in $(seq 1 "$ROUNDS"); do
	for line in "-c 50 -P 1" "-c 500 -P 1" "-c 50 -P 16"; do
		read -r _ clients _ pipe <<<"$line"
		n=$N
		[ "$pipe" = 1 ] || n=$NP
		printf '%-16s' "$line"
		for t in "${TARGETS[@]}"; do
			read -r rps p99 cpu <<<"$(bench "$t" "$clients" "$pipe" "$n")"
			printf ' | %9s %5s %6s' "$rps" "$p99" "$cpu"
		done
		echo
	done
done

#!/usr/bin/env bash
# Benchmark the replicaof proxy against one shard directly and against
# twemproxy (nutcracker) over the same 3 shards, in one run, and measure
# the proxy's RSS with 10,000 idle clients. The proxy runs twice: with 1
# event loop (proxy.loops: 1, the default) and with one per CPU (LOOPS,
# default nproc). For the proxy and nutcracker
# each line also reports CPU per request: the process's user+system time
# (utime+stime in /proc/<pid>/stat) over the redis-benchmark run divided
# by the requests, in µs.
#
#   bench/proxy/run.sh            # from the repository root (make bench-proxy)
#
# Environment: N (requests per -P 1 line, default 100000), NP (per -P 16
# line, default 400000), CLIENTS (default 50; the "-c 500" line uses 500),
# IDLE (idle clients, default 10000), LOOPS (the second proxy's loops,
# default nproc; 0 serves every client on a goroutine), BASE_PORT
# (default 17100; uses BASE_PORT..BASE_PORT+6).
# Needs redis-server, redis-benchmark, redis-cli and nutcracker
# (apt-get install -y redis-server redis-tools nutcracker).
set -euo pipefail

N=${N:-100000}
NP=${NP:-400000}
CLIENTS=${CLIENTS:-50}
IDLE=${IDLE:-10000}
BASE_PORT=${BASE_PORT:-17100}
LOOPS=${LOOPS:-$(nproc)}
KEYSPACE=100000

if ! command -v nutcracker >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
	echo "bench-proxy: installing nutcracker (twemproxy) with apt-get" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nutcracker >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nutcracker >/dev/null; }
	service nutcracker stop >/dev/null 2>&1 || true
fi
for bin in redis-server redis-benchmark redis-cli nutcracker go; do
	command -v "$bin" >/dev/null || { echo "bench-proxy: $bin not found (apt-get install -y redis-server redis-tools nutcracker)" >&2; exit 1; }
done

NAME=bench-proxy
. "$(dirname "$0")/lib.sh"

S1=$BASE_PORT S2=$((BASE_PORT + 1)) S3=$((BASE_PORT + 2))
PROXY=$((BASE_PORT + 3)) TWEM=$((BASE_PORT + 4)) PROXYN=$((BASE_PORT + 6))

for p in $S1 $S2 $S3; do
	redis-server --bind 127.0.0.1 --port "$p" --save '' --appendonly no --dir "$WORK" \
		--logfile "$WORK/redis-$p.log" &
	PIDS+=($!)
done
for p in $S1 $S2 $S3; do wait_port "$p"; done

(cd "$ROOT" && go build -o "$WORK/proxybench" ./bench/proxy/cmd)
ulimit -n 32768 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$WORK/proxybench" serve -listen "127.0.0.1:$PROXY" -allow-writes -loops 1 \
	-shards "127.0.0.1:$S1,127.0.0.1:$S2,127.0.0.1:$S3" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=($PROXY_PID)
"$WORK/proxybench" serve -listen "127.0.0.1:$PROXYN" -allow-writes -loops "$LOOPS" \
	-shards "127.0.0.1:$S1,127.0.0.1:$S2,127.0.0.1:$S3" >"$WORK/proxyn.log" 2>&1 &
PROXYN_PID=$!
PIDS+=($PROXYN_PID)

nutcracker_conf "$WORK/nutcracker.yml" "$TWEM" "$S1" "$S2" "$S3"
nutcracker -c "$WORK/nutcracker.yml" -o "$WORK/nutcracker.log" -s $((BASE_PORT + 5)) &
TWEM_PID=$!
PIDS+=($TWEM_PID)
wait_port "$PROXY"
wait_port "$PROXYN"
wait_port "$TWEM"

# MGET keys: ten keys that spread over the shards through the proxy (and
# through nutcracker's own hashing); for the direct line they all live on
# the one shard.
MKEYS=(mk:0 mk:1 mk:2 mk:3 mk:4 mk:5 mk:6 mk:7 mk:8 mk:9)
for port in $S1 $PROXY $PROXYN $TWEM; do
	args=()
	for k in "${MKEYS[@]}"; do args+=("$k" "$(printf 'v%.0s' $(seq 1 64))"); done
	redis-cli -p "$port" MSET "${args[@]}" >/dev/null
done

# bench pid port P clients n args… → "rps p50 p99 cpu" where cpu is pid's
# CPU time over the run per request in µs ("-" without a pid)
bench() {
	local pid=$1 port=$2 pipe=$3 clients=$4 n=$5 t0=0 t1=0 out
	shift 5
	[ "$pid" = - ] || t0=$(ticks "$pid")
	out=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -d 64 -r "$KEYSPACE" -P "$pipe" -n "$n" --csv -q "$@" 2>/dev/null |
		awk -F'","' 'NR==2 { gsub(/"/, "", $0); split($0, f, ","); print f[2], f[5], f[7] }')
	[ "$pid" = - ] || t1=$(ticks "$pid")
	echo "$out $(awk -v p="$pid" -v d=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN { if (p == "-") print "-"; else printf "%.1f", d * 1e6 / hz / n }')"
}

LINES=("SET -P 1" "GET -P 1" "GET -P 1 -c 500" "SET -P 16" "GET -P 16" "MGET 10 keys -P 1")
declare -A R
run_line() { # index
	local line=${LINES[$1]} pipe=1 n=$N clients=$CLIENTS args
	case "$line" in
	*"-P 16") pipe=16 n=$NP ;;
	esac
	case "$line" in
	*"-c 500") clients=500 ;;
	esac
	for target in direct nutcracker proxy proxyn; do
		local port pid
		case $target in
		direct) port=$S1 pid=- ;;
		nutcracker) port=$TWEM pid=$TWEM_PID ;;
		proxy) port=$PROXY pid=$PROXY_PID ;;
		proxyn) port=$PROXYN pid=$PROXYN_PID ;;
		esac
		case "$line" in
		SET*) args=(-t set) ;;
		GET*) args=(-t get) ;;
		MGET*) args=(MGET "${MKEYS[@]}") ;;
		esac
		R[$1,$target]=$(bench "$pid" "$port" "$pipe" "$clients" "$n" "${args[@]}")
	done
}

echo "replicaof proxy benchmark: redis-benchmark -c $CLIENTS (unless the line says) -d 64 -r $KEYSPACE, 3 shards (redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')), $(nproc) CPUs"
echo "direct = one shard, no proxy; nutcracker = twemproxy 0.5 (crc16/modula) over the same 3 shards"
echo "cpu = the process's user+system time over the run per request, µs"
echo
printf '%-18s | %-26s | %-33s | %-33s | %-33s | %-7s | %-7s | %-7s\n' "" "direct rps p50 p99 (ms)" "nutcracker rps p50 p99 cpu" \
	"proxy loops=1 rps p50 p99 cpu" "proxy loops=$LOOPS rps p50 p99 cpu" "1/dir" "1/nut" "$LOOPS/nut"
printf -- '-%.0s' $(seq 1 180); echo
for i in "${!LINES[@]}"; do
	run_line "$i"
	read -r dr dp50 dp99 _ <<<"${R[$i,direct]}"
	read -r nr np50 np99 nc <<<"${R[$i,nutcracker]}"
	read -r pr pp50 pp99 pc <<<"${R[$i,proxy]}"
	read -r qr qp50 qp99 qc <<<"${R[$i,proxyn]}"
	printf '%-18s | %10s %6s %6s   | %10s %6s %6s %6s   | %10s %6s %6s %6s   | %10s %6s %6s %6s   | %6s  | %6s  | %6s\n' "${LINES[$i]}" \
		"$dr" "$dp50" "$dp99" "$nr" "$np50" "$np99" "$nc" "$pr" "$pp50" "$pp99" "$pc" "$qr" "$qp50" "$qp99" "$qc" \
		"$(awk -v a="$pr" -v b="$dr" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')" \
		"$(awk -v a="$pr" -v b="$nr" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')" \
		"$(awk -v a="$qr" -v b="$nr" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')"
done
echo

rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
kill -USR1 "$PROXY_PID"
sleep 1
BEFORE=$(rss "$PROXY_PID")
"$WORK/proxybench" idle -addr "127.0.0.1:$PROXY" -n "$IDLE" >"$WORK/idle.log" 2>&1 &
IDLE_PID=$!
PIDS+=($IDLE_PID)
for _ in $(seq 1 600); do
	grep -q "idle clients open" "$WORK/idle.log" 2>/dev/null && break
	if ! kill -0 "$IDLE_PID" 2>/dev/null; then cat "$WORK/idle.log" >&2; exit 1; fi
	sleep 0.1
done
# Idle clients give their read buffers back after 2s without a command;
# then the proxy returns freed memory to the OS at once (SIGUSR1), so the
# number is the steady state, not a peak the scavenger still holds.
sleep 3
kill -USR1 "$PROXY_PID"
sleep 1
AFTER=$(rss "$PROXY_PID")
CONNECTED=$(redis-cli -p "$PROXY" INFO clients | awk -F: '/connected_clients/ { print $2 }' | tr -d '\r')
echo "proxy RSS: $((BEFORE / 1024)) MB after the benchmark, $((AFTER / 1024)) MB with $IDLE idle clients ($CONNECTED connected):" \
	"$(awk -v a="$AFTER" -v b="$BEFORE" -v n="$IDLE" 'BEGIN { printf "%.1f KB per idle client", (a - b) / n }')"

# Sourced by the bench/proxy scripts after they set NAME (the prefix of
# their messages): ROOT is the repository, WORK a temporary directory,
# and every pid added to PIDS is killed, and WORK removed, on exit.
# ticks and HZ measure a process's CPU time.

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() { # port
	for _ in $(seq 1 200); do
		redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "$NAME: nothing answers on port $1" >&2
	exit 1
}

HZ=$(getconf CLK_TCK)
# ticks pid → the process's user+system CPU time so far, in clock ticks
# (1/HZ s): fields 14 and 15 of /proc/<pid>/stat, counted after the ")"
# that ends the command name.
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# nutcracker_conf file listen_port shard_port... writes a twemproxy config
# that places keys like Redis Cluster over 3 shards (crc16 % shards), one
# connection per shard.
nutcracker_conf() {
	local file=$1 listen=$2 i=0
	shift 2
	{
		printf 'bench:\n  listen: 127.0.0.1:%s\n  hash: crc16\n  distribution: modula\n' "$listen"
		printf '  redis: true\n  auto_eject_hosts: false\n  server_connections: 1\n  servers:\n'
		for p in "$@"; do
			i=$((i + 1))
			printf '    - 127.0.0.1:%s:1 s%d\n' "$p" "$i"
		done
	} >"$file"
}

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

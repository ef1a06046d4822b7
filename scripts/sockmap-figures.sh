#!/bin/sh
# The sockmap engine's figures, side by side with a baseline in one run:
# one connection, one message in flight, 64 B and 64 KiB messages.
#
#   scripts/sockmap-figures.sh [BASELINE_ENGINE] [ROUNDS] [SECS]
#
# Each round runs every size against both servers, alternating, so that
# background load hits both alike; report the medians.  With PIN=1 (the
# default) the server runs on CPU 1 and the client on CPU 0, as a client on
# another core or machine would; PIN=0 lets the scheduler place them.
# Needs root (the sockmap engine) and `make build/helpers/pingpong`.
set -eu
B=${B:-build}
BASE=${1:-epoll}
ROUNDS=${2:-5}
SECS=${3:-3}
PIN=${PIN:-1}
SRV=""; CLI=""
[ "$PIN" = 1 ] && SRV="taskset -c 1" && CLI="taskset -c 0"
tmp=$(mktemp -d)
pids=""
for eng in "$BASE" sockmap; do
	$SRV "$B/echosrv" --engine "$eng" --listen 127.0.0.1:0 \
		--port-file "$tmp/$eng.port" --trace 0 2>/dev/null &
	pids="$pids $!"
done
trap 'kill $pids 2>/dev/null; rm -rf "$tmp"' EXIT
for i in $(seq 50); do
	[ -s "$tmp/$BASE.port" ] && [ -s "$tmp/sockmap.port" ] && break
	sleep 0.1
done
for r in $(seq "$ROUNDS"); do
	for size in 64 65536; do
		for eng in "$BASE" sockmap; do
			port=$(cut -d: -f2 "$tmp/$eng.port")
			echo "$eng round=$r $($CLI "$B/helpers/pingpong" 127.0.0.1 "$port" $size "$SECS")"
		done
	done
done | tee "$tmp/out"
echo "medians:"
for size in 64 65536; do
	for eng in "$BASE" sockmap; do
		grep "^$eng .* size=$size " "$tmp/out" | sed 's/.*msgs\/s=\([0-9]*\) MB\/s=\([0-9.]*\) p50_us=\([0-9.]*\)/\1 \2 \3/' |
			sort -n | awk -v e="$eng" -v s="$size" '{a[NR]=$0} END {split(a[int((NR+1)/2)], m, " ");
				printf "  %-8s size=%-6s msgs/s=%s MB/s=%s p50_us=%s\n", e, s, m[1], m[2], m[3]}'
	done
done

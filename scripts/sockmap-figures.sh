#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# The sockmap engine's figures from issue 7, side by side with the
# benchmark's baseline epoll loop (bench/baseline_epoll.c) and the epoll
# engine in one run: one connection, one message in flight, 64 B and 64 KiB.
#
#   scripts/sockmap-figures.sh [ROUNDS] [SECS]      (root; after `make`)
#
# Rounds alternate the servers so background load hits them alike; the
# medians are printed at the end.  As in `make bench`, servers run on CPU 0
# and echosrv-bench on CPU 1 (BENCH_SERVER_CPU, BENCH_CLIENT_CPU).
set -eu
B=${B:-build}
ROUNDS=${1:-5}
SECS=${2:-3}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
tmp=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
taskset -c "$SCPU" "$B/bench-baseline" 127.0.0.1:0 "$tmp/baseline.port" >/dev/null &
pids="$pids $!"
for eng in epoll sockmap; do
	taskset -c "$SCPU" "$B/echosrv" --engine "$eng" --listen 127.0.0.1:0 \
		--port-file "$tmp/$eng.port" --trace 0 2>/dev/null &
	pids="$pids $!"
done
for i in $(seq 50); do
	[ -s "$tmp/baseline.port" ] && [ -s "$tmp/epoll.port" ] && [ -s "$tmp/sockmap.port" ] && break
	sleep 0.1
done
for r in $(seq "$ROUNDS"); do
	for size in 64 65536; do
		for srv in baseline epoll sockmap; do
			res=$(taskset -c "$CCPU" "$B/echosrv-bench" -a "$(head -1 "$tmp/$srv.port")" \
				-c 1 -p 1 -s $size -d "$SECS" -w 0.5 --json)
			msgs=$(echo "$res" | sed 's/.*"messages_per_second": *\([0-9.]*\).*/\1/')
			mbs=$(echo "$res" | sed 's/.*"bytes_per_second": *\([0-9.]*\).*/\1/' |
				awk '{printf "%.1f", $1 / 1e6}')
			p50=$(echo "$res" | sed 's/.*"p50": *\([0-9.]*\).*/\1/')
			echo "$srv size=$size round=$r msgs/s=$msgs MB/s=$mbs p50_us=$p50"
		done
	done
done | tee "$tmp/out"
echo "medians over $ROUNDS rounds:"
for size in 64 65536; do
	for srv in baseline epoll sockmap; do
		grep "^$srv size=$size " "$tmp/out" |
			sed 's/.*msgs\/s=\([0-9.]*\) MB\/s=\([0-9.]*\) p50_us=\([0-9.]*\)/\1 \2 \3/' |
			sort -n | awk -v s="$srv" -v z="$size" '{a[NR]=$0} END {
				split(a[int((NR+1)/2)], m, " ");
				printf "  %-8s size=%-6s msgs/s=%.0f MB/s=%.1f p50_us=%s\n", s, z, m[1], m[2], m[3]}'
	done
done

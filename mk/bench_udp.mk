# SPDX-License-Identifier: GPL-2.0-only
# The UDP yardstick: a plain recvmmsg/sendmmsg loop (bench/baseline_udp.c),
# what `make bench`'s UDP cells and the tests of echosrv-bench --udp
# (tools/bench_udp.c, part of echosrv-bench: mk/bench.mk) measure against.
all: $(O)/bench-baseline-udp
integration: $(O)/bench-baseline-udp
$(O)/bench-baseline-udp: $(O)/bench/baseline_udp.o
	$(CC) $(LDFLAGS) -o $@ $^

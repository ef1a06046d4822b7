# SPDX-License-Identifier: GPL-2.0-only
# echosrv-bench-udp, the UDP load generator (tools/bench_udp.c; docs/udp.md).
BENCH_UDP_OBJ := $(addprefix $(O)/tools/,bench_udp.o hist.o)

all: $(O)/echosrv-bench-udp
integration: $(O)/echosrv-bench-udp

$(O)/echosrv-bench-udp: $(BENCH_UDP_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^

# The UDP yardstick: a plain recvmmsg/sendmmsg loop (bench/baseline_udp.c).
all: $(O)/bench-baseline-udp
$(O)/bench-baseline-udp: $(O)/bench/baseline_udp.o
	$(CC) $(LDFLAGS) -o $@ $^

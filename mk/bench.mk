# SPDX-License-Identifier: GPL-2.0-only
# echosrv-bench, the baseline server and `make bench` (see bench/README.md).

BENCH_OBJ := $(addprefix $(O)/tools/,bench.o bench_opts.o bench_out.o bench_setup.o \
	bench_loop.o bench_churn.o bench_proxy.o bench_udp.o bench_udp_out.o cpustat.o \
	proctree.o pattern.o hist.o)

# The JSON names the tool's version and commit; both change with a commit.
BENCH_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
$(O)/tools/bench_out.o $(O)/tools/bench_opts.o: $(O)/version
$(O)/tools/bench_out.o $(O)/tools/bench_opts.o: CPPFLAGS += \
	-DBENCH_VERSION='"$(VERSION)"' -DBENCH_COMMIT='"$(BENCH_COMMIT)"'

all: $(O)/echosrv-bench $(O)/bench-baseline
integration: $(O)/echosrv-bench $(O)/bench-baseline

$(O)/echosrv-bench: $(BENCH_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/bench-baseline: $(O)/bench/baseline_epoll.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The histogram's unit test links the histogram too (the generic unit rule
# links only src/); an extra prerequisite here joins the pattern rule's $^.
$(O)/tests/test_hist: $(O)/tools/hist.o
$(O)/tests/unit/test_hist.o: CPPFLAGS += -Itools
$(O)/tests/test_cpustat: $(O)/tools/cpustat.o
$(O)/tests/unit/test_cpustat.o: CPPFLAGS += -Itools

# BENCH_QUICK=1 for the short matrix; BENCH_ENGINES=epoll,io_uring to choose
# engines; BENCH_SERVER_ARGS="--busy-poll" passed to every echosrv started.
.PHONY: bench
bench: $(O)/echosrv $(O)/echosrv-bench $(O)/bench-baseline $(O)/bench-baseline-udp
	@sh scripts/deps.sh bench
	$(PYTHON) bench/run.py --build $(O)

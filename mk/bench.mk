# SPDX-License-Identifier: GPL-2.0-only
# echosrv-bench, the baseline server and `make bench` (see bench/README.md).

BENCH_OBJ := $(addprefix $(O)/tools/,bench.o bench_setup.o bench_loop.o pattern.o hist.o)

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

# BENCH_QUICK=1 for the short matrix; BENCH_ENGINES=epoll,io_uring to choose
# engines; BENCH_SERVER_ARGS="--busy-poll" passed to every echosrv started.
.PHONY: bench
bench: $(O)/echosrv $(O)/echosrv-bench $(O)/bench-baseline
	@sh scripts/deps.sh bench
	$(PYTHON) bench/run.py --build $(O)

# SPDX-License-Identifier: GPL-2.0-only
# Scale, soak, fuzzing and valgrind targets (issue 6).  None of these is part
# of `make check`; each is bounded in time.  See docs/reliability.md.
#
#   make scale     19,000 connections per engine: memory per connection,
#                  descriptors given back, accept rate (SCALE_CONNS=N)
#   make soak      mixed load against one server for SOAK_SECONDS (600)
#   make fuzz      each libFuzzer harness for FUZZ_SECONDS (60)
#   make valgrind-check  integration suite with echosrv under memcheck

.PHONY: scale soak fuzz fuzz-build valgrind-check

SCALE_CONNS ?= 19000
scale: all $(O)/helpers/connhold
	@sh scripts/deps.sh test
	ECHOSRV_BUILD=$(O) $(PYTHON) tests/integration/scaling.py --conns $(SCALE_CONNS) $(SCALE_ARGS)

SOAK_SECONDS ?= 600
soak: all
	@sh scripts/deps.sh test
	ECHOSRV_BUILD=$(O) SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) tests/soak/soak.py $(SOAK_ARGS)

# The integration suite with every echosrv under valgrind's memcheck
# (conftest.py honours ECHOSRV_WRAPPER); a report makes echosrv exit 99 and
# the test fail.  An optimised build without sanitizers, as valgrind wants.
#
# Engines: epoll only.  Valgrind 3.19 does not treat io_uring_enter as a
# blocking call, so a worker waiting in it holds valgrind's one big lock and
# the other threads never run (the io_uring engine hangs); where the
# no_uring helper exists it wraps valgrind, so that `--engine auto` falls
# back to epoll as it does under a seccomp filter.  io_uring's memory
# safety is covered by ASan/UBSan in `make check`.  The sockmap tests are
# left out too: valgrind 3.19 reports libbpf's bpf() attributes as
# uninitialised (its padding), and sockmap's data path is in the kernel,
# out of memcheck's sight anyway.
#
# Left out: the scale test (it starts its own servers, and 19,000
# connections would take minutes under valgrind); the tests that give
# echosrv a tiny descriptor limit (valgrind keeps descriptors of its own
# below it and closes accepted sockets that land above its share, which
# those tests would see as lost connections; the same goes for the metrics
# and probe tests that run descriptors out, and process_max_fds differs by
# valgrind's share); the RSS and load-bound tests (a thousand reloads,
# 200,000 spoofed UDP sources, a full UDP send queue), which measure the
# process or need its speed; and the attached USDT probe
# test (valgrind runs its own translation of the code, so a uprobe in the
# binary never fires and its trap kills the process).
# VALGRIND_PYTEST_ARGS narrows the run further.
VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite --show-leak-kinds=definite \
            --track-fds=no --trace-children=no --vgdb=no
VALGRIND_PREFIX := $(if $(wildcard tests/helpers/no_uring.c),$(CURDIR)/$(O)/helpers/no_uring )
VALGRIND_SKIP := not scale and not descriptor_exhaustion and not leaves_room \
                 and not attached_probe and not sockmap and not pauses_on_emfile \
                 and not beyond_the_descriptor_limit and not descriptors_run_out \
                 and not out_of_descriptors and not known_sequence \
                 and not thousand_reloads and not full_send_queue and not spoofed_sources
valgrind-check: all $(HELPERS)
	@sh scripts/deps.sh valgrind
	@command -v valgrind >/dev/null || { echo "valgrind-check: needs valgrind (scripts/deps.sh valgrind)"; exit 1; }
	ECHOSRV_BUILD=$(O) ECHOSRV_ENGINES=epoll ECHOSRV_TIMEOUT_SCALE=4 \
		ECHOSRV_WRAPPER="$(VALGRIND_PREFIX)$(VALGRIND)" \
		$(PYTEST) tests/integration -k "$(VALGRIND_SKIP)" $(VALGRIND_PYTEST_ARGS)

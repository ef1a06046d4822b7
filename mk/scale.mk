# Scale, soak, fuzzing and valgrind targets (issue 6).  None of these is part
# of `make check`; each is bounded in time.  See docs/reliability.md.
#
#   make scale     19,000 connections per engine: memory per connection,
#                  descriptors given back, accept rate (SCALE_CONNS=N)
#   make soak      mixed load against one server for SOAK_SECONDS (600)
#   make fuzz      each libFuzzer harness for FUZZ_SECONDS (60)
#   make valgrind-check  integration suite with echosrv under memcheck

.PHONY: scale soak fuzz fuzz-build valgrind-check

$(O)/connhold: tests/helpers/connhold.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDLIBS)

integration: $(O)/connhold

SCALE_CONNS ?= 19000
scale: all $(O)/connhold
	ECHOSRV_BUILD=$(O) $(PYTHON) tests/integration/scaling.py --conns $(SCALE_CONNS) $(SCALE_ARGS)

SOAK_SECONDS ?= 600
soak: all
	ECHOSRV_BUILD=$(O) SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) tests/soak/soak.py $(SOAK_ARGS)

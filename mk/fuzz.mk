# SPDX-License-Identifier: GPL-2.0-only
# Fuzzing (issue 6): libFuzzer harnesses in fuzz/, seed corpora in
# fuzz/corpus/<harness>/.
#
#   make fuzz FUZZ_SECONDS=60   run each harness that long (clang, libFuzzer,
#                               ASan+UBSan); exits non-zero on any crash and
#                               leaves the input in build/fuzz/crash-*
#   make fuzz-replay            (part of `make unit`) the kept corpora through
#                               the same harnesses built with $(CC) and $(SAN)
#
# New inputs found while fuzzing go to build/fuzz/corpus-<harness>/, not into
# the repository; copy a crash into fuzz/corpus/<harness>/ once it is fixed.

FUZZ_HARNESSES := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS   ?= 60
FUZZ_CC        ?= clang
FUZZ_O         := build/fuzz
FUZZ_FLAGS     := -fsanitize=address,undefined -fno-sanitize-recover=all \
                  -fno-omit-frame-pointer -g -O1
# Only the parsers and what they call: the engines, BPF and the service
# libraries have nothing to do with text parsing and would tie fuzzing to
# their build steps.
FUZZ_SRC       := $(addprefix src/core/,config.c config_file.c config_diff.c acl.c addr.c sbuf.c trace.c logq.c safefile.c proxy.c) src/ops/ctl_parse.c
FUZZ_CORE_OBJ  := $(FUZZ_SRC:%.c=$(FUZZ_O)/%.o)

# The sources are held to -Werror by the gcc build; clang's extra warnings
# about them are shown here but do not stop a fuzzing run.
$(FUZZ_O)/src/%.o: src/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) -std=gnu11 $(filter-out -Werror,$(WARN)) -fno-strict-aliasing $(FUZZ_FLAGS) \
		-fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_O)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(FUZZ_CORE_OBJ)
	$(FUZZ_CC) $(CPPFLAGS) -Ifuzz -std=gnu11 $(WARN) $(FUZZ_FLAGS) -fsanitize=fuzzer \
		-o $@ $< $(FUZZ_CORE_OBJ) -lpthread

fuzz-build: $(FUZZ_HARNESSES:%=$(FUZZ_O)/fuzz_%)

fuzz:
	@sh scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@set -e; for h in $(FUZZ_HARNESSES); do \
		mkdir -p $(FUZZ_O)/corpus-$$h; \
		echo "== fuzz $$h for $(FUZZ_SECONDS)s"; \
		$(FUZZ_O)/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-timeout=10 -rss_limit_mb=2048 -artifact_prefix=$(FUZZ_O)/crash-$$h- \
			$(FUZZ_O)/corpus-$$h fuzz/corpus/$$h 2>$(FUZZ_O)/$$h.log || \
			{ tail -50 $(FUZZ_O)/$$h.log; echo "fuzz: $$h crashed"; exit 1; }; \
		grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' \
			$(FUZZ_O)/$$h.log | sed "s/^/  $$h /"; \
	done

# Replay: the same harnesses as plain programs, under the build's sanitizers.
$(O)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/replay.c fuzz/fuzz.h $(CORE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Ifuzz $(CFLAGS) $(LDFLAGS) -o $@ fuzz/fuzz_$*.c fuzz/replay.c \
		$(CORE_OBJ) $(LDLIBS)

fuzz-replay: $(FUZZ_HARNESSES:%=$(O)/fuzz/replay_%)
	@set -e; for h in $(FUZZ_HARNESSES); do \
		printf "== replay fuzz/corpus/%s: " $$h; \
		$(O)/fuzz/replay_$$h fuzz/corpus/$$h/*; \
	done

unit: fuzz-replay
.PHONY: fuzz fuzz-build fuzz-replay
-include $(wildcard $(FUZZ_O)/src/*/*.d)

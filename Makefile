# SPDX-License-Identifier: GPL-2.0-only
# echosrv build.  Binaries land in $(O)/: build/ for the normal build,
# build/san-<list>/ for a sanitizer build (make SAN=address,undefined).
#
#   make            build echosrv, echosrvctl, echosrv-bench (strict warnings)
#   make run        build and serve on [::]:40007 in the foreground
#   make check      the whole test suite (unit + integration, every engine,
#                   under ASan+UBSan, and the multi-worker cases under TSan)
#   make bench      the standard benchmark matrix (see bench/README.md)
#   make install    PREFIX=/usr/local DESTDIR= (make uninstall: the same, removed)
#   make hardening-check  the binaries carry PIE, RELRO, BIND_NOW, stack
#                   protector and FORTIFY (make check runs it)
#   make layers     src/'s layers hold: no upward include, no call circle
#                   (scripts/layers.py; make check runs it)
#   make deb        the Debian package into build/deb/, checked by lintian
#                   (mk/deb.mk, debian/)
#   make image      the OCI image (buildah); make check-systemd, check-image,
#                   check-kube: the deployment checks (mk/deploy.mk)
# make run installs the packages building needs, make check the test tools
# too (scripts/deps.sh; NO_DEPS=1 skips that).

# The version: `git describe` in a git tree, the VERSION file otherwise
# (scripts/version.sh); make VERSION=... overrides both.
VERSION  := $(shell sh scripts/version.sh)
ifeq ($(VERSION),)
$(error no version: scripts/version.sh printed nothing (is VERSION missing?))
endif
PREFIX   ?= /usr/local
DESTDIR  ?=
SAN      ?=
PYTHON   ?= /usr/bin/python3
comma    := ,
O        := build$(if $(SAN),/san-$(subst $(comma),-,$(SAN)))

CC       ?= cc
OPT      ?= -O2
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wundef -Wvla -Wno-unused-parameter
COMMIT   := $(shell sh scripts/version.sh --commit)
CPPFLAGS += -D_GNU_SOURCE -DECHOSRV_VERSION='"$(VERSION)"' -DECHOSRV_COMMIT='"$(COMMIT)"' -Isrc
CFLAGS   += -std=gnu11 $(OPT) -g $(WARN) -fno-strict-aliasing
ifneq ($(SAN),)
CFLAGS   += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SAN)
endif

# Hardened by default (`make hardening-check` verifies the binaries):
# stack protector, position-independent executables, full RELRO with
# BIND_NOW, and _FORTIFY_SOURCE=2.  FORTIFY needs optimisation (glibc warns
# without, and -Werror stops the build), so OPT=-O0 leaves it out; and the
# sanitizer builds leave it out too: it turns memcpy, read, snprintf and the
# like into their __*_chk forms, which the sanitizer runtimes do not all
# intercept, so ASan and TSan would see less of what they are there to see.
# HARDEN= (empty) builds without any of it.
HARDEN   ?= 1
ifneq ($(HARDEN),)
CFLAGS   += -fstack-protector-strong -fPIE
LDFLAGS  += -pie -Wl,-z,relro,-z,now
ifeq ($(SAN),)
ifneq ($(filter -O -O1 -O2 -O3 -Os -Og -Ofast,$(OPT)),)
CFLAGS   += -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2
endif
endif
endif
LDLIBS   += -lpthread

# Every layer's sources (docs/architecture.md): main.c is the program, the
# rest links into echosrv and into the unit tests and fuzz replays.
SRC_DIRS := src/core src/server src/engine src/engine/uring src/engine/sockmap src/ops
CORE_SRC := $(wildcard $(SRC_DIRS:%=%/*.c))
CORE_OBJ := $(CORE_SRC:%.c=$(O)/%.o)
DEPS     := $(wildcard $(O)/*/*.d $(O)/*/*/*.d $(O)/*/*/*/*.d $(O)/*/*/*/*/*.d)

BINS     := $(O)/echosrv

.PHONY: all run check check-sockmap unit integration deps deps-test deps-all clean install hardening-check layers
.SECONDARY:
all: $(BINS)

# Debian packages, only the missing ones (scripts/deps.sh; NO_DEPS=1 skips):
# `deps` what building and running need, `deps-test` the test tools too,
# `deps-all` everything any target here uses (CI).
deps:
	@sh scripts/deps.sh build
deps-test:
	@sh scripts/deps.sh test
deps-all:
	@sh scripts/deps.sh all

$(O)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(O)/echosrv: $(O)/src/main.o $(CORE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The objects that print the version are rebuilt when it changes (a commit,
# a local edit): $(O)/version holds the one they were built with.
$(O)/version: FORCE
	@mkdir -p $(@D)
	@echo '$(VERSION) $(COMMIT)' | cmp -s - $@ || echo '$(VERSION) $(COMMIT)' > $@
$(addprefix $(O)/src/,main.o ops/metrics.o ops/metrics_render.o ops/report.o) $(O)/tools/echosrvctl.o: $(O)/version
.PHONY: FORCE

run: deps all
	$(O)/echosrv --trace error,info

# --- tests -----------------------------------------------------------------
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/%)

$(O)/tests/%: $(O)/tests/unit/%.o $(CORE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# Small programs the integration tests run (fault injection and the like).
# tests/helpers/preload_*.c are LD_PRELOAD shims: shared objects, built
# without the sanitizers (the sanitized binary's runtime serves them).
PRELOAD_SRC := $(wildcard tests/helpers/preload_*.c)
HELPERS  := $(patsubst tests/helpers/%.c,$(O)/helpers/%,$(filter-out $(PRELOAD_SRC),$(wildcard tests/helpers/*.c))) \
            $(patsubst tests/helpers/%.c,$(O)/helpers/%.so,$(PRELOAD_SRC))
$(O)/helpers/preload_%.so: tests/helpers/preload_%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -std=gnu11 -O2 -g $(WARN) -fPIC -shared -o $@ $< -ldl
$(O)/helpers/%: tests/helpers/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS)

# Integration tests start the real binaries from $(O).
# -rs: the summary says why each skipped test was skipped.
PYTEST   := $(PYTHON) -m pytest -p no:cacheprovider -rs
integration: $(BINS) $(HELPERS)
	ECHOSRV_BUILD=$(O) ECHOSRV_ENGINES=$(ECHOSRV_ENGINES) $(PYTEST) tests/integration $(PYTEST_ARGS)

# The plain build's binaries carry every hardening feature (scripts/
# hardening-check.sh reads them with readelf and names what is missing).
HARDENED_BINS := $(O)/echosrv $(O)/echosrvctl $(O)/echosrv-bench
hardening-check: $(HARDENED_BINS)
	sh scripts/hardening-check.sh $(if $(SAN),--no-fortify) $(HARDENED_BINS)

# The layers of src/ (docs/architecture.md): include arrows one way, and no
# two object files that call each other (scripts/layers.py).
layers: $(BINS)
	$(PYTHON) scripts/layers.py --objects $(O)

# The whole suite: ASan+UBSan over everything, then TSan over the cases that
# run several workers (the only place threads share anything), then the
# build without sanitizers over the cases that measure the process itself
# (RSS), which a sanitizer's allocator would falsify.
check: deps-test
	$(MAKE) all hardening-check layers rules-check
	$(MAKE) SAN=address,undefined unit integration
	$(MAKE) SAN=thread integration PYTEST_ARGS="-m workers"
	$(MAKE) integration PYTEST_ARGS="-m plain"

# The sockmap engine's suite alone: every integration case under --engine
# sockmap plus its own tests (`check` runs them too, with the other engines).
check-sockmap: deps-test
	$(MAKE) SAN=address,undefined integration ECHOSRV_ENGINES=sockmap

clean:
	rm -rf build

# Each part of the project that has build rules of its own (the benchmark,
# operations tooling, BPF programs) keeps them in mk/NAME.mk.
-include $(wildcard mk/*.mk)
-include $(DEPS)

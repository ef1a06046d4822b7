# SPDX-License-Identifier: GPL-2.0-only
# The sockmap engine's BPF program: compiled with clang for the BPF target
# and embedded in echosrv (src/engine/sockmap/bpf.c includes the object with
# .incbin), so the binary needs no file at run time.
BPF_CLANG  ?= clang
BPF_CFLAGS := -target bpf -O2 -g -Wall -Werror \
              -I/usr/include/$(shell $(CC) -dumpmachine)
BPF_OBJ    := $(O)/bpf/echo.bpf.o

$(BPF_OBJ): bpf/echo.bpf.c src/engine/sockmap/abi.h
	@mkdir -p $(@D)
	$(BPF_CLANG) $(BPF_CFLAGS) -c -o $@ $<

$(O)/src/engine/sockmap/bpf.o: $(BPF_OBJ)
$(O)/src/engine/sockmap/bpf.o: CPPFLAGS += -DSM_BPF_OBJ='"$(BPF_OBJ)"'

LDLIBS += -lbpf

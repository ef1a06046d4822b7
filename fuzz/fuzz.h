/* SPDX-License-Identifier: GPL-2.0-only */
/* Shared by the libFuzzer harnesses in fuzz/: each defines
 * LLVMFuzzerTestOneInput(), built either with clang's libFuzzer (make fuzz)
 * or with replay.c as an ordinary program that runs the kept corpus under
 * the sanitizers in make check, so every crash found stays a test. */
#ifndef ECHOSRV_FUZZ_H
#define ECHOSRV_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a C string in a buffer of exactly its size + 1, so that
 * ASan catches a parser reading past the terminator. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond))                                                   \
			__builtin_trap();                                      \
	} while (0)

#endif

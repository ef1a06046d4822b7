/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * pattern.c - builds the shared stream table of pattern.h once, before the
 * load threads start; after that it is only read.
 */
#include "pattern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const uint8_t *pattern;

/* splitmix64: a fixed, fast, well-mixed sequence; any good one would do. */
static uint64_t next(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

int pattern_init(void)
{
	size_t len = PATTERN_PERIOD + PATTERN_TAIL;
	uint8_t *p = malloc(len);
	uint64_t seed = UINT64_C(0xec4053), v;

	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < PATTERN_PERIOD; i += 8) {
		v = next(&seed);
		memcpy(p + i, &v, PATTERN_PERIOD - i < 8 ? PATTERN_PERIOD - i : 8);
	}
	memcpy(p + PATTERN_PERIOD, p, PATTERN_TAIL);
	pattern = p;
	return 0;
}

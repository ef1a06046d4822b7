/* SPDX-License-Identifier: GPL-2.0-only */
/* The io_uring engine's environment knobs, read once at start.
 *
 * They are for tests and benchmarks (the engine's defaults are what a
 * deployment wants), but a knob set to something it does not mean used to
 * be taken as some other number: ECHOSRV_URING_SPIN_US=-1 wrapped to a
 * spin of 584,000 years.  So every value is parsed here, strictly (decimal
 * digits only, within bounds, nothing after), before engine selection, and
 * a bad one is a configuration error, whatever --engine says: exit 2, also
 * under --check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/uring/uring.h"
#include "core/util.h"

struct uring_env uring_env = { .splice = 1, .spin_us = 100, .direct = 1, .udp_mshot = 1 };

/* Decimal digits only, at most max; *end is where the digits stopped. */
static bool parse_dec(const char *s, unsigned long max, unsigned long *out, const char **end)
{
	unsigned long v = 0;
	const char *p = s;

	/* max is at most 2^32, so v * 10 + 9 cannot wrap before the test. */
	for (; *p >= '0' && *p <= '9'; p++)
		if ((v = v * 10 + (unsigned long)(*p - '0')) > max)
			return false;
	*out = v;
	*end = p;
	return p != s;
}

static bool whole(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	const char *end;

	return parse_dec(s, hi, out, &end) && !*end && *out >= lo;
}

static bool parse_bufs(const char *s)
{
	unsigned long n, size = 0;
	const char *end;

	if (!parse_dec(s, BUFS_MAX, &n, &end) || n < 1)
		return false;
	if (*end == 'x' && !whole(end + 1, 64, 1u << 20, &size))
		return false;
	if (*end && *end != 'x')
		return false;
	uring_env.bufs_count = (uint32_t)n;
	uring_env.bufs_size = (uint32_t)size;
	return true;
}

/* One row per knob: a number from 0 to max into *target, or (max 0) the
 * buffer pool's COUNT[xSIZE]. */
static const struct knob {
	const char *name;
	uint32_t max;
	uint32_t *target;
	const char *want;
} knobs[] = {
	{ "ECHOSRV_URING_SPLICE", 1, &uring_env.splice, "0 or 1" },
	{ "ECHOSRV_URING_SPIN_US", 1000000, &uring_env.spin_us, "microseconds, 0 to 1000000" },
	{ "ECHOSRV_URING_BUFS", 0, NULL,
	  "COUNT or COUNTxSIZE, COUNT 1 to 32768, SIZE 64 to 1048576" },
	{ "ECHOSRV_URING_DIRECT", 1, &uring_env.direct, "0 or 1" },
	{ "ECHOSRV_URING_NO_LIMIT", 1, &uring_env.no_limit, "0 or 1" },
	{ "ECHOSRV_URING_UDP_MSHOT", 1, &uring_env.udp_mshot, "0 or 1" },
};

int uring_env_load(char *why, size_t len)
{
	for (unsigned i = 0; i < ARRAY_SIZE(knobs); i++) {
		const struct knob *k = &knobs[i];
		const char *s = getenv(k->name);
		unsigned long v = 0;

		if (!s)
			continue;
		if (k->max ? whole(s, 0, k->max, &v) : parse_bufs(s)) {
			if (k->target)
				*k->target = (uint32_t)v;
			continue;
		}
		snprintf(why, len, "%s=%s: not a valid value (%s)", k->name, s, k->want);
		return -EINVAL;
	}
	return 0;
}

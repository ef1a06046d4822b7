/* SPDX-License-Identifier: GPL-2.0-only */
/* Small helpers shared by every file: time, sizes, and the errno convention.
 *
 * Functions in echosrv return 0 or -errno; ERR() turns a libc failure into
 * that form at the call site so error paths read the same everywhere. */
#ifndef ECHOSRV_UTIL_H
#define ECHOSRV_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* -errno of the last failed libc call. */
#define ERR() (-errno)

#define NSEC_PER_SEC  1000000000ULL
#define NSEC_PER_MSEC 1000000ULL

/* Monotonic clock in nanoseconds; all timers and durations use it. */
static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* A number from a /proc or /sys file (a sysctl), or dflt when the file is
 * missing or does not start with one: such knobs vary by kernel. */
static inline long read_sysctl_long(const char *path, long dflt)
{
	FILE *f = fopen(path, "re");
	long v = dflt;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

#endif

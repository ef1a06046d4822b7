/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * pattern.h - the byte stream each benchmark connection sends and checks.
 *
 * Connection i sends the infinite stream P[(base_i + k) mod PATTERN_PERIOD],
 * k = 0, 1, 2, ..., where P is one pseudo-random table built at start and
 * base_i = i * PATTERN_STRIDE mod PATTERN_PERIOD.  The period is prime, so
 * the bases of up to PATTERN_PERIOD connections are all different, and two
 * different shifts of a random table disagree almost everywhere: a byte that
 * is flipped, dropped, duplicated, reordered or delivered to the wrong
 * connection shows up as a mismatch.  The table is PATTERN_TAIL bytes longer
 * than the period (its start repeated), so any run of up to PATTERN_TAIL
 * bytes of any stream is contiguous in memory: sending is send() straight
 * from the table and checking is one memcmp(), with nothing generated or
 * stored per connection.  A prime period also keeps the stream from lining
 * up with any power-of-two buffer size in the server under test.
 */
#ifndef ECHOSRV_PATTERN_H
#define ECHOSRV_PATTERN_H

#include <stdint.h>

#define PATTERN_PERIOD  UINT64_C(4194301)     /* prime, about 4 MiB */
#define PATTERN_STRIDE  UINT64_C(2654435)     /* spreads bases over the table */
#define PATTERN_TAIL    (256u * 1024)

extern const uint8_t *pattern;

/* Builds the table; 0 or -ENOMEM. */
int pattern_init(void);

static inline uint64_t pattern_base(uint32_t conn)
{
	return (uint64_t)conn * PATTERN_STRIDE % PATTERN_PERIOD;
}

/* Byte k of the stream that starts at base, and PATTERN_TAIL after it. */
static inline const uint8_t *pattern_at(uint64_t base, uint64_t k)
{
	return pattern + (base + k) % PATTERN_PERIOD;
}

#endif

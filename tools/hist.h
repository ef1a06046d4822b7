/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * hist.h - log-linear latency histogram for echosrv-bench.
 *
 * Values are nanoseconds.  Each power-of-two range is split into HIST_SUB
 * equal buckets, so a bucket is never wider than 1/HIST_SUB (1.6%) of the
 * values in it: better than the 3% the benchmark promises, from single
 * nanoseconds up to HIST_MAX_NS (about 18 minutes), in a fixed 17.5 KiB array
 * that costs one count-leading-zeros and one increment per sample.  Each
 * benchmark thread keeps its own and they are merged at the end, so recording
 * shares nothing between threads.
 */
#ifndef ECHOSRV_HIST_H
#define ECHOSRV_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_MAX_BITS 40                          /* 2^40 ns ~ 18 min */
#define HIST_MAX_NS   ((UINT64_C(1) << HIST_MAX_BITS) - 1)
#define HIST_BUCKETS  ((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t sum;           /* of recorded values, for the mean */
	uint64_t min, max;      /* exact, not bucketed */
	uint64_t bucket[HIST_BUCKETS];
};

void hist_init(struct hist *h);
/* Values above HIST_MAX_NS are recorded as HIST_MAX_NS. */
void hist_record(struct hist *h, uint64_t ns);
void hist_merge(struct hist *into, const struct hist *from);
/*
 * The value at quantile q (0 <= q <= 1): the smallest bucket whose
 * cumulative count reaches ceil(q * count), reported as that bucket's
 * midpoint and clamped to [min, max].  0 when the histogram is empty.
 */
uint64_t hist_quantile(const struct hist *h, double q);

/* Exposed for the unit test: the bucket of a value and a bucket's range. */
unsigned hist_index(uint64_t ns);
uint64_t hist_bucket_low(unsigned idx);
uint64_t hist_bucket_high(unsigned idx);   /* inclusive */

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * hist.c - log-linear latency histogram (see hist.h for the layout).
 *
 * A value v whose highest set bit is b >= HIST_SUB_BITS is shifted right by
 * s = b - HIST_SUB_BITS so that v >> s lies in [HIST_SUB, 2 * HIST_SUB); its
 * bucket is s * HIST_SUB + (v >> s).  Values below HIST_SUB get one bucket
 * each (s = 0), so the two ranges join without a gap or an overlap.
 */
#include "hist.h"

#include <string.h>

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static unsigned shift_of(uint64_t v)
{
	unsigned msb;

	if (v < HIST_SUB)
		return 0;
	msb = 63 - (unsigned)__builtin_clzll(v);
	return msb - HIST_SUB_BITS;
}

unsigned hist_index(uint64_t ns)
{
	unsigned s;

	if (ns > HIST_MAX_NS)
		ns = HIST_MAX_NS;
	s = shift_of(ns);
	return s * HIST_SUB + (unsigned)(ns >> s);
}

uint64_t hist_bucket_low(unsigned idx)
{
	unsigned s;

	if (idx < 2 * HIST_SUB)
		return idx;
	s = idx / HIST_SUB - 1;
	return (uint64_t)(idx - s * HIST_SUB) << s;
}

uint64_t hist_bucket_high(unsigned idx)
{
	unsigned s = idx < 2 * HIST_SUB ? 0 : idx / HIST_SUB - 1;

	return hist_bucket_low(idx) + (UINT64_C(1) << s) - 1;
}

void hist_record(struct hist *h, uint64_t ns)
{
	if (ns > HIST_MAX_NS)
		ns = HIST_MAX_NS;
	h->bucket[hist_index(ns)]++;
	h->count++;
	h->sum += ns;
	if (ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
}

void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->bucket[i] += from->bucket[i];
	into->count += from->count;
	into->sum += from->sum;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0, v;
	double x;

	if (!h->count)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	x = q * (double)h->count;
	rank = (uint64_t)x;
	if ((double)rank < x || rank == 0)
		rank++;                 /* ceil without libm */
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen < rank)
			continue;
		v = hist_bucket_low(i) + (hist_bucket_high(i) - hist_bucket_low(i)) / 2;
		if (v < h->min)
			v = h->min;
		if (v > h->max)
			v = h->max;
		return v;
	}
	return h->max;
}

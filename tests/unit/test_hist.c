/* SPDX-License-Identifier: GPL-2.0-only */
/* The latency histogram of echosrv-bench (tools/hist.c): bucket geometry,
 * then percentiles of known distributions, each within the promised 3%. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "hist.h"

#define US 1000ull              /* values are nanoseconds */
#define S  1000000000ull

static struct hist h;           /* 17 KiB: keep it off the stack */

/* |got - want| <= 3% of want (the resolution the tool promises). */
static void assert_near(const char *name, double q, uint64_t got, uint64_t want)
{
	uint64_t diff = got > want ? got - want : want - got;

	if (diff * 100 > want * 3)
		fail_msg("%s: quantile %g is %llu, want %llu (+-3%%)", name, q,
			 (unsigned long long)got, (unsigned long long)want);
}

/* Every value falls in a bucket that holds it and is at most 1/64 of it wide. */
static void test_bucket_geometry(void **state)
{
	uint64_t v = 0, last_idx = 0;

	while (v <= HIST_MAX_NS) {
		unsigned i = hist_index(v);
		uint64_t lo = hist_bucket_low(i), hi = hist_bucket_high(i);

		assert_true(i < HIST_BUCKETS);
		assert_true(lo <= v && v <= hi);
		assert_true(i >= last_idx);             /* monotonic */
		assert_true((hi - lo + 1) * HIST_SUB <= (lo > HIST_SUB ? lo : HIST_SUB));
		last_idx = i;
		v = v < 4096 ? v + 1 : v + v / 997;     /* every small value, then a walk */
	}
	assert_int_equal(hist_index(HIST_MAX_NS + 12345), hist_index(HIST_MAX_NS));
}

static void test_empty_is_zero(void **state)
{
	hist_init(&h);
	assert_int_equal(hist_quantile(&h, 0.5), 0);
	assert_int_equal(hist_quantile(&h, 0.999), 0);
	assert_int_equal(h.count, 0);
}

struct case_ {
	const char *name;
	uint64_t lo, hi, unit;          /* every value lo..hi times unit (none when hi < lo) */
	uint64_t a, a_count, b, b_count;        /* then a_count of a, b_count of b */
	double q[5];
	uint64_t want[5];
};

static const struct case_ cases[] = {
	{ "one value", 1234, 1234, 1, 0, 0, 0, 0,
	  { 0.5, 0.9, 0.99, 0.999, 1 }, { 1234, 1234, 1234, 1234, 1234 } },
	{ "uniform 1 ns .. 10 us", 1, 10000, 1, 0, 0, 0, 0,
	  { 0.01, 0.25, 0.5, 0.75, 0.9999 }, { 100, 2500, 5000, 7500, 9999 } },
	{ "uniform 1 us .. 1 s, in 1 us steps", 1, 1000000, US, 0, 0, 0, 0,
	  { 0.5, 0.9, 0.99, 0.999, 1 },
	  { 500000 * US, 900000 * US, 990000 * US, 999000 * US, 1000000 * US } },
	/* 999 fast, 1 very slow: only the max reaches the outlier... */
	{ "outlier", 1, 0, 1, 10 * US, 999, 10 * S, 1,
	  { 0.5, 0.99, 0.998, 0.999, 1 }, { 10 * US, 10 * US, 10 * US, 10 * US, 10 * S } },
	/* ...and with 2 in 1000 the p99.9 rank does. */
	{ "two outliers", 1, 0, 1, 10 * US, 998, 10 * S, 2,
	  { 0.5, 0.99, 0.998, 0.999, 1 }, { 10 * US, 10 * US, 10 * US, 10 * S, 10 * S } },
	/* Samples at the very bottom or top of a wide bucket: the midpoint is
	 * furthest from them there, and must still be within 3%. */
	{ "at a bucket's low edge", 1, 0, 1, 1 << 20, 98, 1 * S, 1,
	  { 0.01, 0.5, 0.98, 0.99, 1 }, { 1 << 20, 1 << 20, 1 << 20, 1 * S, 1 * S } },
	{ "at a bucket's high edge", 1, 0, 1, (1 << 21) - 1, 98, 1 * S, 1,
	  { 0.01, 0.5, 0.98, 0.99, 1 },
	  { (1 << 21) - 1, (1 << 21) - 1, (1 << 21) - 1, 1 * S, 1 * S } },
	{ "bimodal 90/10", 1, 0, 1, 20 * US, 900, 2 * S, 100,
	  { 0.5, 0.9, 0.901, 0.99, 1 }, { 20 * US, 20 * US, 2 * S, 2 * S, 2 * S } },
};

static void fill(const struct case_ *c)
{
	hist_init(&h);
	for (uint64_t v = c->lo; v <= c->hi; v++)
		hist_record(&h, v * c->unit);
	for (uint64_t i = 0; i < c->a_count; i++)
		hist_record(&h, c->a);
	for (uint64_t i = 0; i < c->b_count; i++)
		hist_record(&h, c->b);
}

static void test_known_distributions(void **state)
{
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct case_ *c = &cases[k];

		fill(c);
		for (int j = 0; j < 5; j++)
			assert_near(c->name, c->q[j], hist_quantile(&h, c->q[j]), c->want[j]);
	}
}

/* min and max are exact; the mean comes from the exact sum. */
static void test_exact_extremes(void **state)
{
	hist_init(&h);
	hist_record(&h, 777);
	hist_record(&h, 123456789);
	hist_record(&h, 5000);
	assert_int_equal(h.min, 777);
	assert_int_equal(h.max, 123456789);
	assert_int_equal(hist_quantile(&h, 0), 777);
	assert_int_equal(hist_quantile(&h, 1), 123456789);
	assert_int_equal(h.sum, 777 + 123456789 + 5000);
}

/* Merging per-thread histograms equals recording everything in one. */
static void test_merge(void **state)
{
	static struct hist a, b, all;

	hist_init(&a);
	hist_init(&b);
	hist_init(&all);
	for (uint64_t v = 1; v < 200000; v += 7) {
		hist_record(v % 3 ? &a : &b, v * 13);
		hist_record(&all, v * 13);
	}
	hist_merge(&a, &b);
	assert_memory_equal(&a, &all, sizeof(a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_geometry),
		cmocka_unit_test(test_empty_is_zero),
		cmocka_unit_test(test_known_distributions),
		cmocka_unit_test(test_exact_extremes),
		cmocka_unit_test(test_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

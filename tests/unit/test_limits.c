/* SPDX-License-Identifier: GPL-2.0-only */
/* --max-conns and --max-conns-per-ip accounting, checked against a simple
 * model over a long random sequence (the table deletes by backward shift,
 * which is easy to get subtly wrong). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sys/socket.h>

#include "core/limits.h"

static struct ipaddr ip4(uint32_t v)
{
	struct ipaddr ip = { .family = AF_INET };
	memcpy(ip.bytes, &v, 4);
	return ip;
}

static void test_max_conns(void **state)
{
	struct limits l;
	struct ipaddr a = ip4(1);

	assert_int_equal(limits_init(&l, 2, 0), 0);
	assert_int_equal(limits_take(&l, &a), ADMIT_OK);
	assert_int_equal(limits_take(&l, &a), ADMIT_OK);
	assert_int_equal(limits_take(&l, &a), ADMIT_MAX_CONNS);
	limits_release(&l, &a);
	assert_int_equal(limits_take(&l, &a), ADMIT_OK);	/* recovers */
	limits_fini(&l);
}

/* A PROXY connection: its --max-conns place at accept, its address's share
 * once the header names it; refusals and departures give back the place. */
static void test_reserve_then_address(void **state)
{
	struct limits l;
	struct ipaddr a = ip4(7);
	bool counted;

	assert_int_equal(limits_init(&l, 2, 1), 0);
	assert_int_equal(limits_reserve(&l, 2), ADMIT_OK);
	assert_int_equal(limits_reserve(&l, 2), ADMIT_OK);
	assert_int_equal(limits_reserve(&l, 2), ADMIT_MAX_CONNS);	/* both places held */
	assert_int_equal(limits_take(&l, &a), ADMIT_MAX_CONNS);
	assert_int_equal(limits_take_reserved(&l, &a, 1, &counted), ADMIT_OK);
	assert_true(counted);
	assert_int_equal(limits_take_reserved(&l, &a, 1, &counted), ADMIT_PER_IP);	/* gives its place back */
	assert_false(counted);
	assert_int_equal(atomic_load(&l.active), 1);
	assert_int_equal(limits_reserve(&l, 2), ADMIT_OK);
	limits_unreserve(&l);					/* left before its header */
	limits_release(&l, &a);
	assert_int_equal(atomic_load(&l.active), 0);
	assert_int_equal(limits_take(&l, &a), ADMIT_OK);	/* a's share is free again */
	limits_release(&l, &a);
	limits_fini(&l);
}

static void test_per_ip_model(void **state)
{
	enum { ADDRS = 300, STEPS = 200000, PER_IP = 3, MAX = 500 };
	static uint32_t model[ADDRS];
	uint32_t total = 0;
	struct limits l;

	memset(model, 0, sizeof(model));
	assert_int_equal(limits_init(&l, MAX, PER_IP), 0);
	srand(12345);
	for (int step = 0; step < STEPS; step++) {
		uint32_t k = (uint32_t)rand() % ADDRS;
		struct ipaddr ip = ip4(k * 2654435761u);
		if (rand() % 2) {
			enum admit want = total >= MAX ? ADMIT_MAX_CONNS
				       : model[k] >= PER_IP ? ADMIT_PER_IP : ADMIT_OK;
			assert_int_equal(limits_take(&l, &ip), want);
			if (want == ADMIT_OK) {
				model[k]++;
				total++;
			}
		} else if (model[k]) {
			limits_release(&l, &ip);
			model[k]--;
			total--;
		}
	}
	assert_int_equal(atomic_load(&l.active), total);
	limits_fini(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_per_ip_model),
		cmocka_unit_test(test_reserve_then_address),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

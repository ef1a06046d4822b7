/* SPDX-License-Identifier: GPL-2.0-only */
/* The socket-activation hand-off queue: order, the bound, and a closed
 * queue that refuses and closes what it held. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>
#include <cmocka.h>

#include "server/handoff.h"

static void test_order_and_partial_take(void **state)
{
	struct handoff h;
	int out[HANDOFF_MAX];

	assert_int_equal(handoff_init(&h), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(handoff_push(&h, 100 + i), 0);
	assert_true(atomic_load(&h.pending));
	assert_int_equal(handoff_take(&h, out, 4), 4);
	assert_int_equal(out[0], 100);
	assert_int_equal(out[3], 103);
	assert_true(atomic_load(&h.pending));
	assert_int_equal(handoff_take(&h, out, HANDOFF_MAX), 6);
	assert_int_equal(out[0], 104);
	assert_int_equal(out[5], 109);
	assert_false(atomic_load(&h.pending));
	assert_int_equal(handoff_take(&h, out, HANDOFF_MAX), 0);
	h.n = 0;	/* the fake descriptors must not be closed */
	handoff_fini(&h);
}

static void test_full_queue_refuses(void **state)
{
	struct handoff h;
	int out[HANDOFF_MAX];

	assert_int_equal(handoff_init(&h), 0);
	for (int i = 0; i < HANDOFF_MAX; i++)
		assert_int_equal(handoff_push(&h, 1000 + i), 0);
	assert_int_equal(handoff_push(&h, 5), -EAGAIN);
	assert_int_equal(handoff_take(&h, out, HANDOFF_MAX), HANDOFF_MAX);
	assert_int_equal(out[HANDOFF_MAX - 1], 1000 + HANDOFF_MAX - 1);
	handoff_fini(&h);
}

static void test_closed_queue_closes_and_refuses(void **state)
{
	struct handoff h;
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(handoff_init(&h), 0);
	assert_int_equal(handoff_push(&h, p[0]), 0);
	handoff_close(&h);
	assert_int_equal(fcntl(p[0], F_GETFD), -1);	/* closed with the queue */
	assert_false(atomic_load(&h.pending));
	assert_int_equal(handoff_push(&h, p[1]), -EPIPE);
	handoff_fini(&h);
	close(p[1]);
}

/* A drain seals the queue only when it is empty: a connection dealt a
 * moment before must be served, never closed with the queue. */
static void test_seal_only_when_empty(void **state)
{
	struct handoff h;
	int out[HANDOFF_MAX];

	assert_int_equal(handoff_init(&h), 0);
	assert_int_equal(handoff_push(&h, 300), 0);
	assert_false(handoff_seal(&h));
	assert_int_equal(handoff_push(&h, 301), 0);	/* still open */
	assert_int_equal(handoff_take(&h, out, HANDOFF_MAX), 2);
	assert_true(handoff_seal(&h));
	assert_int_equal(handoff_push(&h, 302), -EPIPE);
	handoff_fini(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_partial_take),
		cmocka_unit_test(test_full_queue_refuses),
		cmocka_unit_test(test_closed_queue_closes_and_refuses),
		cmocka_unit_test(test_seal_only_when_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

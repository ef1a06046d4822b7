/* SPDX-License-Identifier: GPL-2.0-only */
/* Buffer accounting, the slot table's generations, and the idle timer. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "core/conn.h"
#include "core/idle.h"

static void test_hold_and_send(void **state)
{
	struct conn c = { 0 };
	uint8_t data[100];

	for (int i = 0; i < 100; i++)
		data[i] = (uint8_t)i;
	assert_null(c.buf);	/* nothing held: no buffer */
	assert_int_equal(conn_hold(&c, data, 60, 100), 0);
	assert_non_null(c.buf);
	assert_int_equal(c.len, 60);
	conn_sent(&c, 50);
	assert_int_equal(c.len, 10);
	assert_memory_equal(c.buf + c.off, data + 50, 10);
	/* 10 held at offset 50: 90 more only fit after compaction. */
	assert_int_equal(conn_hold(&c, data, 90, 100), 0);
	assert_int_equal(c.off, 0);
	assert_int_equal(c.len, 100);
	assert_memory_equal(c.buf, data + 50, 10);
	assert_memory_equal(c.buf + 10, data, 90);
	conn_sent(&c, 100);
	assert_null(c.buf);	/* drained: buffer given back */
	assert_int_equal(c.len, 0);
}

static void test_table_generations(void **state)
{
	struct conn_table t;

	assert_int_equal(conn_table_init(&t, 2000), 0);
	struct conn *a = conn_alloc(&t);
	assert_non_null(a);
	uint64_t old = conn_id(a);
	assert_ptr_equal(conn_lookup(&t, old), a);
	conn_set_state(a, CONN_CLOSING);
	conn_release(&t, a);
	assert_null(conn_lookup(&t, old));		/* closed */
	struct conn *b = conn_alloc(&t);
	assert_ptr_equal(b, a);				/* slot reused ... */
	assert_null(conn_lookup(&t, old));		/* ... old id is stale */
	assert_ptr_equal(conn_lookup(&t, conn_id(b)), b);
	assert_int_equal(t.active, 1);
	assert_null(conn_lookup(&t, (uint64_t)1 << 32 | 999999));	/* out of range */
	conn_table_free(&t);
}

static void test_table_bounded(void **state)
{
	struct conn_table t;
	uint32_t n = 0;

	/* max 10 -> one chunk: CONN_CHUNK slots, then NULL, never more. */
	assert_int_equal(conn_table_init(&t, 10), 0);
	while (conn_alloc(&t) && n < 10 * CONN_CHUNK)
		n++;
	assert_int_equal(n, CONN_CHUNK);
	conn_table_free(&t);
}

static void test_idle_order(void **state)
{
	struct idle_list l;
	struct idle_node n[3];

	idle_init(&l);
	for (int i = 0; i < 3; i++)
		idle_node_init(&n[i]);
	assert_null(idle_oldest(&l));
	idle_touch(&l, &n[0], 10);
	idle_touch(&l, &n[1], 20);
	idle_touch(&l, &n[2], 30);
	assert_ptr_equal(idle_oldest(&l), &n[0]);
	idle_touch(&l, &n[0], 40);	/* activity moves it to the back */
	assert_ptr_equal(idle_oldest(&l), &n[1]);
	idle_touch(&l, &n[0], 50);	/* already last: only the stamp changes */
	assert_int_equal(n[0].last_rx, 50);
	idle_remove(&n[1]);
	assert_ptr_equal(idle_oldest(&l), &n[2]);
	idle_remove(&n[2]);
	idle_remove(&n[0]);
	assert_null(idle_oldest(&l));
	idle_remove(&n[0]);		/* removing a detached node is harmless */
	assert_null(idle_oldest(&l));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hold_and_send),
		cmocka_unit_test(test_table_generations),
		cmocka_unit_test(test_table_bounded),
		cmocka_unit_test(test_idle_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

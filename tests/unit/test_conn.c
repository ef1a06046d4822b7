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

/* Tables numbered apart (one per worker) never hand out the same id, over
 * slot reuse, and an id of one is never found in the other. */
static void test_tables_numbered_apart(void **state)
{
	struct conn_table t[3];
	uint64_t seen[3][40];

	for (uint32_t w = 0; w < 3; w++) {
		assert_int_equal(conn_table_init(&t[w], 2000), 0);
		conn_table_number(&t[w], w, 3);
		for (int round = 0; round < 20; round++) {	/* one slot, reused */
			struct conn *c = conn_alloc(&t[w]);
			struct conn *d = conn_alloc(&t[w]);
			assert_non_null(c);
			assert_non_null(d);
			seen[w][2 * round] = conn_id(c);
			seen[w][2 * round + 1] = conn_id(d);
			assert_int_equal((uint32_t)(conn_id(c) >> 32) % 3, (w + 1) % 3);
			conn_set_state(c, CONN_CLOSING);
			conn_release(&t[w], c);
			conn_set_state(d, CONN_CLOSING);
			conn_release(&t[w], d);
		}
	}
	for (int a = 0; a < 3 * 40; a++)
		for (int b = a + 1; b < 3 * 40; b++)
			assert_true(seen[a / 40][a % 40] != seen[b / 40][b % 40]);
	struct conn *live = conn_alloc(&t[1]);
	for (uint32_t w = 0; w < 3; w++)
		if (w != 1)
			assert_null(conn_lookup(&t[w], conn_id(live)));
	for (uint32_t w = 0; w < 3; w++)
		conn_table_free(&t[w]);
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
		cmocka_unit_test(test_tables_numbered_apart),
		cmocka_unit_test(test_table_bounded),
		cmocka_unit_test(test_idle_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

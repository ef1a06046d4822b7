/* SPDX-License-Identifier: GPL-2.0-only */
/* The reply buffer: growth, the size cap, and an
 * empty buffer handing over "" rather than NULL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/sbuf.h"

static void test_grows(void **state)
{
	struct sbuf b = { 0 };
	size_t len;

	for (int i = 0; i < 1000; i++)
		sbuf_printf(&b, "%04d,", i);
	char *s = sbuf_take(&b, &len);
	assert_non_null(s);
	assert_int_equal(len, 5000);
	assert_int_equal(strlen(s), 5000);
	assert_memory_equal(s + 4995, "0999,", 5);
	free(s);
	assert_null(b.s);
}

static void test_cap_fails_once_and_for_all(void **state)
{
	struct sbuf b = { .max = 64 };

	sbuf_printf(&b, "%s", "0123456789");
	sbuf_printf(&b, "%0100d", 1);	/* over the cap */
	sbuf_printf(&b, "x");		/* ignored after a failure */
	assert_true(b.failed);
	assert_null(sbuf_take(&b, NULL));
	assert_false(b.failed);		/* reset for reuse */
}

static void test_empty(void **state)
{
	struct sbuf b = { 0 };
	size_t len = 99;
	char *s = sbuf_take(&b, &len);

	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows),
		cmocka_unit_test(test_cap_fails_once_and_for_all),
		cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* The control request parser (ctl_parse): a table of good and bad lines,
 * plus every single byte and a long run of random input, which must never
 * crash and must never be accepted unless it is a valid request. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ops/ctl.h"

static const struct {
	const char *line;
	int ok;
	enum ctl_cmd cmd;
	uint32_t trace;
} cases[] = {
	{ "stats", 1, CTL_STATS, 0 },
	{ "stats\r", 1, CTL_STATS, 0 },
	{ "  stats  ", 1, CTL_STATS, 0 },
	{ "conns", 1, CTL_CONNS, 0 },
	{ "drain", 1, CTL_DRAIN, 0 },
	{ "stop", 1, CTL_STOP, 0 },
	{ "trace", 1, CTL_TRACE_GET, 0 },
	{ "trace 0x3", 1, CTL_TRACE_SET, 0x3 },
	{ "trace\t15", 1, CTL_TRACE_SET, 0xf },
	{ "trace error,conn", 1, CTL_TRACE_SET, 0x5 },
	{ "trace none", 1, CTL_TRACE_SET, 0 },
	{ "trace 0", 1, CTL_TRACE_SET, 0 },
	{ "trace 010", 1, CTL_TRACE_SET, 10 },	/* decimal, not octal */
	{ "", 0, 0, 0 },
	{ "   ", 0, 0, 0 },
	{ "STATS", 0, 0, 0 },
	{ "stat", 0, 0, 0 },
	{ "statsx", 0, 0, 0 },
	{ "stats now", 0, 0, 0 },
	{ "trace 0x10", 0, 0, 0 },
	{ "trace bogus", 0, 0, 0 },
	{ "trace ,", 0, 0, 0 },
	{ "trace error,", 0, 0, 0 },
	{ "trace 0x", 0, 0, 0 },
	{ "trace 1 2", 0, 0, 0 },
	{ "trace 1 2 3 4", 0, 0, 0 },
	{ "trace -1", 0, 0, 0 },
	{ "trace 99999999999999999999999", 0, 0, 0 },
	{ "st\x01" "ats", 0, 0, 0 },
	{ "stats\xff", 0, 0, 0 },
	{ "\r", 0, 0, 0 },
	{ "kill 100000000", 1, CTL_KILL, 0 },
	{ "kill ffffffffffffffff 3", 1, CTL_KILL, 0 },
	{ "kill", 0, 0, 0 },
	{ "kill xyz", 0, 0, 0 },
	{ "kill 1ffffffffffffffff", 0, 0, 0 },	/* more than 64 bits */
	{ "kill 1 -1", 0, 0, 0 },
	{ "kill 1 4294967295", 0, 0, 0 },	/* UINT32_MAX means "any" */
	{ "kill 1 2 3", 0, 0, 0 },
	{ "kill +1", 0, 0, 0 },
};

/* kill's id and worker as parsed. */
static void test_kill_fields(void **state)
{
	struct ctl_req req;
	char err[160];

	assert_int_equal(ctl_parse("kill 1a2b", 9, &req, err, sizeof(err)), 0);
	assert_true(req.conn == 0x1a2b && req.worker == UINT32_MAX);
	assert_int_equal(ctl_parse("kill ffffffffffffffff 7", 23, &req, err, sizeof(err)), 0);
	assert_true(req.conn == UINT64_MAX && req.worker == 7);
	/* No command name doubled in the error: the client adds it. */
	assert_int_equal(ctl_parse("trace bogus", 11, &req, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "trace:"));
}

static void test_table(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_req req;
		char err[160] = "";
		int r = ctl_parse(cases[i].line, strlen(cases[i].line), &req, err, sizeof(err));
		if ((r == 0) != cases[i].ok)
			fail_msg("'%s': got %d (%s)", cases[i].line, r, err);
		if (r) {
			assert_int_equal(r, -EINVAL);
			assert_true(err[0] != '\0');
			assert_null(strchr(err, '\n'));
			continue;
		}
		assert_int_equal(req.cmd, cases[i].cmd);
		assert_int_equal(req.trace, cases[i].trace);
	}
}

/* NUL inside the length counts: "stats\0" is not "stats". */
static void test_embedded_nul(void **state)
{
	struct ctl_req req;
	char err[160];

	assert_int_equal(ctl_parse("stats\0x", 7, &req, err, sizeof(err)), -EINVAL);
	assert_int_equal(ctl_parse("stats", 5, &req, err, sizeof(err)), 0);
}

static void test_too_long(void **state)
{
	char line[CTL_REQ_MAX + 2];
	struct ctl_req req;
	char err[160];

	memset(line, ' ', sizeof(line));
	memcpy(line, "stats", 5);
	assert_int_equal(ctl_parse(line, CTL_REQ_MAX, &req, err, sizeof(err)), 0);
	assert_int_equal(ctl_parse(line, CTL_REQ_MAX + 1, &req, err, sizeof(err)), -EINVAL);
	/* A flag word as long as the whole request still fits the parser. */
	memcpy(line, "trace ", 6);
	memset(line + 6, 'a', CTL_REQ_MAX - 6);
	assert_int_equal(ctl_parse(line, CTL_REQ_MAX, &req, err, sizeof(err)), -EINVAL);
}

/* Random bytes: never a crash, never out of bounds (ASan watches), and
 * anything accepted is a real command. */
static void test_random(void **state)
{
	static const char alphabet[] = "stracedonp 0x1,\t\r\n\x00\xff";
	unsigned seed = 12345;

	for (int i = 0; i < 200000; i++) {
		char buf[40];
		size_t len = (size_t)(rand_r(&seed) % (int)sizeof(buf));
		for (size_t k = 0; k < len; k++)
			buf[k] = (i & 1) ? (char)rand_r(&seed)
					 : alphabet[rand_r(&seed) % (int)(sizeof(alphabet) - 1)];
		char *copy = malloc(len ? len : 1);	/* exact size: ASan sees overreads */
		memcpy(copy, buf, len);
		struct ctl_req req;
		char err[64];
		if (ctl_parse(copy, len, &req, err, sizeof(err)) == 0)
			assert_true(req.cmd <= CTL_STOP);
		free(copy);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_kill_fields),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

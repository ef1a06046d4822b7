/* SPDX-License-Identifier: GPL-2.0-only */
/* The configuration file parser: a table of file texts and what each must
 * give (a field value, or an error naming file, line and option), the
 * command line laid over a file, and show config's text loading back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/config_opts.h"
#include "core/sbuf.h"

#define F(f) offsetof(struct config, f)

struct file_case {
	const char *text;
	const char *msg;	/* NULL: accepted, then field off == want */
	size_t off;
	uint32_t want;
};

static const struct file_case cases[] = {
	{ "max-conns 5000\n", NULL, F(max_conns), 5000 },
	{ "max-conns 5000", NULL, F(max_conns), 5000 },		/* no final newline */
	{ "  max-conns\t 12 \r\n", NULL, F(max_conns), 12 },
	{ "# max-conns 1\n\n   # indented comment\nidle-timeout 9\n", NULL, F(idle_timeout), 9 },
	{ "conn-buffer 2M\n", NULL, F(conn_buffer), 2u << 20 },
	{ "trace error,conn\n", NULL, F(trace), 5 },
	{ "engine epoll\n", NULL, F(engine), ENGINE_EPOLL },
	{ "max-conns auto\n", NULL, F(max_conns), CONFIG_AUTO },
	{ "", NULL, F(idle_timeout), 300 },			/* defaults */
	{ "allow 10.0.0.0/8\nallow 10.1.0.0/16\n", NULL, F(acl.n_allow), 2 },
	{ "bogus 1\n", "f.conf:1: unknown option 'bogus'", 0, 0 },
	{ "\n\nmax-conns 1\nmax-conns 2\n", "f.conf:4: --max-conns is given twice (first on line 3)", 0, 0 },
	{ "max-conns lots\n", "f.conf:1: --max-conns: 'lots' is not a whole number", 0, 0 },
	{ "max-conns\n", "f.conf:1: --max-conns needs a value", 0, 0 },
	{ "busy-poll on\n", "f.conf:1: --busy-poll takes no value", 0, 0 },
	{ "help\n", "f.conf:1: --help is for the command line", 0, 0 },
	{ "version\n", "f.conf:1: --version is for the command line", 0, 0 },
	{ "config x\n", "f.conf:1: --config is for the command line", 0, 0 },
	{ "max-conns 5 # five\n", "f.conf:1: --max-conns: '5 # five' is not a whole number", 0, 0 },
	{ "-m 5\n", "f.conf:1: unknown option '-m'", 0, 0 },
};

static void test_table(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct file_case *c = &cases[i];
		size_t n = strlen(c->text);
		char *text = malloc(n + 1);
		char err[256] = "";
		struct config cfg;

		memcpy(text, c->text, n + 1);
		config_defaults(&cfg);
		int r = config_parse_text(&cfg, "f.conf", text, n, err, sizeof(err));
		if (c->msg) {
			if (r != -EINVAL || !strstr(err, c->msg))
				fail_msg("case %zu: r %d, error '%s' lacks '%s'", i, r, err, c->msg);
		} else {
			uint32_t got;
			if (r)
				fail_msg("case %zu: %s", i, err);
			memcpy(&got, (char *)&cfg + c->off, sizeof(got));
			if (got != c->want)
				fail_msg("case %zu: got %u want %u", i, got, c->want);
		}
		free(text);
	}
}

static void test_nul_byte(void **state)
{
	char text[] = "max-conns 5\n\0\n";
	char err[256];
	struct config cfg;

	config_defaults(&cfg);
	assert_int_equal(config_parse_text(&cfg, "f.conf", text, sizeof(text) - 1, err,
					   sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NUL byte"));
}

/* The command line's options win, a repeatable one with its whole list. */
static void test_command_line_over_file(void **state)
{
	char path[] = "/tmp/echosrv-unit-XXXXXX", err[256];
	int fd = mkstemp(path);
	const char *text = "max-conns 7\nidle-timeout 30\nallow 10.0.0.0/8\nallow 10.1.0.0/16\n";
	char *argv[] = { "echosrv", "--config", path, "--max-conns", "9", "--allow", "127.0.0.1" };
	struct config cli, cfg;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(config_parse(&cli, 7, argv, err, sizeof(err)), 0);
	assert_int_equal(config_load(&cfg, &cli, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(cfg.max_conns, 9);
	assert_int_equal(cfg.idle_timeout, 30);
	assert_int_equal(cfg.acl.n_allow, 1);
	config_free(&cfg);
}

/* What config_write() says parses back to the same text. */
static void test_write_loads_back(void **state)
{
	char text[] = "listen 127.0.0.1:0\nlisten [::1]:7\nallow 2001:db8::/32\ndeny 10.0.0.0/8\n"
		      "conn-buffer 3k\nbusy-poll\nmetrics 127.0.0.1:9100\ntrace 0xf\nbacklog 64\n";
	struct config a, b;
	struct sbuf sa = { 0 }, sb = { 0 };
	char err[256];

	config_defaults(&a);
	assert_int_equal(config_parse_text(&a, "a", text, strlen(text), err, sizeof(err)), 0);
	config_write(&a, &sa);
	char *wa = sbuf_take(&sa, NULL), *copy = strdup(wa);
	config_defaults(&b);
	assert_int_equal(config_parse_text(&b, "b", copy, strlen(copy), err, sizeof(err)), 0);
	config_write(&b, &sb);
	char *wb = sbuf_take(&sb, NULL);
	assert_string_equal(wa, wb);
	assert_non_null(strstr(wa, "\nconn-buffer 3k\n"));
	assert_non_null(strstr(wa, "\nlisten [::1]:7\n"));
	free(wa);
	free(wb);
	free(copy);
}

static void test_diff(void **state)
{
	char ta[] = "max-conns 100\nallow 10.0.0.0/8\nidle-timeout 5\n";
	char tb[] = "max-conns 200\ndeny 10.1.0.0/16\nidle-timeout 5\n";
	struct config a, b;
	struct sbuf d = { 0 };
	char err[256];

	config_defaults(&a);
	config_defaults(&b);
	assert_int_equal(config_parse_text(&a, "a", ta, strlen(ta), err, sizeof(err)), 0);
	assert_int_equal(config_parse_text(&b, "b", tb, strlen(tb), err, sizeof(err)), 0);
	config_diff(&a, &b, &d);
	char *text = sbuf_take(&d, NULL);
	assert_string_equal(text, "max-conns 100 -> 200; deny 10.1.0.0/16; no longer allow 10.0.0.0/8");
	free(text);
	config_diff(&a, &a, &d);
	assert_int_equal(d.len, 0);
	sbuf_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_command_line_over_file),
		cmocka_unit_test(test_write_loads_back),
		cmocka_unit_test(test_diff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

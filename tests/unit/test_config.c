/* SPDX-License-Identifier: GPL-2.0-only */
/* Option parsing and validation: a table of command lines and what each
 * must produce (a field value, or an error naming the option). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/config.h"

struct ok_case {
	const char *args[6];
	size_t off;		/* uint32_t field to check */
	uint32_t want;
};

#define F(f) offsetof(struct config, f)

static const struct ok_case ok_cases[] = {
	{ { "--max-conns", "100" }, F(max_conns), 100 },
	{ { "-m", "7" }, F(max_conns), 7 },
	{ { "--conn-buffer", "64k" }, F(conn_buffer), 65536 },
	{ { "--conn-buffer", "2M" }, F(conn_buffer), 2u << 20 },
	{ { "--conn-buffer", "4096" }, F(conn_buffer), 4096 },
	{ { "--idle-timeout", "0" }, F(idle_timeout), 0 },
	{ { "--drain-timeout", "3" }, F(drain_timeout), 3 },
	{ { "--trace", "0x3" }, F(trace), 3 },
	{ { "--trace", "7" }, F(trace), 7 },
	{ { "--trace", "error,conn" }, F(trace), 5 },
	{ { "--trace", "all" }, F(trace), 15 },
	{ { "--trace", "none" }, F(trace), 0 },
	{ { "--trace", "010" }, F(trace), 10 },		/* decimal, not octal */
	{ { "--trace", "08" }, F(trace), 8 },
	{ { "--trace", "0XA" }, F(trace), 10 },
	{ { "--trace", "Error,DATA" }, F(trace), 9 },
	{ { "--workers", "4" }, F(workers), 4 },
	{ { "--engine", "epoll" }, F(engine), ENGINE_EPOLL },
	{ { "--max-conns-per-ip", "2" }, F(max_conns_per_ip), 2 },
	{ { "--backlog", "128" }, F(backlog), 128 },
	{ { NULL }, F(idle_timeout), 300 },	/* defaults */
	{ { NULL }, F(drain_timeout), 10 },
	{ { NULL }, F(conn_buffer), 65536 },
	{ { NULL }, F(workers), 1 },
	{ { NULL }, F(trace), 1 },
};

struct bad_case {
	const char *args[4];
	const char *msg;	/* must appear in the error */
};

static const struct bad_case bad_cases[] = {
	{ { "--max-conns", "banana" }, "--max-conns: 'banana' is not a whole number" },
	{ { "--max-conns", "0" }, "--max-conns: 0 is out of range" },
	{ { "--max-conns", "-1" }, "--max-conns" },
	{ { "--bogus" }, "unknown option '--bogus'" },
	{ { "-z" }, "unknown option '-z'" },
	{ { "--listen" }, "option '--listen' needs an argument" },
	{ { "--listen", "1.2.3.4:70000" }, "--listen: port '70000'" },
	{ { "--listen", "1.2.3.4" }, "--listen" },
	{ { "--listen", "::1:80" }, "--listen" },
	{ { "--listen", "[::1]80" }, "--listen" },
	{ { "--listen", "999.1.1.1:80" }, "not an IPv4 address" },
	{ { "--allow", "10.0.0.0/33" }, "--allow: '10.0.0.0/33': prefix must be 0 to 32" },
	{ { "--deny", "banana" }, "--deny: 'banana' is not an IPv4 or IPv6 address" },
	{ { "--allow", "10.0.0.1/8" }, "host bits" },
	{ { "--engine", "kqueue" }, "--engine: 'kqueue' is not one of" },
	{ { "--trace", "0x10" }, "--trace" },
	{ { "--trace", "error,bogus" }, "unknown trace flag 'bogus'" },
	{ { "--conn-buffer", "12" }, "--conn-buffer: 12 is out of range" },
	{ { "--conn-buffer", "1T" }, "--conn-buffer" },
	{ { "--workers", "0" }, "--workers" },
	{ { "--workers", "many" }, "--workers" },
	{ { "--idle-timeout", "1.5" }, "--idle-timeout: '1.5' is not a number of seconds" },
	{ { "stray" }, "unexpected argument 'stray'" },
	{ { "--help=x" }, "option '--help' takes no argument" },
	{ { "--check=1" }, "option '--check' takes no argument" },
	{ { "--listen", "127.0.0.1: 80" }, "--listen: missing or bad port ' 80'" },
	{ { "--listen", "[::1]: 80" }, "--listen: missing or bad port" },
	{ { "--listen", "127.0.0.1:+80" }, "--listen" },
	{ { "--metrics", "127.0.0.1: 80" }, "--metrics" },
	{ { "--allow", "10.0.0.0/ 8" }, "--allow: '10.0.0.0/ 8': prefix must be" },
	{ { "--deny", "::/ 64" }, "--deny" },
	{ { "--allow", "10.0.0.0/+8" }, "--allow" },
	{ { "--trace", "," }, "--trace: empty item" },
	{ { "--trace", "error," }, "--trace: empty item" },
	{ { "--trace", ",error" }, "--trace: empty item" },
	{ { "--trace", "error,,info" }, "--trace: empty item" },
	{ { "--trace", "0x" }, "--trace: '0x' is not a number" },
	{ { "--trace", "0x-1" }, "--trace" },
	{ { "--trace", "0x 1" }, "--trace" },
	{ { "--trace", "1 " }, "--trace" },
	{ { "--trace", "017" }, "--trace: '017' sets bits" },	/* 17 decimal */
};

static int run(const char *const *args, struct config *cfg, char *err, size_t len)
{
	char *argv[8] = { "echosrv" };
	int argc = 1;

	while (args[argc - 1] && argc < 7) {
		argv[argc] = (char *)args[argc - 1];
		argc++;
	}
	return config_parse(cfg, argc, argv, err, len);
}

static void test_ok(void **state)
{
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		struct config cfg;
		char err[256] = "";
		const struct ok_case *c = &ok_cases[i];

		assert_int_equal(run(c->args, &cfg, err, sizeof(err)), 0);
		uint32_t got;
		memcpy(&got, (char *)&cfg + c->off, sizeof(got));
		if (got != c->want)
			fail_msg("case %zu (%s): got %u want %u", i, c->args[0] ? c->args[0] : "-",
				 got, c->want);
	}
}

static void test_bad(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct config cfg;
		char err[256] = "";
		const struct bad_case *c = &bad_cases[i];

		assert_int_equal(run(c->args, &cfg, err, sizeof(err)), -EINVAL);
		if (!strstr(err, c->msg))
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, c->msg);
	}
}

static void test_repeatable_and_finish(void **state)
{
	const char *args[] = { "--listen", "127.0.0.1:0", "--listen", "[::1]:7", "--workers",
			       "auto" };
	char *argv[8] = { "echosrv" };
	struct config cfg;
	char err[256];

	for (int i = 0; i < 6; i++)
		argv[i + 1] = (char *)args[i];
	assert_int_equal(config_parse(&cfg, 7, argv, err, sizeof(err)), 0);
	assert_int_equal(cfg.n_listen, 2);
	assert_int_equal(cfg.listen[1].ss.ss_family, AF_INET6);
	assert_int_equal(config_finish(&cfg, err, sizeof(err)), 0);
	assert_true(cfg.workers >= 1);
	assert_true(cfg.max_conns >= 1);
	assert_false(cfg.listen_default);
}

static void test_default_listen(void **state)
{
	char *argv[] = { "echosrv" };
	struct config cfg;
	char err[256], text[ADDR_TEXT_MAX];

	assert_int_equal(config_parse(&cfg, 1, argv, err, sizeof(err)), 0);
	assert_int_equal(config_finish(&cfg, err, sizeof(err)), 0);
	assert_true(cfg.listen_default);
	addr_format((struct sockaddr *)&cfg.listen[0].ss, text, sizeof(text));
	assert_string_equal(text, "[::]:40007");
}

/* Listen sets that validation refuses: the same address twice, or a
 * wildcard that takes another's connections (config_finish, exit 2). */
struct finish_case {
	const char *args[6];
	const char *msg;	/* NULL: accepted */
};

static const struct finish_case finish_cases[] = {
	{ { "-l", "127.0.0.1:7000", "-l", "127.0.0.1:7000" }, "127.0.0.1:7000 is given twice" },
	{ { "-l", "[::1]:7000", "-l", "[::1]:7000" }, "[::1]:7000 is given twice" },
	{ { "-l", "[::]:7000", "-l", "0.0.0.0:7000" }, "overlap" },
	{ { "-l", "127.0.0.1:7000", "-l", "[::]:7000" }, "[::] is dual-stack" },
	{ { "-l", "0.0.0.0:7000", "-l", "127.0.0.1:7000" }, "overlap" },
	{ { "-l", "[::1]:7000", "-l", "[::]:7000" }, "overlap" },
	{ { "-l", "[::ffff:127.0.0.1]:7000", "-l", "127.0.0.1:7000" }, "given twice" },
	{ { "-l", "127.0.0.1:7000", "-l", "127.0.0.1:7001" }, NULL },
	{ { "-l", "127.0.0.1:7000", "-l", "127.0.0.2:7000" }, NULL },
	{ { "-l", "127.0.0.1:0", "-l", "127.0.0.1:0" }, NULL },	/* any free port, each */
	{ { "-l", "0.0.0.0:7000", "-l", "[::1]:7000" }, NULL },
	{ { "-l", "127.0.0.1:7000", "-l", "[::1]:7000" }, NULL },
};

/* Each case as --listen, then as --udp-listen (the same rules, its own
 * name in the message). */
static void test_finish_listen_overlap(void **state)
{
	for (int udp = 0; udp < 2; udp++) {
		for (size_t i = 0; i < sizeof(finish_cases) / sizeof(finish_cases[0]); i++) {
			const struct finish_case *c = &finish_cases[i];
			const char *args[6] = { 0 };
			struct config cfg;
			char err[256] = "";

			for (size_t j = 0; j < 6 && c->args[j]; j++)
				args[j] = udp && !strcmp(c->args[j], "-l") ? "--udp-listen" : c->args[j];
			assert_int_equal(run(args, &cfg, err, sizeof(err)), 0);
			int r = config_finish(&cfg, err, sizeof(err));
			if (!c->msg && r)
				fail_msg("case %zu (udp %d) refused: %s", i, udp, err);
			if (c->msg && (r != -EINVAL || !strstr(err, c->msg) ||
				       !strstr(err, udp ? "--udp-listen:" : "--listen:")))
				fail_msg("case %zu (udp %d): got %d '%s', want '%s'", i, udp, r, err,
					 c->msg);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_repeatable_and_finish),
		cmocka_unit_test(test_default_listen),
		cmocka_unit_test(test_finish_listen_overlap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

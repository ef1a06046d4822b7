/* SPDX-License-Identifier: GPL-2.0-only */
/* CIDR parsing and matching, including v4-mapped IPv6 peers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/acl.h"

/* Build a sockaddr for text (IPv4 or IPv6, v4-mapped allowed). */
static void peer(const char *text, struct ipaddr *ip)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in a4 = { .sin_family = AF_INET };

	if (inet_pton(AF_INET, text, &a4.sin_addr) == 1) {
		addr_to_ip((struct sockaddr *)&a4, ip);
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, text, &a6.sin6_addr), 1);
	addr_to_ip((struct sockaddr *)&a6, ip);
}

static const struct {
	const char *cidr, *addr;
	bool match;
} match_cases[] = {
	{ "10.0.0.0/8", "10.1.2.3", true },
	{ "10.0.0.0/8", "11.0.0.1", false },
	{ "10.0.0.0/8", "::ffff:10.9.9.9", true },	/* v4-mapped is IPv4 */
	{ "10.0.0.0/8", "::a00:1", false },		/* IPv4-compatible is not */
	{ "192.168.1.128/25", "192.168.1.200", true },
	{ "192.168.1.128/25", "192.168.1.127", false },
	{ "0.0.0.0/0", "1.2.3.4", true },
	{ "0.0.0.0/0", "::1", false },			/* families never cross */
	{ "::/0", "::ffff:1.2.3.4", false },
	{ "::/0", "2001:db8::1", true },
	{ "2001:db8::/32", "2001:db8:ffff::1", true },
	{ "2001:db8::/32", "2001:db9::1", false },
	{ "2001:db8::/33", "2001:db8:8000::1", false },
	{ "::1", "::1", true },
	{ "127.0.0.1", "127.0.0.1", true },
	{ "127.0.0.1", "127.0.0.2", false },
	{ "::ffff:10.0.0.0/104", "10.2.3.4", true },	/* mapped rule is IPv4 */
};

static void test_match(void **state)
{
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		struct cidr c;
		struct ipaddr ip;
		char err[128];

		assert_int_equal(cidr_parse(match_cases[i].cidr, &c, err, sizeof(err)), 0);
		peer(match_cases[i].addr, &ip);
		if (cidr_match(&c, &ip) != match_cases[i].match)
			fail_msg("%s vs %s: expected %d", match_cases[i].cidr, match_cases[i].addr,
				 match_cases[i].match);
	}
}

static void test_parse_errors(void **state)
{
	const char *bad[] = { "", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "::/129",
			      "10.0.0.0/ 8", "10.0.0.0/+8", "::/\t0",
			      "10.0.0.1/8", "2001:db8::1/32", "banana", "10.0.0.0/8x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cidr c;
		char err[128] = "";
		if (cidr_parse(bad[i], &c, err, sizeof(err)) != -EINVAL || !err[0])
			fail_msg("'%s' was accepted", bad[i]);
	}
}

static void test_acl_policy(void **state)
{
	struct acl acl = { 0 };
	struct ipaddr ip;
	char err[128];

	peer("10.1.1.1", &ip);
	assert_true(acl_permits(&acl, &ip));	/* no rules: everyone */
	assert_int_equal(cidr_parse("10.0.0.0/8", &acl.allow[acl.n_allow++], err, 128), 0);
	assert_true(acl_permits(&acl, &ip));
	peer("11.1.1.1", &ip);
	assert_false(acl_permits(&acl, &ip));	/* allow list: only matches */
	assert_int_equal(cidr_parse("10.1.0.0/16", &acl.deny[acl.n_deny++], err, 128), 0);
	peer("::ffff:10.1.2.3", &ip);
	assert_false(acl_permits(&acl, &ip));	/* deny wins over allow */
	peer("10.2.0.1", &ip);
	assert_true(acl_permits(&acl, &ip));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_acl_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

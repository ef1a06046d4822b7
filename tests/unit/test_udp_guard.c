/* SPDX-License-Identifier: GPL-2.0-only */
/* The UDP reflection guard: each drop reason from a table of cases, the
 * token bucket, and the bounded source table under a flood of sources. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/udp_guard.h"
#include "core/util.h"

#define LO 1	/* interface indexes in the cases below */
#define ETH 2

static struct sockaddr_storage sockaddr(const char *text, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

	if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		return ss;
	}
	assert_int_equal(inet_pton(AF_INET6, text, &a6->sin6_addr), 1);
	a6->sin6_family = AF_INET6;
	a6->sin6_port = htons(port);
	return ss;
}

static void guard(struct udp_guard *g, struct acl *acl, uint32_t rate, uint32_t sources)
{
	struct udp_guard_cfg cfg = {
		.acl = acl, .max_size = 1000, .rate = rate, .sources = sources, .seed = 42,
	};
	struct udp_iface ifs[] = {
		{ .index = LO, .loopback = true },
		{ .index = ETH, .bcast = htonl(0xc6120003) },	/* 198.18.0.3 */
	};

	assert_int_equal(udp_guard_init(g, &cfg), 0);
	udp_guard_add_port(g, 7007);
	udp_guard_set_ifaces(g, ifs, 2);
}

static const struct {
	const char *src;
	uint16_t port;
	unsigned ifindex;
	uint32_t len;
	bool truncated;
	enum udp_verdict want;
} cases[] = {
	{ "198.18.0.2", 40000, ETH, 10, false, UDP_PASS },
	{ "2001:db8::1", 40000, ETH, 0, false, UDP_PASS },
	{ "198.18.0.2", 1023, ETH, 10, false, UDP_LOW_PORT },
	{ "198.18.0.2", 1024, ETH, 10, false, UDP_PASS },
	{ "198.18.0.2", 7, ETH, 10, false, UDP_LOW_PORT },
	{ "198.18.0.2", 0, ETH, 10, false, UDP_LOW_PORT },
	{ "198.18.0.2", 7007, ETH, 10, false, UDP_LOOP },
	{ "::ffff:198.18.0.2", 7007, ETH, 10, false, UDP_LOOP },
	{ "224.0.0.1", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "239.255.255.250", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "::ffff:224.1.2.3", 40000, ETH, 10, false, UDP_BAD_SOURCE },	/* mapped is IPv4 */
	{ "ff02::1", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "255.255.255.255", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "198.18.0.3", 40000, ETH, 10, false, UDP_BAD_SOURCE },	/* ETH's broadcast */
	{ "0.0.0.0", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "0.1.2.3", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "::", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "::ffff:0.0.0.0", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "127.0.0.1", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "127.0.0.1", 40000, LO, 10, false, UDP_PASS },
	{ "127.0.0.1", 40000, 9, 10, false, UDP_BAD_SOURCE },	/* an interface not listed */
	{ "::1", 40000, 9, 10, false, UDP_BAD_SOURCE },
	{ "::ffff:127.0.0.9", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "::1", 40000, ETH, 10, false, UDP_BAD_SOURCE },
	{ "::1", 40000, LO, 10, false, UDP_PASS },
	{ "127.0.0.1", 40000, 0, 10, false, UDP_PASS },		/* interface unknown */
	{ "10.9.9.9", 40000, ETH, 10, false, UDP_ACL },		/* --deny 10.0.0.0/8 */
	{ "::ffff:10.1.1.1", 40000, ETH, 10, false, UDP_ACL },
	{ "198.18.0.2", 40000, ETH, 1000, false, UDP_PASS },
	{ "198.18.0.2", 40000, ETH, 1001, false, UDP_TOO_BIG },
	{ "198.18.0.2", 40000, ETH, 1001, true, UDP_TOO_BIG },
	{ "198.18.0.2", 40000, ETH, 10, true, UDP_TRUNCATED },
	{ "224.0.0.1", 7, ETH, 5000, true, UDP_BAD_SOURCE },	/* the first reason wins */
};

static void test_cases(void **state)
{
	struct udp_guard g;
	struct acl acl = { 0 };
	char err[64];

	assert_int_equal(cidr_parse("10.0.0.0/8", &acl.deny[0], err, sizeof(err)), 0);
	acl.n_deny = 1;
	guard(&g, &acl, 0, 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct sockaddr_storage ss = sockaddr(cases[i].src, cases[i].port);
		struct udp_dgram d = { .src = (struct sockaddr *)&ss, .ifindex = cases[i].ifindex,
				       .len = cases[i].len, .truncated = cases[i].truncated };
		enum udp_verdict v = udp_guard_check(&g, &d, 1);
		if (v != cases[i].want)
			fail_msg("case %zu (%s port %u): %s, want %s", i, cases[i].src,
				 cases[i].port, udp_verdict_name(v), udp_verdict_name(cases[i].want));
	}
	udp_guard_fini(&g);
}

static void test_low_ports_allowed(void **state)
{
	struct udp_guard g;
	struct udp_guard_cfg cfg = { .max_size = 100, .allow_low_ports = true };
	struct sockaddr_storage ss = sockaddr("198.18.0.2", 53);
	struct udp_dgram d = { .src = (struct sockaddr *)&ss, .len = 10 };

	assert_int_equal(udp_guard_init(&g, &cfg), 0);
	assert_int_equal(udp_guard_check(&g, &d, 1), UDP_PASS);
	udp_guard_add_port(&g, 53);	/* the loop check holds regardless */
	assert_int_equal(udp_guard_check(&g, &d, 1), UDP_LOOP);
	udp_guard_fini(&g);
}

/* Requests to a broadcast or multicast address are never answered. */
static void test_destinations(void **state)
{
	static const struct {
		const char *dst;
		bool kernel_says_broadcast;
		enum udp_verdict want;
	} dsts[] = {
		{ "198.18.0.1", false, UDP_PASS },
		{ "198.18.0.1", true, UDP_BAD_SOURCE },
		{ "198.18.0.3", false, UDP_BAD_SOURCE },	/* ETH's broadcast */
		{ "255.255.255.255", false, UDP_BAD_SOURCE },
		{ "224.0.0.1", false, UDP_BAD_SOURCE },
		{ "::ffff:224.0.0.1", false, UDP_BAD_SOURCE },
		{ "ff02::1", false, UDP_BAD_SOURCE },
		{ "2001:db8::2", false, UDP_PASS },
	};
	struct udp_guard g;
	struct sockaddr_storage src = sockaddr("198.18.0.2", 40000);

	guard(&g, NULL, 0, 0);
	for (size_t i = 0; i < ARRAY_SIZE(dsts); i++) {
		struct sockaddr_storage ss = sockaddr(dsts[i].dst, 7007);
		struct ipaddr dst;
		addr_to_ip((struct sockaddr *)&ss, &dst);
		struct udp_dgram d = { .src = (struct sockaddr *)&src, .ifindex = ETH, .len = 1,
				       .dst = &dst, .dst_broadcast = dsts[i].kernel_says_broadcast };
		if (udp_guard_check(&g, &d, 1) != dsts[i].want)
			fail_msg("destination case %zu (%s)", i, dsts[i].dst);
	}
	udp_guard_fini(&g);
}

/* A reload changes the limits in place; the table keeps its entries. */
static unsigned passed(struct udp_guard *g, const char *src, unsigned n, uint64_t now);

static void test_update(void **state)
{
	struct udp_guard g;
	struct udp_guard_cfg cfg = { .max_size = 1000, .rate = 0, .sources = 256 };
	uint64_t now = NSEC_PER_SEC;

	assert_int_equal(udp_guard_init(&g, &cfg), 0);
	assert_int_equal(passed(&g, "198.18.0.2", 50, now), 50);	/* unlimited */
	cfg.rate = 10;
	cfg.max_size = 5;
	assert_int_equal(udp_guard_update(&g, &cfg), 0);
	assert_int_equal(passed(&g, "198.18.0.2", 50, now), 0);		/* 10 bytes > 5 */
	cfg.max_size = 10;
	assert_int_equal(udp_guard_update(&g, &cfg), 0);
	assert_int_equal(passed(&g, "198.18.0.2", 50, now), 10);
	cfg.rate = 0;
	assert_int_equal(udp_guard_update(&g, &cfg), 0);
	assert_int_equal(passed(&g, "198.18.0.2", 50, now), 50);
	udp_guard_fini(&g);
}

static void test_names(void **state)
{
	assert_string_equal(udp_verdict_name(UDP_LOW_PORT), "low-port");
	assert_string_equal(udp_verdict_name(UDP_SEND_FULL), "send-full");
	assert_string_equal(udp_verdict_name(UDP_N_VERDICTS), "?");
}

static unsigned passed(struct udp_guard *g, const char *src, unsigned n, uint64_t now)
{
	struct sockaddr_storage ss = sockaddr(src, 40000);
	struct udp_dgram d = { .src = (struct sockaddr *)&ss, .ifindex = ETH, .len = 10 };
	unsigned ok = 0;

	for (unsigned i = 0; i < n; i++)
		ok += udp_guard_check(g, &d, now) == UDP_PASS;
	return ok;
}

/* A burst of `rate`, then `rate` per second; another source is unaffected. */
static void test_rate(void **state)
{
	struct udp_guard g;
	uint64_t t0 = 5 * NSEC_PER_SEC;

	guard(&g, NULL, 100, 1024);
	assert_int_equal(passed(&g, "198.18.0.2", 500, t0), 100);
	assert_int_equal(passed(&g, "198.18.0.4", 50, t0), 50);
	assert_int_equal(passed(&g, "198.18.0.2", 10, t0 + NSEC_PER_SEC / 10), 10);
	assert_int_equal(passed(&g, "198.18.0.2", 10, t0 + NSEC_PER_SEC / 10), 0);
	assert_int_equal(passed(&g, "198.18.0.2", 500, t0 + 100 * NSEC_PER_SEC), 100);
	/* v4-mapped is the same source as its IPv4 address. */
	assert_int_equal(passed(&g, "::ffff:198.18.0.2", 5, t0 + 100 * NSEC_PER_SEC), 0);
	udp_guard_fini(&g);
}

/* n tokens at once (a coalesced receive): the leading ones the bucket
 * holds, the same count one at a time would have given. */
static void test_rate_n(void **state)
{
	struct udp_guard g;
	struct sockaddr_storage ss = sockaddr("198.18.0.2", 40000);
	struct ipaddr ip;
	uint64_t t0 = 5 * NSEC_PER_SEC;

	addr_to_ip((struct sockaddr *)&ss, &ip);
	guard(&g, NULL, 10, 1024);
	assert_int_equal(udp_guard_rate_n(&g, &ip, t0, 4), 4);
	assert_int_equal(udp_guard_rate_n(&g, &ip, t0, 40), 6);
	assert_int_equal(udp_guard_rate_n(&g, &ip, t0, 40), 0);
	assert_int_equal(passed(&g, "198.18.0.2", 1, t0), 0);
	assert_int_equal(udp_guard_rate_n(&g, &ip, t0 + NSEC_PER_SEC / 5, 40), 2);
	assert_int_equal(udp_guard_rate_n(&g, &ip, t0 + 100 * NSEC_PER_SEC, 0), 0);
	udp_guard_fini(&g);
	guard(&g, NULL, 0, 1024);	/* unlimited */
	assert_int_equal(udp_guard_rate_n(&g, &ip, t0, 64), 64);
	udp_guard_fini(&g);
}

/* 200,000 sources through a table of 256: it stays 256 entries, and a
 * source over its rate stays limited while the table churns beside it
 * (its entry is the one furthest from full, so the last to go). */
static void test_table_bounded(void **state)
{
	struct udp_guard g;
	uint64_t now = NSEC_PER_SEC;
	char text[32];

	guard(&g, NULL, 10, 256);
	assert_int_equal(passed(&g, "198.18.0.2", 1000, now), 10);
	for (unsigned i = 0; i < 200000; i++) {
		snprintf(text, sizeof(text), "2001:db8::%x:%x", i >> 16, i & 0xffff);
		assert_int_equal(passed(&g, text, 1, now), 1);
		if (i % 1000 == 0)
			assert_int_equal(passed(&g, "198.18.0.2", 1, now), 0);
	}
	assert_true(udp_guard_sources(&g, now) <= 256);
	assert_true(g.evictions > 0);
	assert_int_equal(udp_guard_sources(&g, now + 10 * NSEC_PER_SEC), 0);
	udp_guard_fini(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_low_ports_allowed),
		cmocka_unit_test(test_destinations),
		cmocka_unit_test(test_update),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_rate_n),
		cmocka_unit_test(test_table_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

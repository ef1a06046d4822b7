/* SPDX-License-Identifier: GPL-2.0-only */
/* The PROXY header parser: a table of good and bad headers, each fed whole,
 * one byte at a time, and followed by client bytes that must not be taken. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/proxy.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"

/* A v2 header as bytes: the signature, then ver/cmd, fam, length, body. */
struct v2 {
	uint8_t b[512];
	size_t n;
};

static void v2_start(struct v2 *h, uint8_t vc, uint8_t fam)
{
	memcpy(h->b, SIG, 12);
	h->b[12] = vc;
	h->b[13] = fam;
	h->n = 16;
}

static void v2_put(struct v2 *h, const void *d, size_t n)
{
	if (n)
		memcpy(h->b + h->n, d, n);
	h->n += n;
}

static void v2_end(struct v2 *h)
{
	h->b[14] = (uint8_t)((h->n - 16) >> 8);
	h->b[15] = (uint8_t)(h->n - 16);
}

static void v2_inet(struct v2 *h, uint8_t vc)
{
	static const uint8_t a[12] = { 192, 0, 2, 7, 198, 51, 100, 1, 0xc3, 0x50, 0, 7 };
	v2_start(h, vc, 0x11);
	v2_put(h, a, sizeof(a));
}

static void v2_tlv(struct v2 *h, uint8_t type, const void *v, uint16_t n)
{
	uint8_t head[3] = { type, (uint8_t)(n >> 8), (uint8_t)n };
	v2_put(h, head, 3);
	v2_put(h, v, n);
}

/* Fill in a CRC32C TLV's value (the last 4 bytes) over the whole header. */
static void v2_crc(struct v2 *h, int off_by)
{
	uint32_t c = proxy_crc32c(0, h->b, h->n) + (uint32_t)off_by;
	uint8_t *v = h->b + h->n - 4;
	v[0] = (uint8_t)(c >> 24), v[1] = (uint8_t)(c >> 16), v[2] = (uint8_t)(c >> 8),
	v[3] = (uint8_t)c;
}

/* Feed all of d (plus "tail" client bytes) whole, then byte by byte; both
 * must agree.  Returns the result; *h the header when DONE. */
static enum proxy_result run(const uint8_t *d, size_t n, struct proxy_header *h,
			     const char **why)
{
	static const char tail[] = "client bytes";
	uint8_t buf[700];
	struct proxy_parser p;
	size_t used, total = 0;
	enum proxy_result whole, r = PROXY_MORE;

	assert_true(n + sizeof(tail) <= sizeof(buf));
	memcpy(buf, d, n);
	memcpy(buf + n, tail, sizeof(tail));
	proxy_init(&p);
	whole = proxy_feed(&p, buf, n + sizeof(tail), &used);
	if (whole == PROXY_DONE) {
		assert_int_equal(used, n);	/* nothing of the client's is taken */
		*h = p.hdr;
	}
	if (whole == PROXY_BAD)
		*why = p.reason;
	proxy_init(&p);
	for (size_t i = 0; i < n + sizeof(tail) && r == PROXY_MORE; i++) {
		r = proxy_feed(&p, buf + i, 1, &used);
		total += used;
	}
	assert_int_equal(r, whole);
	if (r == PROXY_DONE) {
		assert_int_equal(total, n);
		assert_memory_equal(&p.hdr, h, sizeof(*h));
		assert_int_equal(proxy_feed(&p, buf, 1, &used), PROXY_DONE);	/* stays done */
		assert_int_equal(used, 0);
	}
	return whole;
}

static void addr_is(const struct sockaddr_storage *ss, const char *text, uint16_t port)
{
	char got[INET6_ADDRSTRLEN];
	const void *a = ss->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
						 : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
	assert_non_null(inet_ntop(ss->ss_family, a, got, sizeof(got)));
	assert_string_equal(got, text);
	assert_int_equal(ntohs(((const struct sockaddr_in *)ss)->sin_port), port);
}

/* --- v1 ----------------------------------------------------------------- */

static const struct {
	const char *line;
	int family;		/* 0: local (UNKNOWN) */
	const char *src, *dst;
	uint16_t sport, dport;
} v1_good[] = {
	{ "PROXY TCP4 192.0.2.7 198.51.100.1 50000 7\r\n", AF_INET, "192.0.2.7", "198.51.100.1", 50000, 7 },
	{ "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", AF_INET, "0.0.0.0", "255.255.255.255", 0, 65535 },
	{ "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n", AF_INET6, "2001:db8::1", "2001:db8::2", 1, 2 },
	{ "PROXY TCP6 ::ffff:192.0.2.1 ::1 443 80\r\n", AF_INET6, "::ffff:192.0.2.1", "::1", 443, 80 },
	{ "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	  AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535 },
	{ "PROXY UNKNOWN\r\n", 0, NULL, NULL, 0, 0 },
	{ "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	  0, NULL, NULL, 0, 0 },	/* 107 bytes: the longest line */
	{ "PROXY UNKNOWN anything at all\r\n", 0, NULL, NULL, 0, 0 },
};

static const char *const v1_bad[] = {
	"PROXY TCP4 192.0.2.7 198.51.100.1 50000 7\n",		/* LF without CR */
	"PROXY TCP4 192.0.2.7 198.51.100.1 50000 7 \r\n",	/* trailing space */
	"PROXY TCP4  192.0.2.7 198.51.100.1 50000 7\r\n",	/* two spaces */
	"PROXY TCP4 192.0.2.7 198.51.100.1 50000\r\n",		/* three fields */
	"PROXY TCP4 192.0.2.7 198.51.100.1 50000 7 8\r\n",	/* five fields */
	"PROXY TCP4 192.0.2.07 198.51.100.1 50000 7\r\n",	/* leading zero, address */
	"PROXY TCP4 192.0.2.7 198.51.100.1 050000 7\r\n",	/* leading zero, port */
	"PROXY TCP4 192.0.2.7 198.51.100.1 50000 00\r\n",
	"PROXY TCP4 192.0.2.7 198.51.100.1 65536 7\r\n",	/* port out of range */
	"PROXY TCP4 192.0.2.7 198.51.100.1 -1 7\r\n",
	"PROXY TCP4 192.0.2.7 198.51.100.1 +1 7\r\n",
	"PROXY TCP4 192.0.2.256 198.51.100.1 1 7\r\n",		/* bad octet */
	"PROXY TCP4 2001:db8::1 198.51.100.1 1 7\r\n",		/* wrong family */
	"PROXY TCP6 192.0.2.7 2001:db8::2 1 7\r\n",
	"PROXY TCP6 2001:db8:::1 2001:db8::2 1 7\r\n",		/* not 128 bits */
	"PROXY TCP6 2001:db8::1:2:3:4:5:6:7 ::2 1 7\r\n",
	"PROXY UDP4 192.0.2.7 198.51.100.1 1 7\r\n",		/* unknown protocol */
	"PROXY tcp4 192.0.2.7 198.51.100.1 1 7\r\n",
	"PROXY UNKNOWNX\r\n",
	"PROXY TCP4\r\n",
	"PROXY \r\n",
	"PROXY TCP4 192.0.2.7\r198.51.100.1 1 7\r\n",		/* CR inside */
	"PROXY_TCP4 192.0.2.7 198.51.100.1 1 7\r\n",		/* bad prefix */
	"proxy TCP4 192.0.2.7 198.51.100.1 1 7\r\n",
	"GET / HTTP/1.0\r\n",					/* not a header at all */
	"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655355\r\n",
	/* 108 bytes */
};

static void test_v1_good(void **state)
{
	for (size_t i = 0; i < sizeof(v1_good) / sizeof(v1_good[0]); i++) {
		struct proxy_header h;
		const char *why = NULL;
		print_message("v1 good %zu: %s", i, v1_good[i].line);
		assert_int_equal(run((const uint8_t *)v1_good[i].line, strlen(v1_good[i].line), &h, &why),
				 PROXY_DONE);
		assert_int_equal(h.version, 1);
		assert_int_equal(h.local, v1_good[i].family == 0);
		if (!v1_good[i].family)
			continue;
		assert_int_equal(h.src.ss_family, v1_good[i].family);
		addr_is(&h.src, v1_good[i].src, v1_good[i].sport);
		addr_is(&h.dst, v1_good[i].dst, v1_good[i].dport);
	}
}

static void test_v1_bad(void **state)
{
	for (size_t i = 0; i < sizeof(v1_bad) / sizeof(v1_bad[0]); i++) {
		struct proxy_header h;
		const char *why = NULL;
		print_message("v1 bad %zu: %s\n", i, v1_bad[i]);
		assert_int_equal(run((const uint8_t *)v1_bad[i], strlen(v1_bad[i]), &h, &why), PROXY_BAD);
		assert_non_null(why);
	}
}

/* A NUL inside an address field: inet_pton() would stop at it and take
 * "192.0.2.7" from "192.0.2.7\0junk"; the field is refused instead.  (After
 * UNKNOWN anything goes, NUL included: the spec says to ignore it.) */
static void test_v1_nul(void **state)
{
	static const char bad4[] = "PROXY TCP4 192.0.2.7\0junk 198.51.100.1 1 7\r\n";
	static const char bad6[] = "PROXY TCP6 2001:db8::1 2001:db8::2\0 1 7\r\n";
	static const char unknown[] = "PROXY UNKNOWN \0\r\n";
	struct proxy_header h;
	const char *why = NULL;

	assert_int_equal(run((const uint8_t *)bad4, sizeof(bad4) - 1, &h, &why), PROXY_BAD);
	assert_int_equal(run((const uint8_t *)bad6, sizeof(bad6) - 1, &h, &why), PROXY_BAD);
	assert_int_equal(run((const uint8_t *)unknown, sizeof(unknown) - 1, &h, &why), PROXY_DONE);
}

/* No CRLF in 107 bytes: refused at the 108th, however the line goes on. */
static void test_v1_too_long(void **state)
{
	uint8_t line[200];
	struct proxy_parser p;
	size_t used;

	memset(line, 'a', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	proxy_init(&p);
	assert_int_equal(proxy_feed(&p, line, PROXY_V1_MAX, &used), PROXY_MORE);
	assert_int_equal(used, PROXY_V1_MAX);
	assert_int_equal(proxy_feed(&p, line, 1, &used), PROXY_BAD);
	assert_non_null(strstr(p.reason, "107"));
}

/* --- v2 ----------------------------------------------------------------- */

static void test_v2_inet(void **state)
{
	struct v2 h;
	struct proxy_header out;
	const char *why;

	v2_inet(&h, 0x21);
	v2_end(&h);
	assert_int_equal(run(h.b, h.n, &out, &why), PROXY_DONE);
	assert_int_equal(out.version, 2);
	assert_false(out.local);
	addr_is(&out.src, "192.0.2.7", 50000);
	addr_is(&out.dst, "198.51.100.1", 7);
}

static void test_v2_inet6_tlvs(void **state)
{
	struct v2 h;
	struct proxy_header out;
	const char *why;
	uint8_t a[36] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1, [16] = 0x20, [17] = 0x01, [18] = 0x0d,
			  [19] = 0xb8, [31] = 2, [32] = 0x12, [33] = 0x34, [34] = 0, [35] = 7 };
	uint8_t crc[4] = { 0 };

	v2_start(&h, 0x21, 0x21);
	v2_put(&h, a, sizeof(a));
	v2_tlv(&h, 0x01, "echo", 4);		/* ALPN: skipped */
	v2_tlv(&h, 0x04, NULL, 0);		/* NOOP, empty */
	v2_tlv(&h, 0x05, "req-42", 6);		/* UNIQUE_ID */
	v2_tlv(&h, 0x03, crc, 4);
	v2_end(&h);
	v2_crc(&h, 0);
	assert_int_equal(run(h.b, h.n, &out, &why), PROXY_DONE);
	addr_is(&out.src, "2001:db8::1", 0x1234);
	addr_is(&out.dst, "2001:db8::2", 7);
	assert_int_equal(out.unique_id_len, 6);
	assert_memory_equal(out.unique_id, "req-42", 6);
	assert_true(out.crc_checked);
}

/* What a balancer's health check sends: LOCAL, usually family UNSPEC;
 * also LOCAL with addresses (ignored) and PROXY with UNSPEC. */
static void test_v2_local(void **state)
{
	static const uint8_t cases[][2] = { { 0x20, 0x00 }, { 0x20, 0x11 }, { 0x21, 0x00 },
					    { 0x20, 0x31 }, { 0x20, 0xff } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct v2 h;
		struct proxy_header out;
		const char *why;
		v2_start(&h, cases[i][0], cases[i][1]);
		if (cases[i][1] == 0x11)
			v2_put(&h, "123456789012", 12);
		v2_end(&h);
		assert_int_equal(run(h.b, h.n, &out, &why), PROXY_DONE);
		assert_true(out.local);
	}
}

static void test_v2_bad(void **state)
{
	static const char *const want[] = {
		"signature", "version", "command", "family", "STREAM", "STREAM", "cover",
		"past", "cut short", "CRC32C does not match", "CRC32C TLV", "UNIQUE_ID",
		"CRC32C TLV",
	};
	uint8_t crc[4] = { 0 }, big[129] = { 0 };

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct v2 h;
		struct proxy_header out;
		const char *why = NULL;

		v2_inet(&h, 0x21);
		switch (i) {
		case 0: h.b[5] ^= 1; break;			/* signature */
		case 1: h.b[12] = 0x11; break;			/* version 1 */
		case 2: h.b[12] = 0x22; break;			/* command 2 */
		case 3: h.b[13] = 0x31; break;			/* AF_UNIX: not served */
		case 4: h.b[13] = 0x12; break;			/* DGRAM */
		case 5: h.b[13] = 0x10; break;			/* proto UNSPEC */
		case 6: h.n = 16 + 11; break;			/* too short for INET */
		case 7: v2_put(&h, "\x01\x00\x05" "ab", 5); break;	/* TLV past the end */
		case 8: v2_put(&h, "\x01\x00", 2); break;	/* TLV head cut */
		case 9: v2_tlv(&h, 0x03, crc, 4); break;	/* wrong CRC (fixed below) */
		case 10: v2_tlv(&h, 0x03, crc, 3); break;	/* CRC of 3 bytes */
		case 11: v2_tlv(&h, 0x05, big, sizeof(big)); break;
		case 12: v2_tlv(&h, 0x03, crc, 4); v2_tlv(&h, 0x03, crc, 4); break;
		}
		v2_end(&h);
		if (i == 9)
			v2_crc(&h, 1);
		print_message("v2 bad %zu\n", i);
		assert_int_equal(run(h.b, h.n, &out, &why), PROXY_BAD);
		assert_non_null(strstr(why, want[i]));
	}
}

/* Not the start of either version: refused at the first byte. */
static void test_first_byte(void **state)
{
	struct proxy_parser p;
	size_t used;

	proxy_init(&p);
	assert_int_equal(proxy_feed(&p, (const uint8_t *)"\x16\x03\x01", 3, &used), PROXY_BAD);
	proxy_init(&p);
	assert_int_equal(proxy_feed(&p, (const uint8_t *)"", 0, &used), PROXY_MORE);
}

/* The check value of CRC-32C for "123456789" (RFC 3720's test vector). */
static void test_crc32c(void **state)
{
	assert_int_equal(proxy_crc32c(0, (const uint8_t *)"123456789", 9), 0xe3069283);
	assert_int_equal(proxy_crc32c(proxy_crc32c(0, (const uint8_t *)"1234", 4),
				      (const uint8_t *)"56789", 5), 0xe3069283);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_good),
		cmocka_unit_test(test_v1_bad),
		cmocka_unit_test(test_v1_too_long),
		cmocka_unit_test(test_v1_nul),
		cmocka_unit_test(test_v2_inet),
		cmocka_unit_test(test_v2_inet6_tlvs),
		cmocka_unit_test(test_v2_local),
		cmocka_unit_test(test_v2_bad),
		cmocka_unit_test(test_first_byte),
		cmocka_unit_test(test_crc32c),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

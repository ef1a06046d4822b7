/* SPDX-License-Identifier: GPL-2.0-only */
/* PROXY protocol v1 and v2; see proxy.h.
 *
 * Both versions are read as a stream: proxy_feed() looks at each byte once
 * and decides as early as it can, so a connection sending garbage is
 * refused at its first wrong byte, not after a timeout.  v1 keeps the line
 * until its LF and parses it whole (the grammar is easiest read that way);
 * v2 keeps its fixed 16 bytes and address block and walks the TLVs byte by
 * byte, bounding each by the header's length. */
#include "core/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
static const char v1_sig[] = "PROXY ";

#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_AF_UNSPEC 0x0
#define V2_AF_INET 0x1
#define V2_AF_INET6 0x2
#define V2_PROTO_STREAM 0x1
#define V2_ADDR_INET 12
#define V2_ADDR_INET6 36
#define TLV_CRC32C 0x03
#define TLV_UNIQUE_ID 0x05

void proxy_init(struct proxy_parser *p)
{
	memset(p, 0, sizeof(*p));
}

/* Bitwise, no table: a header is a few hundred bytes at most in practice,
 * read once per connection, and a table would be shared state to set up. */
uint32_t proxy_crc32c(uint32_t crc, const uint8_t *data, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= data[i];
		for (int k = 0; k < 8; k++)
			crc = crc >> 1 ^ (0x82f63b78u & -(crc & 1));
	}
	return ~crc;
}

static enum proxy_result bad(struct proxy_parser *p, const char *why)
{
	p->reason = why;
	return PROXY_BAD;
}

/* --- version 1 -------------------------------------------------------- */

/* A port: 0..65535 in decimal, no sign, no leading zero. */
static int v1_port(const char *s, size_t n, uint16_t *port)
{
	uint32_t v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* An address of the family the line named.  inet_pton() refuses leading
 * zeros in dotted quads and wants all 128 bits of an IPv6 address; it stops
 * at a NUL, so one inside the field ("192.0.2.7\0junk") is refused here,
 * or the rest of the field would go unread. */
static int v1_addr(int family, const char *s, size_t n, struct sockaddr_storage *ss)
{
	char text[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(text) || memchr(s, '\0', n))
		return -EINVAL;
	memcpy(text, s, n);
	text[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	ss->ss_family = (sa_family_t)family;
	void *dst = family == AF_INET ? (void *)&((struct sockaddr_in *)ss)->sin_addr
				      : (void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
	return inet_pton(family, text, dst) == 1 ? 0 : -EINVAL;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
	/* sin_port and sin6_port sit at the same offset */
	((struct sockaddr_in *)ss)->sin_port = htons(port);
}

/* Split "A B C D" at single spaces into exactly four fields. */
static int v1_fields(const char *s, size_t n, const char *f[4], size_t fl[4])
{
	unsigned k = 0;
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != ' ')
			continue;
		if (k == 4 || i == start)
			return -EINVAL;	/* a fifth field, or two spaces in a row */
		f[k] = s + start;
		fl[k++] = i - start;
		start = i + 1;
	}
	return k == 4 ? 0 : -EINVAL;
}

int proxy_parse_v1(const char *line, size_t len, struct proxy_header *h, const char **why)
{
	const char *f[4];
	size_t fl[4];
	uint16_t sport, dport;
	int family;

	memset(h, 0, sizeof(*h));
	h->version = 1;
	if (len < sizeof(v1_sig) + 1 || memcmp(line, v1_sig, sizeof(v1_sig) - 1) ||
	    line[len - 2] != '\r' || line[len - 1] != '\n')
		return *why = "v1: not a PROXY line ending in CRLF", -EINVAL;
	const char *s = line + sizeof(v1_sig) - 1;
	size_t n = len - (sizeof(v1_sig) - 1) - 2;
	if (memchr(s, '\r', n) || memchr(s, '\n', n))
		return *why = "v1: CR or LF inside the line", -EINVAL;
	if (n >= 7 && !memcmp(s, "UNKNOWN", 7) && (n == 7 || s[7] == ' ')) {
		h->local = true;	/* the rest of the line is ignored */
		return 0;
	}
	if (n > 5 && !memcmp(s, "TCP4 ", 5))
		family = AF_INET;
	else if (n > 5 && !memcmp(s, "TCP6 ", 5))
		family = AF_INET6;
	else
		return *why = "v1: protocol is not TCP4, TCP6 or UNKNOWN", -EINVAL;
	if (v1_fields(s + 5, n - 5, f, fl))
		return *why = "v1: want exactly four fields after the protocol", -EINVAL;
	if (v1_addr(family, f[0], fl[0], &h->src) || v1_addr(family, f[1], fl[1], &h->dst))
		return *why = "v1: address invalid or of the wrong family", -EINVAL;
	if (v1_port(f[2], fl[2], &sport) || v1_port(f[3], fl[3], &dport))
		return *why = "v1: port not a number 0-65535 without leading zeros", -EINVAL;
	set_port(&h->src, sport);
	set_port(&h->dst, dport);
	return 0;
}

/* Keep bytes up to the LF (at most 107 in all), refusing at the first byte
 * that cannot be part of a line starting "PROXY ". */
static enum proxy_result feed_v1(struct proxy_parser *p, const uint8_t *d, size_t len,
				 size_t *used)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t c = d[i];
		if (p->got < sizeof(v1_sig) - 1 && c != (uint8_t)v1_sig[p->got])
			return bad(p, "v1: does not begin with \"PROXY \"");
		if (p->got == PROXY_V1_MAX)
			return bad(p, "v1: no CRLF within 107 bytes");
		p->buf[p->got++] = c;
		if (c != '\n')
			continue;
		*used = i + 1;
		const char *why;
		if (proxy_parse_v1((const char *)p->buf, p->got, &p->hdr, &why))
			return bad(p, why);
		return PROXY_DONE;
	}
	*used = len;
	return PROXY_MORE;
}

/* --- version 2 -------------------------------------------------------- */

/* The fixed part is complete: check it and learn how long the header is. */
static enum proxy_result v2_fixed(struct proxy_parser *p)
{
	uint8_t ver = p->buf[12] >> 4, cmd = p->buf[12] & 0xf;
	uint8_t af = p->buf[13] >> 4, proto = p->buf[13] & 0xf;
	uint32_t len = (uint32_t)p->buf[14] << 8 | p->buf[15];

	if (ver != 2)
		return bad(p, "v2: version is not 2");
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return bad(p, "v2: command is neither LOCAL nor PROXY");
	p->total = PROXY_V2_FIXED + len;
	p->hdr.version = 2;
	p->hdr.local = cmd == V2_CMD_LOCAL || af == V2_AF_UNSPEC;
	if (cmd == V2_CMD_LOCAL)
		return PROXY_MORE;	/* the block is to be ignored, whatever it holds */
	if (af == V2_AF_INET)
		p->addr_len = V2_ADDR_INET;
	else if (af == V2_AF_INET6)
		p->addr_len = V2_ADDR_INET6;
	else if (af != V2_AF_UNSPEC)
		return bad(p, "v2: address family is not INET, INET6 or UNSPEC");
	if (af != V2_AF_UNSPEC && proto != V2_PROTO_STREAM)
		return bad(p, "v2: transport is not STREAM");
	if (len < p->addr_len)
		return bad(p, "v2: length does not cover the addresses");
	return PROXY_MORE;
}

static void v2_addresses(struct proxy_parser *p)
{
	const uint8_t *a = p->buf + PROXY_V2_FIXED;
	struct proxy_header *h = &p->hdr;
	size_t n = p->addr_len == V2_ADDR_INET ? 4 : 16;
	uint16_t sport = (uint16_t)(a[2 * n] << 8 | a[2 * n + 1]);
	uint16_t dport = (uint16_t)(a[2 * n + 2] << 8 | a[2 * n + 3]);

	if (n == 4) {
		struct sockaddr_in *s = (struct sockaddr_in *)&h->src, *d = (struct sockaddr_in *)&h->dst;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src,
				    *d = (struct sockaddr_in6 *)&h->dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
	}
	set_port(&h->src, sport);
	set_port(&h->dst, dport);
}

/* One byte of the TLV area.  Returns what the header is after it; the CRC
 * is extended by the caller with *crc_byte (zero inside the checksum). */
static enum proxy_result v2_tlv_byte(struct proxy_parser *p, uint8_t c, uint8_t *crc_byte)
{
	*crc_byte = c;
	if (p->tlv_head < 3) {
		if (p->tlv_head == 0)
			p->tlv_type = c;
		else
			p->tlv_len = (uint16_t)(p->tlv_head == 1 ? c << 8 : p->tlv_len | c);
		p->tlv_seen = 0;
		if (++p->tlv_head < 3)
			return PROXY_MORE;
		if (p->got + 1 + p->tlv_len > p->total)
			return bad(p, "v2: a TLV runs past the header's length");
		if (p->tlv_type == TLV_CRC32C && (p->tlv_len != 4 || p->has_crc))
			return bad(p, "v2: CRC32C TLV not 4 bytes, or given twice");
		if (p->tlv_type == TLV_UNIQUE_ID && p->tlv_len > PROXY_UNIQUE_ID_MAX)
			return bad(p, "v2: UNIQUE_ID longer than 128 bytes");
		p->has_crc |= p->tlv_type == TLV_CRC32C;
		p->hdr.unique_id_len = p->tlv_type == TLV_UNIQUE_ID ? (uint8_t)p->tlv_len
								    : p->hdr.unique_id_len;
	} else {
		if (p->tlv_type == TLV_CRC32C) {
			p->crc_want[p->tlv_seen] = c;
			*crc_byte = 0;
		} else if (p->tlv_type == TLV_UNIQUE_ID) {
			p->hdr.unique_id[p->tlv_seen] = c;
		}
		p->tlv_seen++;
	}
	if (p->tlv_head == 3 && p->tlv_seen == p->tlv_len)
		p->tlv_head = 0;	/* the next TLV begins */
	return PROXY_MORE;
}

/* Every byte is in: the TLV walk must have ended on a boundary, and the
 * checksum, if any, must match. */
static enum proxy_result v2_end(struct proxy_parser *p)
{
	if (p->tlv_head != 0)
		return bad(p, "v2: the last TLV is cut short");
	if (p->has_crc) {
		uint32_t want = (uint32_t)p->crc_want[0] << 24 | (uint32_t)p->crc_want[1] << 16 |
				(uint32_t)p->crc_want[2] << 8 | p->crc_want[3];
		if (want != p->crc)
			return bad(p, "v2: CRC32C does not match");
		p->hdr.crc_checked = true;
	}
	if (!p->hdr.local)
		v2_addresses(p);
	return PROXY_DONE;
}

static enum proxy_result feed_v2(struct proxy_parser *p, const uint8_t *d, size_t len,
				 size_t *used)
{
	enum proxy_result r = PROXY_MORE;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = d[i], crc_byte = c;
		if (p->got < sizeof(v2_sig)) {
			if (c != v2_sig[p->got])
				return bad(p, "v2: signature does not match");
			p->buf[p->got] = c;
		} else if (p->got < PROXY_V2_FIXED) {
			p->buf[p->got] = c;
		} else if (p->hdr.local && !p->addr_len) {
			/* LOCAL or UNSPEC: the block is skipped; TLVs too */
		} else if (p->got < PROXY_V2_FIXED + p->addr_len) {
			p->buf[p->got] = c;
		} else if ((r = v2_tlv_byte(p, c, &crc_byte)) != PROXY_MORE) {
			return r;
		}
		p->crc = proxy_crc32c(p->crc, &crc_byte, 1);
		p->got++;
		if (p->got == PROXY_V2_FIXED && (r = v2_fixed(p)) != PROXY_MORE)
			return r;
		if (p->got >= PROXY_V2_FIXED && p->got == p->total) {
			*used = i + 1;
			return v2_end(p);
		}
	}
	*used = len;
	return PROXY_MORE;
}

enum proxy_result proxy_feed(struct proxy_parser *p, const uint8_t *data, size_t len,
			     size_t *used)
{
	*used = 0;
	if (p->reason)
		return PROXY_BAD;
	if (p->done)
		return PROXY_DONE;
	if (len == 0)
		return PROXY_MORE;
	uint8_t first = p->got ? p->buf[0] : data[0];
	enum proxy_result r;
	if (first == (uint8_t)v1_sig[0])
		r = feed_v1(p, data, len, used);
	else if (first == v2_sig[0])
		r = feed_v2(p, data, len, used);
	else
		r = bad(p, "neither a v1 nor a v2 PROXY header");
	p->done = r == PROXY_DONE;
	return r;
}

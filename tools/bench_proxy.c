/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench_proxy.c - echosrv-bench --proxy v1|v2: each connection begins with
 * the PROXY header a load balancer would send, naming the connection's own
 * addresses, so a proxy listener can be loaded directly and its cost told
 * apart from a balancer's.  The header is not a message: it is sent once,
 * before the first one, and nothing of it comes back.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

static size_t v1_header(uint8_t *out, size_t cap, const struct sockaddr_storage *src,
			const struct sockaddr_storage *dst)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	bool v4 = src->ss_family == AF_INET;
	const void *sa = v4 ? (const void *)&((const struct sockaddr_in *)src)->sin_addr
			    : (const void *)&((const struct sockaddr_in6 *)src)->sin6_addr;
	const void *da = v4 ? (const void *)&((const struct sockaddr_in *)dst)->sin_addr
			    : (const void *)&((const struct sockaddr_in6 *)dst)->sin6_addr;
	unsigned sp = ntohs(v4 ? ((const struct sockaddr_in *)src)->sin_port
			       : ((const struct sockaddr_in6 *)src)->sin6_port);
	unsigned dp = ntohs(v4 ? ((const struct sockaddr_in *)dst)->sin_port
			       : ((const struct sockaddr_in6 *)dst)->sin6_port);

	inet_ntop(src->ss_family, sa, s, sizeof(s));
	inet_ntop(dst->ss_family, da, d, sizeof(d));
	int n = snprintf((char *)out, cap, "PROXY %s %s %s %u %u\r\n", v4 ? "TCP4" : "TCP6",
			 s, d, sp, dp);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static size_t v2_header(uint8_t *out, const struct sockaddr_storage *src,
			const struct sockaddr_storage *dst)
{
	bool v4 = src->ss_family == AF_INET;
	size_t alen = v4 ? 12 : 36, at = 16;

	memcpy(out, v2_sig, sizeof(v2_sig));
	out[12] = 0x21;                         /* version 2, PROXY */
	out[13] = v4 ? 0x11 : 0x21;             /* TCP over IPv4 or IPv6 */
	out[14] = (uint8_t)(alen >> 8);
	out[15] = (uint8_t)alen;
	if (v4) {
		const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;
		memcpy(out + at, &s->sin_addr, 4);
		memcpy(out + at + 4, &d->sin_addr, 4);
		memcpy(out + at + 8, &s->sin_port, 2);
		memcpy(out + at + 10, &d->sin_port, 2);
	} else {
		const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;
		memcpy(out + at, &s->sin6_addr, 16);
		memcpy(out + at + 16, &d->sin6_addr, 16);
		memcpy(out + at + 32, &s->sin6_port, 2);
		memcpy(out + at + 34, &d->sin6_port, 2);
	}
	return at + alen;
}

int bench_send_proxy(const struct bench_opts *o, int fd)
{
	struct sockaddr_storage src;
	socklen_t len = sizeof(src);
	uint8_t hdr[128];
	size_t n;

	if (!o->proxy)
		return 0;
	if (getsockname(fd, (struct sockaddr *)&src, &len) < 0)
		return -errno;
	n = o->proxy == 1 ? v1_header(hdr, sizeof(hdr), &src, &o->addr)
			  : v2_header(hdr, &src, &o->addr);
	if (!n)
		return -EINVAL;
	/* A new connection's send buffer is empty: a short write here would
	 * mean something is badly wrong, not that it should be retried. */
	ssize_t w = send(fd, hdr, n, MSG_NOSIGNAL);
	if (w < 0)
		return -errno;
	return (size_t)w == n ? 0 : -EIO;
}

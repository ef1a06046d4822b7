/* SPDX-License-Identifier: GPL-2.0-only */
/* Address parsing and printing; see addr.h. */
#include "core/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *p, uint16_t *port, char *err, size_t errlen)
{
	char *end;

	if (*p < '0' || *p > '9') {	/* strtoul would skip blanks, take a sign */
		snprintf(err, errlen, "missing or bad port '%s'", p);
		return -EINVAL;
	}
	errno = 0;
	unsigned long v = strtoul(p, &end, 10);
	if (errno || *end || v > 65535) {
		snprintf(err, errlen, "port '%s' is not a number from 0 to 65535", p);
		return -EINVAL;
	}
	*port = (uint16_t)v;
	return 0;
}

int addr_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		      char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon;
	uint16_t port;

	memset(ss, 0, sizeof(*ss));
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "'%s' is not [IPV6]:PORT", s);
			return -EINVAL;
		}
		size_t n = (size_t)(close - s - 1);
		if (n >= sizeof(host)) {
			snprintf(err, errlen, "'%s': address too long", s);
			return -EINVAL;
		}
		memcpy(host, s + 1, n);
		host[n] = '\0';
		if (parse_port(close + 2, &port, err, errlen))
			return -EINVAL;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
			snprintf(err, errlen, "'%s' is not an IPv6 address", host);
			return -EINVAL;
		}
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*len = sizeof(*a6);
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host)) {
		snprintf(err, errlen, "'%s' is not ADDR:PORT (IPv6 goes in brackets)", s);
		return -EINVAL;
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (parse_port(colon + 1, &port, err, errlen))
		return -EINVAL;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
		snprintf(err, errlen, "'%s' is not an IPv4 address", host);
		return -EINVAL;
	}
	a4->sin_family = AF_INET;
	a4->sin_port = htons(port);
	*len = sizeof(*a4);
	return 0;
}

void addr_to_ip(const struct sockaddr *sa, struct ipaddr *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (sa->sa_family == AF_INET) {
		ip->family = AF_INET;
		memcpy(ip->bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return;
	}
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		ip->family = AF_INET;
		memcpy(ip->bytes, &a6->s6_addr[12], 4);
		return;
	}
	ip->family = AF_INET6;
	memcpy(ip->bytes, a6, 16);
}

void addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	struct ipaddr ip;
	unsigned port;

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
		snprintf(buf, len, "(family %d)", sa->sa_family);
		return;
	}
	addr_to_ip(sa, &ip);
	port = ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
					      : ((const struct sockaddr_in6 *)sa)->sin6_port);
	inet_ntop(ip.family, ip.bytes, host, sizeof(host));
	if (ip.family == AF_INET)
		snprintf(buf, len, "%s:%u", host, port);
	else
		snprintf(buf, len, "[%s]:%u", host, port);
}

bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b)
{
	return a->family == b->family && !memcmp(a->bytes, b->bytes, 16);
}

uint32_t ipaddr_hash(const struct ipaddr *ip, uint32_t seed)
{
	/* FNV-1a with a per-process random seed, so that a peer owning many
	 * IPv6 addresses cannot pick a set that collides in advance. */
	uint32_t h = (2166136261u ^ seed) * 16777619u ^ ip->family;

	for (unsigned i = 0; i < 16; i++)
		h = (h ^ ip->bytes[i]) * 16777619u;
	return h;
}

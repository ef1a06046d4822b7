/* SPDX-License-Identifier: GPL-2.0-only */
/* CIDR parsing and matching; see acl.h. */
#include "core/acl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int cidr_parse(const char *s, struct cidr *c, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);

	memset(c, 0, sizeof(*c));
	if (n == 0 || n >= sizeof(host)) {
		snprintf(err, errlen, "'%s' is not a CIDR (ADDR/PREFIX)", s);
		return -EINVAL;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, c->net.bytes) == 1)
		c->net.family = AF_INET;
	else if (inet_pton(AF_INET6, host, c->net.bytes) == 1)
		c->net.family = AF_INET6;
	else {
		snprintf(err, errlen, "'%s' is not an IPv4 or IPv6 address", host);
		return -EINVAL;
	}
	unsigned max = c->net.family == AF_INET ? 32 : 128;
	c->prefix = max;
	if (slash) {
		char *end;
		errno = 0;
		unsigned long p = strtoul(slash + 1, &end, 10);
		/* A digit first: strtoul would skip blanks ("10.0.0.0/ 8"). */
		if (slash[1] < '0' || slash[1] > '9' || *end || errno || p > max) {
			snprintf(err, errlen, "'%s': prefix must be 0 to %u", s, max);
			return -EINVAL;
		}
		c->prefix = (unsigned)p;
	}
	for (unsigned bit = c->prefix; bit < max; bit++) {
		if (c->net.bytes[bit / 8] & (0x80 >> (bit % 8))) {
			snprintf(err, errlen, "'%s' has host bits set beyond /%u", s, c->prefix);
			return -EINVAL;
		}
	}
	/* A v4-mapped rule is an IPv4 rule, as peers are normalised the same. */
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	if (c->net.family == AF_INET6 && c->prefix >= 96 && !memcmp(c->net.bytes, mapped, 12)) {
		memmove(c->net.bytes, c->net.bytes + 12, 4);
		memset(c->net.bytes + 4, 0, 12);
		c->net.family = AF_INET;
		c->prefix -= 96;
	}
	return 0;
}

bool cidr_match(const struct cidr *c, const struct ipaddr *ip)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (c->net.family != ip->family)
		return false;
	if (memcmp(c->net.bytes, ip->bytes, full))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff00 >> rest);
	return (c->net.bytes[full] & mask) == (ip->bytes[full] & mask);
}

static bool any_match(const struct cidr *rules, unsigned n, const struct ipaddr *ip)
{
	for (unsigned i = 0; i < n; i++)
		if (cidr_match(&rules[i], ip))
			return true;
	return false;
}

bool acl_permits(const struct acl *acl, const struct ipaddr *ip)
{
	if (any_match(acl->deny, acl->n_deny, ip))
		return false;
	return acl->n_allow == 0 || any_match(acl->allow, acl->n_allow, ip);
}

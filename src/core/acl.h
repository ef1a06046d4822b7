/* SPDX-License-Identifier: GPL-2.0-only */
/* Access control: --allow and --deny CIDR lists.
 *
 * Deny wins; when any allow rule exists only matching peers are served.  A
 * v4-mapped peer is IPv4 (addr_to_ip), so "--allow 10.0.0.0/8" admits
 * ::ffff:10.1.2.3 arriving on a dual-stack listener, and IPv6 rules never
 * match IPv4 peers.  The lists are fixed after start, so workers read them
 * without locks. */
#ifndef ECHOSRV_ACL_H
#define ECHOSRV_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/addr.h"

#define ACL_MAX_RULES 256

struct cidr {
	struct ipaddr net;
	unsigned prefix;	/* 0..32 or 0..128 */
};

struct acl {
	struct cidr allow[ACL_MAX_RULES];
	struct cidr deny[ACL_MAX_RULES];
	unsigned n_allow, n_deny;
};

/* "10.0.0.0/8", "2001:db8::/32", or a bare address (a host rule).
 * Host bits beyond the prefix are an error, since they usually mean a typo. */
int cidr_parse(const char *s, struct cidr *c, char *err, size_t errlen);
bool cidr_match(const struct cidr *c, const struct ipaddr *ip);

bool acl_permits(const struct acl *acl, const struct ipaddr *ip);

#endif

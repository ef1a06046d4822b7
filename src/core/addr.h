/* SPDX-License-Identifier: GPL-2.0-only */
/* Socket addresses: parsing "ADDR:PORT", printing, and the normalised form
 * used for ACLs and per-IP counting, in which a v4-mapped IPv6 peer
 * (::ffff:a.b.c.d, what a dual-stack listener reports) is plain IPv4. */
#ifndef ECHOSRV_ADDR_H
#define ECHOSRV_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_TEXT_MAX 64	/* "[ffff:...:ffff]:65535" fits with room */

struct ipaddr {
	uint8_t family;		/* AF_INET or AF_INET6 */
	uint8_t bytes[16];	/* network order; IPv4 uses the first 4 */
};

/* "1.2.3.4:80", "[::1]:80", "[::]:0".  Numeric only: no name look-up, so a
 * typo fails at start instead of binding somewhere unexpected. */
int addr_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		      char *err, size_t errlen);

/* Write "1.2.3.4:80" or "[::1]:80" (v4-mapped printed as IPv4). */
void addr_format(const struct sockaddr *sa, char *buf, size_t len);

/* Normalise a peer address; v4-mapped becomes AF_INET. */
void addr_to_ip(const struct sockaddr *sa, struct ipaddr *ip);

bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b);
uint32_t ipaddr_hash(const struct ipaddr *ip, uint32_t seed);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* The UDP reflection guard: which datagrams echosrv may echo.
 *
 * UDP echo is a reflector: a forged source address makes the server send
 * to a victim, and two echo services can be made to bounce one datagram
 * between them for ever.  Every datagram therefore passes these checks,
 * cheapest first, before anything is sent (docs/udp.md says why each one):
 *
 *   bad-source  multicast, broadcast (255.255.255.255 or a local interface's
 *               broadcast address), unspecified, 0.0.0.0/8, and loopback
 *               arriving on a non-loopback interface; v4-mapped is IPv4;
 *               and requests sent to a broadcast or multicast address
 *               (every host would answer one: an amplifier)
 *   low-port    source port below 1024, unless allowed
 *   loop        source port is one echosrv itself serves on UDP, always
 *   acl         --allow / --deny
 *   too-big     longer than --udp-max-size
 *   truncated   the kernel cut the datagram or its ancillary data
 *   rate        the source is over --udp-rate (a token bucket per address)
 *
 * Rate comes last, so that only datagrams that would be echoed spend a
 * token.  This file is pure policy: no sockets, no threads, no clock of its
 * own (the caller passes `now`).  Each worker has its own guard and table
 * and nothing here takes a lock. */
#ifndef ECHOSRV_UDP_GUARD_H
#define ECHOSRV_UDP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/acl.h"
#include "core/addr.h"

/* Why a datagram was dropped; UDP_PASS: echo it.  The last two are the
 * sender's (engine) verdicts, listed here so every reason has one name. */
#define UDP_DROPS(X)                                          \
	X(UDP_LOW_PORT, low_port, "low-port")                 \
	X(UDP_LOOP, loop, "loop")                             \
	X(UDP_BAD_SOURCE, bad_source, "bad-source")           \
	X(UDP_RATE, rate, "rate")                             \
	X(UDP_ACL, acl, "acl")                                \
	X(UDP_TOO_BIG, too_big, "too-big")                    \
	X(UDP_TRUNCATED, truncated, "truncated")              \
	X(UDP_SEND_FULL, send_full, "send-full")              \
	X(UDP_SEND_ERROR, send_error, "send-error")

enum udp_verdict {
	UDP_PASS,
#define X(e, f, n) e,
	UDP_DROPS(X)
#undef X
	UDP_N_VERDICTS
};

const char *udp_verdict_name(enum udp_verdict v);

#define UDP_GUARD_MAX_PORTS 16
#define UDP_GUARD_MAX_IFACES 64

/* What is known of a local interface: its index, whether it is a loopback
 * one, and its IPv4 broadcast address (0: none). */
struct udp_iface {
	unsigned index;
	bool loopback;
	uint32_t bcast;		/* network order */
};

/* One source address's token bucket, kept as a GCRA "theoretical arrival
 * time": an entry whose tat has passed is a full bucket, the same as no
 * entry at all, so it can be taken over without losing anything. */
struct udp_source {
	uint8_t addr[16];	/* IPv4 as v4-mapped; all zero: a free slot */
	uint64_t tat;		/* ns */
};

struct udp_guard {
	const struct acl *acl;
	bool allow_low_ports;
	uint32_t max_size;
	uint64_t interval;	/* ns per token; 0: no rate limit */
	uint64_t tolerance;	/* ns of burst: (burst - 1) * interval */
	uint16_t ports[UDP_GUARD_MAX_PORTS];	/* served UDP ports, host order */
	unsigned n_ports;
	struct udp_iface ifaces[UDP_GUARD_MAX_IFACES];
	unsigned n_ifaces;
	bool ifaces_known;	/* set_ifaces() was called: an index not listed is no loopback */
	struct udp_source *table;	/* size entries; NULL: no rate limit */
	uint32_t size;
	uint32_t seed;
	uint64_t evictions;	/* live entries taken over (the table was full there) */
};

struct udp_guard_cfg {
	const struct acl *acl;
	bool allow_low_ports;
	uint32_t max_size;
	uint32_t rate;		/* per second, burst the same; 0 = unlimited */
	uint32_t sources;	/* table entries (at least the probe window, 8) */
	uint32_t seed;
};

/* 0 or -ENOMEM. */
int udp_guard_init(struct udp_guard *g, const struct udp_guard_cfg *cfg);
void udp_guard_fini(struct udp_guard *g);

/* A reload: new ACL, low-port rule, size and rate, in place.  The table
 * keeps its size (--udp-sources is fixed at start) and its entries; it is
 * allocated now if the rate was unlimited until now.  0 or -ENOMEM (the
 * guard is then unchanged). */
int udp_guard_update(struct udp_guard *g, const struct udp_guard_cfg *cfg);

/* A port echosrv serves on UDP (the loop check); at most
 * UDP_GUARD_MAX_PORTS, later ones are ignored (duplicates too). */
void udp_guard_add_port(struct udp_guard *g, uint16_t port);
/* Forget them (a reload changed the UDP addresses; they are added again). */
void udp_guard_clear_ports(struct udp_guard *g);
/* Replace what is known of the local interfaces (getifaddrs, by the caller).
 * Only loopback interfaces and IPv4 broadcast addresses matter: an index
 * not listed is taken for a non-loopback interface (so a host with more
 * interfaces than the list holds, or one added since, drops loopback
 * sources on it rather than echoing them).  Entries past
 * UDP_GUARD_MAX_IFACES are ignored. */
void udp_guard_set_ifaces(struct udp_guard *g, const struct udp_iface *ifs, unsigned n);

/* One received datagram. */
struct udp_dgram {
	const struct sockaddr *src;
	unsigned ifindex;	/* where it arrived; 0: unknown */
	const struct ipaddr *dst;	/* the address it was sent to; NULL: unknown */
	bool dst_broadcast;	/* the kernel says it was not for a local unicast address */
	uint32_t len;		/* its length as sent (MSG_TRUNC reports it) */
	bool truncated;		/* MSG_TRUNC beyond our buffer or MSG_CTRUNC */
};

enum udp_verdict udp_guard_check(struct udp_guard *g, const struct udp_dgram *d, uint64_t now);

/* The source-address checks alone (bad-source or UDP_PASS). */
enum udp_verdict udp_guard_source(const struct udp_guard *g, const struct ipaddr *ip,
				  unsigned ifindex);

/* The token bucket alone: UDP_PASS or UDP_RATE.  Updates the table. */
enum udp_verdict udp_guard_rate(struct udp_guard *g, const struct ipaddr *ip, uint64_t now);

/* n tokens at once, for n datagrams the kernel coalesced into one receive
 * (UDP_GRO): how many of them, from the first, the bucket allows (0..n). */
uint32_t udp_guard_rate_n(struct udp_guard *g, const struct ipaddr *ip, uint64_t now, uint32_t n);

/* Entries in use (for tests and the table bound). */
uint32_t udp_guard_sources(const struct udp_guard *g, uint64_t now);

#endif

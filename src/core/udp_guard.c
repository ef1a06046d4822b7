/* SPDX-License-Identifier: GPL-2.0-only */
/* The UDP reflection guard and its per-source rate table; see udp_guard.h.
 *
 * The table is open addressing over a fixed array of --udp-sources /
 * workers entries, allocated once: a flood of forged sources can never make
 * it grow.  A source lives in one of PROBE consecutive slots after its
 * hash.  A new source takes, in order of preference, a free slot, a slot
 * whose bucket has refilled (tat in the past: that entry says nothing any
 * more), or else the slot of the window's entry that is closest to full
 * (the smallest tat), which is the one whose loss forgives least.  So
 * eviction costs at most one bucket's worth of burst for an evicted
 * source, and only while the table is full of sources that are all
 * currently over their budget. */
#include "core/udp_guard.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define PROBE 8

static const char *const verdict_names[] = {
	[UDP_PASS] = "pass",
#define X(e, f, n) [e] = n,
	UDP_DROPS(X)
#undef X
};

const char *udp_verdict_name(enum udp_verdict v)
{
	return v < UDP_N_VERDICTS ? verdict_names[v] : "?";
}

int udp_guard_update(struct udp_guard *g, const struct udp_guard_cfg *cfg)
{
	if (cfg->rate && !g->table) {
		uint32_t size = MAX(cfg->sources, PROBE);
		if (!(g->table = calloc(size, sizeof(*g->table))))
			return -ENOMEM;
		g->size = size;
	}
	g->acl = cfg->acl;
	g->allow_low_ports = cfg->allow_low_ports;
	g->max_size = cfg->max_size;
	g->interval = cfg->rate ? MAX(1, NSEC_PER_SEC / cfg->rate) : 0;
	g->tolerance = cfg->rate ? (uint64_t)(cfg->rate - 1) * g->interval : 0;
	return 0;
}

int udp_guard_init(struct udp_guard *g, const struct udp_guard_cfg *cfg)
{
	memset(g, 0, sizeof(*g));
	g->seed = cfg->seed;
	return udp_guard_update(g, cfg);
}

void udp_guard_fini(struct udp_guard *g)
{
	free(g->table);
	g->table = NULL;
}

void udp_guard_add_port(struct udp_guard *g, uint16_t port)
{
	for (unsigned i = 0; i < g->n_ports; i++)
		if (g->ports[i] == port)
			return;
	if (g->n_ports < UDP_GUARD_MAX_PORTS)
		g->ports[g->n_ports++] = port;
}

void udp_guard_clear_ports(struct udp_guard *g)
{
	g->n_ports = 0;
}

void udp_guard_set_ifaces(struct udp_guard *g, const struct udp_iface *ifs, unsigned n)
{
	g->n_ifaces = MIN(n, UDP_GUARD_MAX_IFACES);
	memcpy(g->ifaces, ifs, g->n_ifaces * sizeof(*ifs));
	g->ifaces_known = true;
}

/* -1: not known (no interface list yet, or the kernel gave no index).  An
 * index that is not listed as a loopback one is not: the list may be
 * short (a host with many interfaces) or stale (one added since), and
 * guessing "loopback" there would let a forged 127.0.0.0/8 source in. */
static int iface_is_loopback(const struct udp_guard *g, unsigned ifindex)
{
	if (!ifindex || !g->ifaces_known)
		return -1;
	for (unsigned i = 0; i < g->n_ifaces; i++)
		if (g->ifaces[i].index == ifindex && g->ifaces[i].loopback)
			return 1;
	return 0;
}

static bool local_broadcast(const struct udp_guard *g, uint32_t a)
{
	for (unsigned i = 0; i < g->n_ifaces; i++)
		if (g->ifaces[i].bcast && g->ifaces[i].bcast == a)
			return true;
	return false;
}

static bool bad_v4(const struct udp_guard *g, const uint8_t *b, unsigned ifindex)
{
	uint32_t a;

	memcpy(&a, b, 4);
	if (b[0] == 0)				/* 0.0.0.0/8, unspecified included */
		return true;
	if (b[0] >= 224 && b[0] <= 239)		/* multicast */
		return true;
	if (a == INADDR_BROADCAST || local_broadcast(g, a))
		return true;
	return b[0] == 127 && iface_is_loopback(g, ifindex) == 0;
}

static bool bad_v6(const struct udp_guard *g, const uint8_t *b, unsigned ifindex)
{
	static const uint8_t zero[16], one[16] = { [15] = 1 };

	if (b[0] == 0xff || !memcmp(b, zero, 16))	/* multicast, unspecified */
		return true;
	return !memcmp(b, one, 16) && iface_is_loopback(g, ifindex) == 0;
}

enum udp_verdict udp_guard_source(const struct udp_guard *g, const struct ipaddr *ip,
				  unsigned ifindex)
{
	bool bad = ip->family == AF_INET ? bad_v4(g, ip->bytes, ifindex)
					 : bad_v6(g, ip->bytes, ifindex);
	return bad ? UDP_BAD_SOURCE : UDP_PASS;
}

/* The table's key: 16 bytes, IPv4 as v4-mapped, never all zero (:: is a
 * bad source and never gets here). */
static void key_of(const struct ipaddr *ip, uint8_t key[16])
{
	if (ip->family == AF_INET6) {
		memcpy(key, ip->bytes, 16);
		return;
	}
	memset(key, 0, 10);
	key[10] = key[11] = 0xff;
	memcpy(key + 12, ip->bytes, 4);
}

static struct udp_source *find_slot(struct udp_guard *g, const struct ipaddr *ip, uint64_t now)
{
	uint32_t size = g->size;
	uint32_t i = (uint32_t)(((uint64_t)ipaddr_hash(ip, g->seed) * size) >> 32);
	struct udp_source *spare = NULL, *oldest = NULL;
	uint8_t key[16];

	key_of(ip, key);
	for (unsigned k = 0; k < PROBE; k++, i = i + 1 == size ? 0 : i + 1) {
		struct udp_source *s = &g->table[i];
		if (!memcmp(s->addr, key, 16))
			return s;
		if (!spare && s->tat <= now)
			spare = s;	/* free, or refilled: as good as free */
		if (!oldest || s->tat < oldest->tat)
			oldest = s;
	}
	if (!spare) {
		spare = oldest;
		g->evictions++;
	}
	memcpy(spare->addr, key, 16);
	spare->tat = 0;
	return spare;
}

enum udp_verdict udp_guard_rate(struct udp_guard *g, const struct ipaddr *ip, uint64_t now)
{
	if (!g->interval)
		return UDP_PASS;
	struct udp_source *s = find_slot(g, ip, now);
	if (s->tat > now + g->tolerance)
		return UDP_RATE;	/* the bucket is empty */
	s->tat = MAX(s->tat, now) + g->interval;
	return UDP_PASS;
}

uint32_t udp_guard_rate_n(struct udp_guard *g, const struct ipaddr *ip, uint64_t now, uint32_t n)
{
	if (!g->interval || !n)
		return n;
	struct udp_source *s = find_slot(g, ip, now);
	uint32_t k = 0;

	/* The same test as udp_guard_rate(), token by token, on one slot. */
	while (k < n && s->tat <= now + g->tolerance) {
		s->tat = MAX(s->tat, now) + g->interval;
		k++;
	}
	return k;
}

uint32_t udp_guard_sources(const struct udp_guard *g, uint64_t now)
{
	uint32_t n = 0;

	for (uint32_t i = 0; g->table && i < g->size; i++)
		n += g->table[i].tat > now;
	return n;
}

/* A request to a broadcast or multicast address. */
static bool bad_dst(const struct udp_guard *g, const struct udp_dgram *d)
{
	const uint8_t *b = d->dst ? d->dst->bytes : NULL;
	uint32_t a;

	if (d->dst_broadcast)
		return true;
	if (!b)
		return false;
	if (d->dst->family == AF_INET6)
		return b[0] == 0xff;
	memcpy(&a, b, 4);
	return (b[0] >= 224 && b[0] <= 239) || a == INADDR_BROADCAST || local_broadcast(g, a);
}

static bool served_port(const struct udp_guard *g, uint16_t port)
{
	for (unsigned i = 0; i < g->n_ports; i++)
		if (g->ports[i] == port)
			return true;
	return false;
}

enum udp_verdict udp_guard_check(struct udp_guard *g, const struct udp_dgram *d, uint64_t now)
{
	struct ipaddr ip;
	uint16_t port = ntohs(((const struct sockaddr_in *)d->src)->sin_port);	/* same in in6 */

	addr_to_ip(d->src, &ip);
	if (udp_guard_source(g, &ip, d->ifindex) != UDP_PASS || bad_dst(g, d))
		return UDP_BAD_SOURCE;
	if (port < 1024 && !g->allow_low_ports)
		return UDP_LOW_PORT;
	if (served_port(g, port))
		return UDP_LOOP;
	if (g->acl && !acl_permits(g->acl, &ip))
		return UDP_ACL;
	if (d->len > g->max_size)
		return UDP_TOO_BIG;
	if (d->truncated)
		return UDP_TRUNCATED;
	return udp_guard_rate(g, &ip, now);
}

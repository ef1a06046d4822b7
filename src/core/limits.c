/* SPDX-License-Identifier: GPL-2.0-only */
/* Connection and per-address limits; see limits.h. */
#include "core/limits.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/util.h"

/* Per-address table size: twice the most addresses that can be present
 * (one per connection), capped so that a huge --max-conns cannot make it
 * absurd; when full, new addresses are refused as over the limit. */
#define TABLE_MAX (1u << 22)

int limits_init(struct limits *l, uint32_t max_conns, uint32_t per_ip)
{
	memset(l, 0, sizeof(*l));
	l->max_conns = max_conns;
	l->per_ip = per_ip;
	pthread_mutex_init(&l->lock, NULL);
	if (!per_ip)
		return 0;
	uint32_t size = 64;
	while (size < TABLE_MAX && size < 2ull * max_conns)
		size <<= 1;
	l->table = calloc(size, sizeof(*l->table));
	if (!l->table)
		return -ENOMEM;
	l->mask = size - 1;
	if (getrandom(&l->seed, sizeof(l->seed), GRND_NONBLOCK) != sizeof(l->seed))
		l->seed = (uint32_t)mono_ns();
	return 0;
}

void limits_fini(struct limits *l)
{
	free(l->table);
	pthread_mutex_destroy(&l->lock);
}

/* The slot holding ip, or the empty slot where it would go; NULL if full. */
static struct ip_count *find(struct limits *l, const struct ipaddr *ip)
{
	uint32_t i = ipaddr_hash(ip, l->seed) & l->mask;

	for (uint32_t n = 0; n <= l->mask; n++, i = (i + 1) & l->mask) {
		struct ip_count *e = &l->table[i];
		if (!e->count || ipaddr_equal(&e->ip, ip))
			return e;
	}
	return NULL;
}

/* Linear-probing deletion by backward shift: no tombstones, so a table
 * that sees many addresses come and go never degrades. */
static void erase(struct limits *l, struct ip_count *e)
{
	uint32_t hole = (uint32_t)(e - l->table), i = hole;

	for (;;) {
		i = (i + 1) & l->mask;
		struct ip_count *c = &l->table[i];
		if (!c->count)
			break;
		uint32_t home = ipaddr_hash(&c->ip, l->seed) & l->mask;
		/* c may fill the hole if its home is not in (hole, i]. */
		if (((i - home) & l->mask) >= ((i - hole) & l->mask)) {
			l->table[hole] = *c;
			hole = i;
		}
	}
	memset(&l->table[hole], 0, sizeof(l->table[hole]));
	atomic_fetch_sub_explicit(&l->addrs, 1, memory_order_relaxed);
}

enum admit limits_take(struct limits *l, const struct ipaddr *ip)
{
	uint32_t n = atomic_fetch_add_explicit(&l->active, 1, memory_order_relaxed);

	if (n >= l->max_conns) {
		atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
		return ADMIT_MAX_CONNS;
	}
	if (!l->per_ip)
		return ADMIT_OK;
	pthread_mutex_lock(&l->lock);
	struct ip_count *e = find(l, ip);
	bool ok = e && e->count < l->per_ip;
	if (ok) {
		if (!e->count)
			atomic_fetch_add_explicit(&l->addrs, 1, memory_order_relaxed);
		e->ip = *ip;
		e->count++;
	}
	pthread_mutex_unlock(&l->lock);
	if (!ok) {
		atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
		return ADMIT_PER_IP;
	}
	return ADMIT_OK;
}

void limits_release(struct limits *l, const struct ipaddr *ip)
{
	atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
	if (!l->per_ip)
		return;
	pthread_mutex_lock(&l->lock);
	struct ip_count *e = find(l, ip);
	if (e && e->count && --e->count == 0)
		erase(l, e);
	pthread_mutex_unlock(&l->lock);
}

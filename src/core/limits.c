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

static uint32_t table_size(uint32_t max_conns)
{
	uint32_t size = 64;

	while (size < TABLE_MAX && size < 2ull * max_conns)
		size <<= 1;
	return size;
}

int limits_init(struct limits *l, uint32_t max_conns, uint32_t per_ip)
{
	memset(l, 0, sizeof(*l));
	l->max_conns = max_conns;
	l->per_ip = per_ip;
	pthread_mutex_init(&l->lock, NULL);
	if (getrandom(&l->seed, sizeof(l->seed), GRND_NONBLOCK) != sizeof(l->seed))
		l->seed = (uint32_t)mono_ns();
	return per_ip ? limits_prepare(l, max_conns) : 0;
}

static struct ip_count *find(struct limits *l, const struct ipaddr *ip);

/* Move every entry into a table of size slots (under the lock). */
static int rehash(struct limits *l, uint32_t size)
{
	struct ip_count *old = l->table, *t = calloc(size, sizeof(*t));
	uint32_t old_size = old ? l->mask + 1 : 0;

	if (!t)
		return -ENOMEM;
	l->table = t;
	l->mask = size - 1;
	for (uint32_t i = 0; i < old_size; i++)
		if (old[i].count)
			*find(l, &old[i].ip) = old[i];
	free(old);
	return 0;
}

int limits_prepare(struct limits *l, uint32_t max_conns)
{
	uint32_t size = table_size(max_conns);
	int r = 0;

	pthread_mutex_lock(&l->lock);
	if (!l->table || l->mask + 1 < size)
		r = rehash(l, size);
	pthread_mutex_unlock(&l->lock);
	return r;
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

enum admit limits_reserve(struct limits *l, uint32_t max_conns)
{
	uint32_t n = atomic_fetch_add_explicit(&l->active, 1, memory_order_relaxed);

	if (n >= max_conns) {
		atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
		return ADMIT_MAX_CONNS;
	}
	return ADMIT_OK;
}

void limits_unreserve(struct limits *l)
{
	atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
}

enum admit limits_take_reserved(struct limits *l, const struct ipaddr *ip, uint32_t per_ip,
				bool *counted)
{
	*counted = false;
	if (!per_ip)
		return ADMIT_OK;
	pthread_mutex_lock(&l->lock);
	struct ip_count *e = l->table ? find(l, ip) : NULL;
	bool ok = e && e->count < per_ip;
	if (ok) {
		if (!e->count)
			atomic_fetch_add_explicit(&l->addrs, 1, memory_order_relaxed);
		e->ip = *ip;
		e->count++;
	}
	pthread_mutex_unlock(&l->lock);
	if (!ok) {
		limits_unreserve(l);
		return ADMIT_PER_IP;
	}
	*counted = true;
	return ADMIT_OK;
}

enum admit limits_take_with(struct limits *l, const struct ipaddr *ip, uint32_t max_conns,
			   uint32_t per_ip, bool *counted)
{
	enum admit why = limits_reserve(l, max_conns);

	*counted = false;
	return why != ADMIT_OK ? why : limits_take_reserved(l, ip, per_ip, counted);
}

void limits_release_with(struct limits *l, const struct ipaddr *ip, bool counted)
{
	atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
	if (!counted)
		return;
	pthread_mutex_lock(&l->lock);
	struct ip_count *e = find(l, ip);
	if (e && e->count && --e->count == 0)
		erase(l, e);
	pthread_mutex_unlock(&l->lock);
}

enum admit limits_take(struct limits *l, const struct ipaddr *ip)
{
	bool counted;

	return limits_take_with(l, ip, l->max_conns, l->per_ip, &counted);
}

void limits_release(struct limits *l, const struct ipaddr *ip)
{
	limits_release_with(l, ip, l->per_ip != 0);
}

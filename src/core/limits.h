/* SPDX-License-Identifier: GPL-2.0-only */
/* Admission limits shared by all workers: --max-conns and
 * --max-conns-per-ip.
 *
 * These are checked once per accepted connection, never on the data path,
 * so a single atomic counter and a mutex-protected table are cheap enough;
 * they are the only state the workers share. */
#ifndef ECHOSRV_LIMITS_H
#define ECHOSRV_LIMITS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"

struct ip_count {
	struct ipaddr ip;
	uint32_t count;	/* 0: empty slot */
};

struct limits {
	_Atomic uint32_t active;
	uint32_t max_conns;
	uint32_t per_ip;	/* 0: off */
	pthread_mutex_t lock;
	struct ip_count *table;	/* open addressing, linear probing */
	uint32_t mask;		/* table size - 1 */
	uint32_t seed;
	_Atomic uint32_t addrs;	/* addresses in the table (metrics read it
				 * without the lock) */
};

int limits_init(struct limits *l, uint32_t max_conns, uint32_t per_ip);
void limits_fini(struct limits *l);

/* Why a connection is refused; also indexes the rejection counters. */
enum admit {
	ADMIT_OK,
	ADMIT_MAX_CONNS,
	ADMIT_PER_IP,
	ADMIT_ACL,
};

/* Count one connection from ip against the limits, or say which refuses it. */
enum admit limits_take(struct limits *l, const struct ipaddr *ip);
/* The connection from ip, admitted earlier, is gone. */
void limits_release(struct limits *l, const struct ipaddr *ip);

/* The same with the bounds of the caller's configuration (a reload changes
 * them: each worker passes those of the configuration it runs, so it never
 * mixes an old bound with a new one).  *counted says whether ip went into
 * the per-address table; give it back to limits_release_with(), so that a
 * connection admitted while the per-address limit was off is not taken
 * off another's count when it closes after the limit was switched on. */
enum admit limits_take_with(struct limits *l, const struct ipaddr *ip, uint32_t max_conns,
			   uint32_t per_ip, bool *counted);
void limits_release_with(struct limits *l, const struct ipaddr *ip, bool counted);
/* The same in two steps, for a connection whose address is known only
 * later (a PROXY header): a place under max_conns at accept, then the
 * address's share.  A refusal by take_reserved gives the place back;
 * unreserve gives it back when the connection goes before its address is
 * known. */
enum admit limits_reserve(struct limits *l, uint32_t max_conns);
enum admit limits_take_reserved(struct limits *l, const struct ipaddr *ip, uint32_t per_ip,
				bool *counted);
void limits_unreserve(struct limits *l);
/* Make the per-address table big enough for max_conns addresses, before a
 * configuration with a per-address limit is put in force.  0 or -ENOMEM. */
int limits_prepare(struct limits *l, uint32_t max_conns);

#endif

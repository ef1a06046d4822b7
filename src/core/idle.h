/* SPDX-License-Identifier: GPL-2.0-only */
/* The idle timer: one list per worker, ordered by last receive.
 *
 * Every connection has the same timeout, so ordering by "last received" is
 * ordering by deadline: a receive moves the connection to the tail in O(1),
 * and the worker only ever looks at the head to know when to wake up next.
 * No heap, no wheel, no per-connection timer object. */
#ifndef ECHOSRV_IDLE_H
#define ECHOSRV_IDLE_H

#include <stddef.h>
#include <stdint.h>

struct idle_node {
	struct idle_node *prev, *next;
	uint64_t last_rx;	/* ns, monotonic */
};

struct idle_list {
	struct idle_node head;	/* sentinel: head.next is the oldest */
};

static inline void idle_init(struct idle_list *l)
{
	l->head.prev = l->head.next = &l->head;
}

static inline void idle_remove(struct idle_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

/* Append, or move to the tail, stamping the time of the receive. */
static inline void idle_touch(struct idle_list *l, struct idle_node *n, uint64_t now)
{
	n->last_rx = now;
	if (l->head.prev == n)	/* already the newest: the common bulk case */
		return;
	if (n->next != n)
		idle_remove(n);
	n->prev = l->head.prev;
	n->next = &l->head;
	l->head.prev->next = n;
	l->head.prev = n;
}

static inline struct idle_node *idle_oldest(const struct idle_list *l)
{
	return l->head.next == &l->head ? NULL : l->head.next;
}

/* A node starts detached: pointing at itself. */
static inline void idle_node_init(struct idle_node *n)
{
	n->prev = n->next = n;
	n->last_rx = 0;
}

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* The sockmap engine's idle timeout.
 *
 * Why not the worker's idle list (idle.h): that list is ordered by the time
 * a receive was noticed, and this engine never sees a receive -- the kernel
 * echoes -- so it would only notice one at the next byte-count sweep, up to
 * a second after the fact, and close that much late.  Instead each
 * connection has a deadline, kept in a min-heap: TCP's own time of the last
 * received data (TCP_INFO's tcpi_last_data_recv) plus the timeout.  When a
 * deadline comes, TCP_INFO is read once: a connection that has received
 * since moves to its new deadline, one that has not is closed.  So a
 * connection costs one TCP_INFO per timeout period, and it closes within
 * one kernel tick (1/HZ, at most 10 ms) of the real deadline, plus however
 * long the worker takes to get round to it.
 *
 * The heap holds struct conn pointers (slots never move, conn.h); each
 * connection's position and deadline are in its struct smc. */
#include <stdlib.h>

#include "engine/sockmap/sockmap.h"

/* A deadline that TCP_INFO (whole milliseconds, kernel ticks) puts just
 * ahead is looked at again no sooner than this, so rounding never spins. */
#define RECHECK_MIN_NS NSEC_PER_MSEC

static uint64_t due_of(struct worker *w, uint32_t i)
{
	struct sm *s = w->eng;

	return s->per[s->heap[i]->idx].idle_due;
}

static void place(struct worker *w, uint32_t i, struct conn *c)
{
	struct sm *s = w->eng;

	s->heap[i] = c;
	s->per[c->idx].heap_pos = i + 1;
}

static void sift_up(struct worker *w, uint32_t i)
{
	struct sm *s = w->eng;
	struct conn *c = s->heap[i];
	uint64_t due = s->per[c->idx].idle_due;

	while (i) {
		uint32_t up = (i - 1) / 2;
		if (due_of(w, up) <= due)
			break;
		place(w, i, s->heap[up]);
		i = up;
	}
	place(w, i, c);
}

static void sift_down(struct worker *w, uint32_t i)
{
	struct sm *s = w->eng;
	struct conn *c = s->heap[i];
	uint64_t due = s->per[c->idx].idle_due;

	for (;;) {
		uint32_t k = 2 * i + 1;
		if (k >= s->n_heap)
			break;
		if (k + 1 < s->n_heap && due_of(w, k + 1) < due_of(w, k))
			k++;
		if (due <= due_of(w, k))
			break;
		place(w, i, s->heap[k]);
		i = k;
	}
	place(w, i, c);
}

int sm_idle_add(struct worker *w, struct conn *c)
{
	struct sm *s = w->eng;

	if (!s->idle_ns)
		return 0;
	if (s->n_heap == s->cap_heap) {
		uint32_t cap = s->cap_heap ? 2 * s->cap_heap : 1024;
		struct conn **h = realloc(s->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		s->heap = h;
		s->cap_heap = cap;
	}
	s->per[c->idx].idle_due = w->now + s->idle_ns;
	place(w, s->n_heap++, c);
	sift_up(w, s->n_heap - 1);
	return 0;
}

void sm_idle_remove(struct worker *w, struct conn *c)
{
	struct sm *s = w->eng;
	struct smc *m = c->idx < s->n_per ? &s->per[c->idx] : NULL;
	uint32_t i;

	if (!m || !m->heap_pos)
		return;
	i = m->heap_pos - 1;
	m->heap_pos = 0;
	if (--s->n_heap == i)
		return;
	place(w, i, s->heap[s->n_heap]);
	sift_down(w, i);
	sift_up(w, s->per[s->heap[i]->idx].heap_pos - 1);
}

/* The connection whose deadline comes first, if it has come; NULL else. */
struct conn *sm_idle_due(struct worker *w)
{
	struct sm *s = w->eng;

	return s->n_heap && due_of(w, 0) <= w->now ? s->heap[0] : NULL;
}

/* That connection received since: its new deadline is due (ns). */
void sm_idle_defer(struct worker *w, uint64_t due)
{
	struct sm *s = w->eng;

	s->per[s->heap[0]->idx].idle_due = MAX(due, w->now + RECHECK_MIN_NS);
	sift_down(w, 0);
}

int sm_idle_timeout_ms(const struct worker *w)
{
	const struct sm *s = w->eng;
	uint64_t due;

	if (!s->n_heap)
		return -1;
	due = s->per[s->heap[0]->idx].idle_due;
	if (due <= w->now)
		return 0;
	return (int)MIN((due - w->now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC, 1u << 30);
}

static void add_untimed(struct conn *c, void *arg)
{
	struct worker *w = arg;
	struct sm *s = w->eng;

	/* Out of memory: that one connection stays untimed, as it was. */
	if (c->state != CONN_CLOSING && c->idx < s->n_per && !s->per[c->idx].heap_pos)
		(void)sm_idle_add(w, c);
}

/* A reload changed the timeout.  Every deadline in the heap was the old
 * timeout's, so each is looked at now (one TCP_INFO each, once), which
 * sets it from TCP's last receive and the new timeout; connections not
 * timed before (it was off) are timed from now, as the other engines do. */
void sm_idle_set(struct worker *w, uint64_t ns)
{
	struct sm *s = w->eng;

	if (ns == s->idle_ns)
		return;
	s->idle_ns = ns;
	if (!ns) {
		for (uint32_t i = 0; i < s->n_heap; i++)
			s->per[s->heap[i]->idx].heap_pos = 0;
		s->n_heap = 0;
		return;
	}
	for (uint32_t i = 0; i < s->n_heap; i++)	/* all equal: still a heap */
		s->per[s->heap[i]->idx].idle_due = w->now;
	conn_table_each(&w->conns, add_untimed, w);
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* A worker takes a reloaded configuration (worker.h, worker_take_live()).
 *
 * Called from worker_tick() when server.live has moved: everything a
 * worker derives from its configuration is redone here at once (the idle
 * timer, its listener slots, keepalive on its listening sockets), then the
 * worker says which generation it runs, so that the reload may free the
 * old one.  Admission reads w->cfg directly and needs nothing redone.
 *
 * Listener slots change through the engine's set_accepting(), which every
 * engine has for pausing on descriptor exhaustion: off, close the sockets
 * of removed slots, take the added ones, on again.  So no engine needs to
 * know about reloads, and io_uring's multishot accepts are cancelled and
 * armed again the way a pause does it.  UDP sockets have no such pause:
 * each one added or removed goes through the engine's udp_socket(), which
 * keeps the worker's UDP set (engine/udp.h) and watches it. */
#include "server/worker.h"

#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "server/listener.h"
#include "server/udp_listener.h"

static void touch_all(struct conn *c, void *arg)
{
	struct worker *w = arg;

	if (c->state != CONN_CLOSING)
		idle_touch(&w->idle, &c->idle, w->now);
}

/* Listener slots: close what l no longer has or replaces, take what it
 * added (the sockets main bound for us), and have the engine arm accepts again.  A
 * slot's socket is only ever touched by its worker, so nothing is locked. */
static void take_listeners(struct worker *w, const struct live *old, const struct live *l)
{
	const struct engine_ops *e = w->srv->engine;
	int *row = listener_row(&w->srv->ls, w->id);
	uint32_t gone = old->slots & ~l->slots, added = l->fresh;
	uint32_t replaced = added & old->slots;	/* a new socket in a slot that goes */
	bool on = !w->draining && !w->accept_resume;

	if ((gone | replaced) && on)
		e->set_accepting(w, false);
	/* Only a row of CONFIG_MAX_LISTEN slots changes (not under socket
	 * activation, where gone and added are empty). */
	for (unsigned a = 0; (gone | added) && a < CONFIG_MAX_LISTEN; a++) {
		int fd = l->added ? l->added[w->id * CONFIG_MAX_LISTEN + a] : -1;
		if (((gone | added) & (1u << a)) && row[a] >= 0) {	/* gone or replaced */
			close(row[a]);
			row[a] = -1;
		}
		if ((added & (1u << a)) && fd >= 0) {
			if (w->draining)
				close(fd);	/* its row is closed already */
			else
				row[a] = fd;
		}
	}
	if (old->cfg.keepalive != l->cfg.keepalive)
		for (unsigned a = 0; a < w->srv->ls.n_addr; a++)	/* a row's width */
			if (row[a] >= 0 && !(added & (1u << a)))
				listener_set_keepalive(row[a], l->cfg.keepalive);
	if ((gone || added) && on)
		e->set_accepting(w, true);
}

/* UDP slots, the same way: the removed and replaced ones stop, the added
 * ones start; --udp-df follows on the sockets that stay. */
static void take_udp(struct worker *w, const struct live *old, const struct live *l)
{
	const struct engine_ops *e = w->srv->engine;
	struct udp_listeners *u = &w->srv->ls.udp;
	int *row = udp_listener_row(u, w->id);
	uint32_t change = (old->udp_slots & ~l->udp_slots) | l->udp_fresh;

	for (unsigned a = 0; change && a < CONFIG_MAX_LISTEN; a++) {
		int fd = l->udp_added ? l->udp_added[w->id * CONFIG_MAX_LISTEN + a] : -1;
		int r;
		if (!(change & (1u << a)))
			continue;
		if (row[a] >= 0)
			e->udp_socket(w, a, -1);
		if (fd < 0)
			continue;
		if (w->draining)
			close(fd);	/* its row is closed already */
		else if ((r = e->udp_socket(w, a, fd)))
			TRACE(TR_ERROR, "worker %u: cannot serve the UDP socket a reload added: %s",
			      w->id, strerror(-r));
	}
	if (old->cfg.udp_df == l->cfg.udp_df)
		return;
	for (unsigned a = 0; a < u->n_addr; a++) {	/* a row's width */
		int r;
		if (row[a] >= 0 && !(l->udp_fresh & (1u << a)) &&
		    (r = udp_listener_set_df(row[a], l->udp_bound[a].ss_family, l->cfg.udp_df)))
			TRACE(TR_ERROR, "worker %u: --udp-df on a UDP socket: %s", w->id,
			      strerror(-r));
	}
}

void worker_take_live(struct worker *w, const struct live *l)
{
	const struct live *old = w->live;
	uint64_t idle_ns = (uint64_t)l->cfg.idle_timeout * NSEC_PER_SEC;

	w->live = l;
	w->cfg = &l->cfg;
	if (w->srv->engine->set_idle) {
		/* Its own deadlines: w->idle_ns stays 0, or the worker's list
		 * (never touched on a receive there) would close busy ones. */
		w->srv->engine->set_idle(w, idle_ns);
	} else {
		/* Turned on (or changed from off): time every connection from
		 * now, since those silent since before were never on the list. */
		if (idle_ns && !w->idle_ns)
			conn_table_each(&w->conns, touch_all, w);
		w->idle_ns = idle_ns;
	}
	take_listeners(w, old, l);
	take_udp(w, old, l);
	TRACE(TR_INFO, "worker %u: configuration %llu in force", w->id,
	      (unsigned long long)l->gen);
	atomic_store_explicit(&w->live_gen, l->gen, memory_order_release);
}

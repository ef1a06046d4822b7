/* SPDX-License-Identifier: GPL-2.0-only */
/* Liveness and readiness; see health.h. */
#include "ops/health.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/trace.h"
#include "core/util.h"
#include "server/server.h"
#include "server/worker.h"

/* Checks later than this (main's loop itself stuck) make us not alive. */
#define CHECK_LATE_NS (5 * HEALTH_PERIOD_NS)
#define NOT_SEEN UINT64_MAX	/* before the first check (alive may be 0) */

static uint64_t *seen;		/* per worker: `alive` at the last check */
static bool stuck_logged;
static _Atomic uint64_t last_check;	/* ns; 0: none yet */
static _Atomic unsigned stuck;		/* 0, or 1 + the first stuck worker */
static _Atomic uint64_t stuck_since;	/* ns: that worker's last turn */

bool health_check(struct server *srv)
{
	unsigned first = 0;
	uint64_t now = mono_ns(), since = 0;

	if (!seen) {
		if (!(seen = malloc(srv->n_workers * sizeof(*seen))))
			return true;
		for (unsigned i = 0; i < srv->n_workers; i++)
			seen[i] = NOT_SEEN;
	}
	/* While draining, workers end one by one: no verdict then. */
	for (unsigned i = 0; server_phase(srv) == PHASE_RUNNING && i < srv->n_workers; i++) {
		struct worker *w = &srv->workers[i];
		uint64_t a = atomic_load_explicit(&w->alive, memory_order_relaxed);
		if (a == seen[i] && !first) {	/* woken at the last check, has not run */
			first = i + 1;
			since = a ? a : srv->started;
		}
		seen[i] = a;
		worker_wake(w);
	}
	if (first && !stuck_logged)
		TRACE(TR_ERROR, "worker %u has not run its loop for %llu ms", first - 1,
		      (unsigned long long)((now - since) / NSEC_PER_MSEC));
	stuck_logged = first != 0;
	atomic_store(&stuck_since, since);
	atomic_store(&stuck, first);
	atomic_store(&last_check, now);
	return !first;
}

/* Past PHASE_RUNNING: what the server does now, in the answers' words. */
static const char *ending(struct server *srv)
{
	return server_phase(srv) == PHASE_DRAINING ? "draining" : "stopping";
}

bool health_alive(struct server *srv, char *why, size_t len)
{
	uint64_t now = mono_ns(), checked = atomic_load(&last_check);
	unsigned w = atomic_load(&stuck);

	if (server_phase(srv) != PHASE_RUNNING) {
		snprintf(why, len, "alive: %s", ending(srv));
		return true;
	}
	if (w) {
		snprintf(why, len, "not alive: worker %u has not run its loop for %llu ms", w - 1,
			 (unsigned long long)((now - atomic_load(&stuck_since)) / NSEC_PER_MSEC));
		return false;
	}
	if (checked && now - checked > CHECK_LATE_NS) {
		snprintf(why, len, "not alive: the main loop has not checked the workers for %llu ms",
			 (unsigned long long)((now - checked) / NSEC_PER_MSEC));
		return false;
	}
	snprintf(why, len, "alive: %u worker loop%s turning", srv->n_workers,
		 srv->n_workers == 1 ? "" : "s");
	return true;
}

bool health_ready(struct server *srv, char *why, size_t len)
{
	if (server_phase(srv) != PHASE_RUNNING) {
		snprintf(why, len, "not ready: %s", ending(srv));
		return false;
	}
	if (!atomic_load(&srv->serving)) {
		snprintf(why, len, "not ready: starting, not listening yet");
		return false;
	}
	for (unsigned i = 0; i < srv->n_workers; i++)
		if (atomic_load_explicit(&srv->workers[i].paused, memory_order_relaxed)) {
			snprintf(why, len, "not ready: worker %u paused accepting: out of descriptors",
				 i);
			return false;
		}
	snprintf(why, len, "ready: accepting connections");
	return true;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* Liveness and readiness, as /healthz and /readyz answer them and as the
 * systemd watchdog is fed.
 *
 * Alive: every worker loop turns.  main's loop calls health_check() about
 * once a second (more often when the watchdog wants it); each check wakes
 * every worker and the next check sees whether each has run worker_tick()
 * since.  A worker woken a check ago that has not run is stuck.  The
 * verdict is kept in atomics, so the metrics thread reads it without
 * waking anybody: a probe, however frequent, costs the workers nothing.
 *
 * Ready: the server is past start-up (its listeners are serving), not
 * draining, and no worker has paused accepting for want of descriptors. */
#ifndef ECHOSRV_HEALTH_H
#define ECHOSRV_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;

#define HEALTH_PERIOD_NS 1000000000ull	/* checks at least this often */

/* From main's thread only.  Returns whether every loop turned. */
bool health_check(struct server *srv);
/* From any thread: true while alive; why gets a one-line reason either
 * way. */
bool health_alive(struct server *srv, char *why, size_t len);
/* From any thread: true while ready to accept; why as above. */
bool health_ready(struct server *srv, char *why, size_t len);
/* From any thread: accepting now (ready and listening). */
static inline bool health_accepting(struct server *srv)
{
	char why[128];

	return health_ready(srv, why, sizeof(why));
}

#endif

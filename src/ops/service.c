/* SPDX-License-Identifier: GPL-2.0-only */
/* sd_notify calls; see service.h.
 *
 * The watchdog is pinged from main's loop at half the interval, as
 * sd_watchdog_enabled(3) advises, and only while every worker's loop still
 * turns: at each ping main wakes every worker, and at the next one it
 * checks that each has run worker_tick() since (worker->alive moved).  A
 * stuck worker, or a stuck main thread, stops the pings and systemd
 * restarts the service. */
#include "ops/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "ops/report.h"
#include "server/server.h"
#include "core/trace.h"
#include "core/util.h"
#include "server/worker.h"

#define STATUS_PERIOD_MS 2000

static uint64_t watchdog_ns;	/* half the interval; 0 = off */
static uint64_t last_ping;
static char last_status[160];
static uint64_t *seen;		/* per worker: `alive` at the last check */
#define NOT_SEEN UINT64_MAX	/* before the first check (alive may be 0) */
static bool stuck_logged;

void service_init(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
		watchdog_ns = usec * 1000 / 2;
}

int service_period_ms(void)
{
	/* Tick twice per ping interval so a ping is never later than due. */
	uint64_t ms = watchdog_ns ? MAX(watchdog_ns / 2 / NSEC_PER_MSEC, 1) : STATUS_PERIOD_MS;

	return (int)MIN(ms, STATUS_PERIOD_MS);
}

static void status_text(struct server *srv, char *buf, size_t len)
{
	struct stats_sum sum;
	uint64_t active;

	report_sum(srv, &sum, &active);
	if (server_phase(srv) == PHASE_RUNNING)
		snprintf(buf, len, "Serving %llu connection%s (%llu since start); engine %s, %u worker%s",
			 (unsigned long long)active, active == 1 ? "" : "s",
			 (unsigned long long)sum.accepted, srv->engine->name, srv->n_workers,
			 srv->n_workers == 1 ? "" : "s");
	else
		snprintf(buf, len, "Draining: %llu connection%s left", (unsigned long long)active,
			 active == 1 ? "" : "s");
}

void service_ready(struct server *srv)
{
	char msg[200];

	status_text(srv, last_status, sizeof(last_status));
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", last_status);
	sd_notify(0, msg);
	last_ping = mono_ns();
	if (watchdog_ns)
		sd_notify(0, "WATCHDOG=1");
}

void service_stopping(unsigned drain_s)
{
	char msg[96];

	/* Ask for the drain's time and a margin for the exit, so that the
	 * unit's TimeoutStopSec never cuts a drain short (systemd 236+). */
	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=Draining\nEXTEND_TIMEOUT_USEC=%llu",
		 (unsigned long long)(drain_s + SERVICE_STOP_MARGIN_S) * 1000000ULL);
	sd_notify(0, msg);
	strcpy(last_status, "Draining");
}

/* Has every worker ticked since the previous check?  Wakes them all for
 * the next one.  While draining, workers end one by one: no check then. */
static bool workers_alive(struct server *srv)
{
	bool ok = true;

	if (!seen) {
		if (!(seen = malloc(srv->n_workers * sizeof(*seen))))
			return true;
		for (unsigned i = 0; i < srv->n_workers; i++)
			seen[i] = NOT_SEEN;
	}
	if (server_phase(srv) != PHASE_RUNNING)
		return true;
	for (unsigned i = 0; i < srv->n_workers; i++) {
		struct worker *w = &srv->workers[i];
		uint64_t a = atomic_load_explicit(&w->alive, memory_order_relaxed);
		if (a == seen[i]) {	/* woken at the last check, has not run */
			if (!stuck_logged)
				TRACE(TR_ERROR, "worker %u has not run its loop for %llu ms: "
				      "not feeding the watchdog", i,
				      (unsigned long long)((mono_ns() - (a ? a : srv->started)) /
							   NSEC_PER_MSEC));
			stuck_logged = true;
			ok = false;
		}
		seen[i] = a;
		worker_wake(w);
	}
	if (ok)
		stuck_logged = false;
	return ok;
}

void service_tick(struct server *srv)
{
	char status[sizeof(last_status)], msg[200];
	uint64_t now = mono_ns();

	status_text(srv, status, sizeof(status));
	if (strcmp(status, last_status)) {
		strcpy(last_status, status);
		snprintf(msg, sizeof(msg), "STATUS=%s", status);
		sd_notify(0, msg);
	}
	if (watchdog_ns && now - last_ping >= watchdog_ns) {
		last_ping = now;
		if (workers_alive(srv))
			sd_notify(0, "WATCHDOG=1");
	}
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* sd_notify calls; see service.h.
 *
 * The watchdog is pinged from main's loop at half the interval, as
 * sd_watchdog_enabled(3) advises, and only while every worker's loop still
 * turns (health.h: each check wakes every worker, and the next one checks
 * that each has run worker_tick() since).  A stuck worker, or a stuck main
 * thread, stops the pings and systemd restarts the service. */
#include "ops/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "ops/health.h"
#include "ops/report.h"
#include "server/server.h"
#include "core/trace.h"
#include "core/util.h"
#include "server/worker.h"

#define STATUS_PERIOD_MS 500	/* also paces the health checks */

static uint64_t watchdog_ns;	/* half the interval; 0 = off */
static uint64_t last_ping;
static char last_status[160];
static uint64_t last_check;	/* ns of the last health_check() */
static bool alive = true;	/* its verdict */

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
	else if (!sum.headers_waiting)
		snprintf(buf, len, "Draining: %llu connection%s left", (unsigned long long)active,
			 active == 1 ? "" : "s");
	else	/* the drain waits for them too (worker_done()) */
		snprintf(buf, len, "Draining: %llu connection%s left, %llu PROXY header%s waiting",
			 (unsigned long long)active, active == 1 ? "" : "s",
			 (unsigned long long)sum.headers_waiting, sum.headers_waiting == 1 ? "" : "s");
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
	/* The health check runs for the watchdog and for /healthz; without
	 * either, nothing wakes idle workers. */
	uint64_t period = watchdog_ns ? MIN(watchdog_ns, HEALTH_PERIOD_NS) : HEALTH_PERIOD_NS;
	if ((watchdog_ns || srv->cfg.metrics.len) && now - last_check >= period) {
		last_check = now;
		alive = health_check(srv);
	}
	if (watchdog_ns && now - last_ping >= watchdog_ns) {
		last_ping = now;
		if (alive)
			sd_notify(0, "WATCHDOG=1");
	}
}

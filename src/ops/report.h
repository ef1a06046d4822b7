/* SPDX-License-Identifier: GPL-2.0-only */
/* Reports built for the operator off the data path: the statistics as JSON
 * (echosrvctl stats) and the list of open connections (echosrvctl conns),
 * the latter gathered through each worker's mailbox (server/mailbox.h).
 * The metrics page has its own file (metrics.c) but the same sums. */
#ifndef ECHOSRV_REPORT_H
#define ECHOSRV_REPORT_H

#include "core/sbuf.h"
#include "core/stats.h"

struct server;
struct worker;

/* Connections a worker lists at most; the reply says when it cut short. */
#define REPORT_CONNS_MAX 10000
/* How long `conns` waits for the workers, all together. */
#define REPORT_WAIT_MS 2000
/* How long a scrape waits for them. */
#define REPORT_QUICK_WAIT_MS 200

/* Sum of every worker's counters; *active = open connections. */
void report_sum(struct server *srv, struct stats_sum *sum, uint64_t *active);
/* Where the engine's byte counters lag (engine_ops.sync), have every
 * running worker bring them up to date, waiting up to REPORT_WAIT_MS. */
void report_refresh(struct server *srv);
/* The same for a scrape, whose thread also answers /healthz and /readyz:
 * waits up to REPORT_QUICK_WAIT_MS, and not at all for a worker whose loop
 * has not turned for two health periods (with --metrics, main wakes every
 * worker each period, so a loop that turns turns more often than that).
 * A stuck worker's counters are shown as last refreshed. */
void report_refresh_quick(struct server *srv);

void report_stats_json(struct server *srv, struct sbuf *out);
void report_conns_json(struct server *srv, struct sbuf *out);

#endif

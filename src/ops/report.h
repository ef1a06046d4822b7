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

/* Sum of every worker's counters; *active = open connections. */
void report_sum(struct server *srv, struct stats_sum *sum, uint64_t *active);
/* Where the engine's byte counters lag (engine_ops.sync), have every
 * running worker bring them up to date, waiting up to REPORT_WAIT_MS. */
void report_refresh(struct server *srv);

void report_stats_json(struct server *srv, struct sbuf *out);
void report_conns_json(struct server *srv, struct sbuf *out);

#endif

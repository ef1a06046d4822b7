/* SPDX-License-Identifier: GPL-2.0-only */
/* Prometheus metrics at http://ADDR:PORT/metrics (--metrics).
 *
 * Served by libmicrohttpd from a thread of its own (ops/metrics_http.c), with
 * few connections, a bounded life for each and a small memory pool per
 * connection: a slow or hostile scraper cannot lock out the others, and
 * never slows the echo workers, since the page is built from relaxed loads
 * of the per-worker counters. */
#ifndef ECHOSRV_METRICS_H
#define ECHOSRV_METRICS_H

#include <stddef.h>

#include "core/config.h"
#include "core/sbuf.h"

struct server;

/* 0, or -errno with a message in err. */
int metrics_start(struct server *srv, const struct listen_addr *addr, char *err, size_t errlen);
/* Safe if never started. */
void metrics_stop(void);

/* The exposition text (format 0.0.4); separate for testing. */
void metrics_render(struct server *srv, struct sbuf *out);

/* The libmicrohttpd version this process runs with (echosrv -V). */
const char *metrics_lib_version(void);

#endif

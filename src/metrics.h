/* Prometheus metrics at http://ADDR:PORT/metrics (--metrics).
 *
 * Served by libmicrohttpd from a thread of its own, with few connections,
 * a short connection timeout and a small memory pool per connection: a slow
 * or hostile scraper can hold up other scrapes for seconds at worst, and the
 * echo workers never, since the page is built from relaxed loads of the
 * per-worker counters. */
#ifndef ECHOSRV_METRICS_H
#define ECHOSRV_METRICS_H

#include <stddef.h>

#include "config.h"
#include "sbuf.h"

struct server;

/* 0, or -errno with a message in err. */
int metrics_start(struct server *srv, const struct listen_addr *addr, char *err, size_t errlen);
/* Safe if never started. */
void metrics_stop(void);

/* The exposition text (format 0.0.4); separate for testing. */
void metrics_render(struct server *srv, struct sbuf *out);

#endif

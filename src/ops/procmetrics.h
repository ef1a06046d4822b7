/* SPDX-License-Identifier: GPL-2.0-only */
/* The standard process_* metrics every Prometheus client library exports
 * (CPU, memory, descriptors, start time), read from /proc at each scrape
 * through descriptors opened once: when the process runs out of
 * descriptors, the moment an operator most needs process_open_fds, a
 * scrape must not need a new one. */
#ifndef ECHOSRV_PROCMETRICS_H
#define ECHOSRV_PROCMETRICS_H

#include "core/sbuf.h"

/* Open /proc/self/stat and /proc/self/fd; 0 or -errno (the families
 * that need them are then left out). */
int procmetrics_open(void);
/* Safe if never opened. */
void procmetrics_close(void);
/* Append the families; a value /proc cannot give is left out. */
void procmetrics_render(struct sbuf *o);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* The standard process_* metrics every Prometheus client library exports
 * (CPU, memory, descriptors, start time), read from /proc at each scrape. */
#ifndef ECHOSRV_PROCMETRICS_H
#define ECHOSRV_PROCMETRICS_H

#include "core/sbuf.h"

/* Append the families; a value /proc cannot give is left out. */
void procmetrics_render(struct sbuf *o);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* The HTTP side of --metrics: one thread that owns the listening socket,
 * admits scrapers and runs libmicrohttpd from its own poll loop.
 *
 * libmicrohttpd's internal accept spins on EMFILE while it has no open
 * connection, and its connection timeout counts only inactivity, so a
 * client that sends a byte now and then holds a slot for ever.  Hence
 * echosrv accepts itself (pausing on EMFILE, as the workers do), keeps the
 * age of every connection, bounds each connection's whole life, and makes
 * room for a new scraper by closing the oldest slow one; libmicrohttpd
 * only parses and answers requests on the connections it is given. */
#ifndef ECHOSRV_METRICS_HTTP_H
#define ECHOSRV_METRICS_HTTP_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define MHTTP_CONNS 8				/* scrapers served at once */
#define MHTTP_PER_IP 4				/* of which from one address */
#define MHTTP_IDLE_S 5				/* silent connection closed after */
#define MHTTP_LIFE_NS (10 * NSEC_PER_SEC)	/* any connection closed after */
#define MHTTP_EVICT_AGE_NS (1 * NSEC_PER_SEC)	/* old enough to make room */

/* Bind addr and start the thread; handler answers each request.  The bound
 * port goes to *port.  0, or -errno with a message in err. */
int mhttp_start(const struct listen_addr *addr, MHD_AccessHandlerCallback handler,
		uint16_t *port, char *err, size_t errlen);
/* Safe if never started. */
void mhttp_stop(void);

/* The version of the libmicrohttpd this process runs with (echosrv -V). */
const char *mhttp_lib_version(void);

#endif

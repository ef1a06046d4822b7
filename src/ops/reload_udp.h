/* SPDX-License-Identifier: GPL-2.0-only */
/* A reload's UDP sockets (--udp-listen): which slots stay, which go, and
 * the sockets bound for the added ones; private to ops/reload.c.
 *
 * The same rules as the stream listeners' (docs/configuration.md): an
 * address still configured, as written or as bound, keeps its slot and
 * its sockets; an added one is bound for every worker before the reload
 * is declared done, and a failure refuses the whole reload with nothing
 * left bound.  Each worker then swaps its own row (worker_live.c).  Under
 * socket activation the sockets are systemd's and nothing changes here. */
#ifndef ECHOSRV_RELOAD_UDP_H
#define ECHOSRV_RELOAD_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"

struct server;
struct live;

struct udp_plan {
	uint32_t keep, add;	/* slots (bits) */
	struct sockaddr_storage bound[CONFIG_MAX_LISTEN];	/* of the added ones */
	struct listen_addr asked[CONFIG_MAX_LISTEN];
};

/* Plan nl's udp-listen lines and bind the added ones into nl->udp_added;
 * sets nl->udp_slots, udp_fresh and udp_bound.  0, or -errno with a
 * message in err and nothing left bound. */
int reload_udp_plan(struct server *srv, const struct live *cur, struct live *nl,
		    struct udp_plan *p, char *err, size_t errlen);
/* A later step refused the reload: close what the plan bound. */
void reload_udp_undo(struct live *nl, unsigned n_workers);
/* Once the workers have it: the log lines and the main thread's view.
 * True when an address came or went (the port file is written again). */
bool reload_udp_commit(struct server *srv, const struct udp_plan *p);

#endif

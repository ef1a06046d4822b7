/* SPDX-License-Identifier: GPL-2.0-only */
/* The engines this build has, and the choice between them (engine.c).
 * The interface they implement is the server's: server/engine_ops.h. */
#ifndef ECHOSRV_ENGINE_H
#define ECHOSRV_ENGINE_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"
#include "server/engine_ops.h"

extern const struct engine_ops engine_epoll;
extern const struct engine_ops engine_uring;
extern const struct engine_ops engine_sockmap;	/* root or CAP_BPF + CAP_NET_ADMIN */

/* The engine for cfg->engine; for auto, the best one that probes fine.
 * NULL with the reason in why when the requested one cannot run.  A
 * fallback is reported in note (empty when there was none). */
const struct engine_ops *engine_select(const struct config *cfg, char *why, size_t len,
				       char *note, size_t notelen);

/* For `echosrv -V`: each engine of this build and whether it can run here
 * (probed as --check does), and the versions of the libraries the engines
 * use, one line each. */
void engine_report(FILE *out, const struct config *cfg);

/* Parse the io_uring engine's environment knobs (ECHOSRV_URING_*); called
 * once at start, whatever the engine.  0, or -EINVAL with the bad one and
 * what it takes in why. */
int uring_env_load(char *why, size_t len);

#endif

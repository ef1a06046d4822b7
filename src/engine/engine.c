/* SPDX-License-Identifier: GPL-2.0-only */
/* Engine selection: the one asked for, or for auto the best that can run:
 * io_uring when its probe succeeds, else epoll with a note saying why.
 * sockmap is only ever used when asked for by name (it needs privileges and
 * changes where the data path runs), and it is probed here so that both a
 * start and --check fail with the reason when it cannot run. */
#include "engine/engine.h"

#include <stdio.h>
#include <string.h>

const struct engine_ops *engine_select(const struct config *cfg, char *why, size_t len,
				       char *note, size_t notelen)
{
	char reason[200];

	note[0] = '\0';
	switch (cfg->engine) {
	case ENGINE_AUTO:
		if (engine_uring.probe(cfg, reason, sizeof(reason)) == 0)
			return &engine_uring;
		snprintf(note, notelen, "io_uring is not available (%s); using epoll", reason);
		return &engine_epoll;
	case ENGINE_URING:
		if (engine_uring.probe(cfg, reason, sizeof(reason)) == 0)
			return &engine_uring;
		snprintf(why, len, "io_uring cannot run here: %s", reason);
		return NULL;
	case ENGINE_EPOLL:
		return &engine_epoll;
	case ENGINE_SOCKMAP:
		if (engine_sockmap.probe(cfg, why, len))
			return NULL;
		return &engine_sockmap;
	default:
		snprintf(why, len, "the %s engine is not available in this build",
			 engine_name((enum engine_kind)cfg->engine));
		return NULL;
	}
}

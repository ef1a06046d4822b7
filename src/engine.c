/* Engine selection: the one asked for, or for auto the best that can run. */
#include "engine.h"

#include <stdio.h>
#include <string.h>

const struct engine_ops *engine_select(const struct config *cfg, char *why, size_t len,
				       char *note, size_t notelen)
{
	note[0] = '\0';
	switch (cfg->engine) {
	case ENGINE_AUTO:
	case ENGINE_EPOLL:
		return &engine_epoll;
	default:
		snprintf(why, len, "the %s engine is not available in this build",
			 engine_name((enum engine_kind)cfg->engine));
		return NULL;
	}
}

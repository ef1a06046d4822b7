/* SPDX-License-Identifier: GPL-2.0-only */
/* Engine selection: the one asked for, or for auto the best that can run:
 * io_uring when its probe succeeds, else epoll with a note saying why.
 * sockmap is only ever used when asked for by name (it needs privileges and
 * changes where the data path runs), and it is probed here so that both a
 * start and --check fail with the reason when it cannot run. */
#include "engine/engine.h"

#include <bpf/libbpf.h>
#include <stdio.h>
#include <string.h>

#include "core/libinfo.h"

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

void engine_report(FILE *out, const struct config *cfg)
{
	const struct engine_ops *all[] = { &engine_epoll, &engine_uring, &engine_sockmap };
	char why[300], uring[32], bpf[32];

	fprintf(out, "engines in this build: epoll, io_uring, sockmap\n");
	fprintf(out, "engines that can run here (this kernel, these privileges):\n");
	for (unsigned i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		why[0] = '\0';
		int r = all[i]->probe ? all[i]->probe(cfg, why, sizeof(why)) : 0;
		fprintf(out, "  %-9s %s%s\n", all[i]->name, r ? "no: " : "yes", r ? why : "");
	}
	lib_loaded_version("liburing", uring, sizeof(uring));
	if (lib_loaded_version("libbpf", bpf, sizeof(bpf)))
		snprintf(bpf, sizeof(bpf), "%s", libbpf_version_string());
	fprintf(out, "liburing %s, libbpf %s\n", uring, bpf);
}

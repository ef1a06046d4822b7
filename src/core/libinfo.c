/* SPDX-License-Identifier: GPL-2.0-only */
/* The loaded version of a shared library; see libinfo.h. */
#include "core/libinfo.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lookup {
	const char *stem;
	char *out;
	size_t len;
	bool found;
};

/* The soname link (liburing.so.2) is what DT_NEEDED names; its target
 * carries the whole version. */
static int visit(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct lookup *l = arg;
	char real[PATH_MAX], prefix[64];
	const char *base;

	(void)size;
	if (!info->dlpi_name || !strstr(info->dlpi_name, l->stem))
		return 0;
	if (!realpath(info->dlpi_name, real))
		return 0;
	base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
	snprintf(prefix, sizeof(prefix), "%s.so.", l->stem);
	if (strncmp(base, prefix, strlen(prefix)))
		return 0;
	snprintf(l->out, l->len, "%s", base + strlen(prefix));
	l->found = true;
	return 1;
}

int lib_loaded_version(const char *stem, char *out, size_t len)
{
	struct lookup l = { .stem = stem, .out = out, .len = len };

	dl_iterate_phdr(visit, &l);
	if (!l.found)
		snprintf(out, len, "unknown");
	return l.found ? 0 : -ENOENT;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* Start-up checks of the files echosrv will create; see preflight.h. */
#include "core/preflight.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/util.h"

/* The directory part of path ("." for a bare name, "/" for "/x"). */
static void dir_of(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, len, ".");
	else if (slash == path)
		snprintf(dir, len, "/");
	else
		snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

/* May this process create a file at path (or, existing_ok, write the file
 * that is there)? */
static int can_create(const char *opt, const char *path, bool existing_ok, char *err,
		      size_t errlen)
{
	char dir[4096];
	struct stat st;

	if (existing_ok && lstat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
		if (access(path, W_OK) == 0)
			return 0;
		int r = ERR();
		snprintf(err, errlen, "--%s %s: cannot write it: %s", opt, path, strerror(-r));
		return r;
	}
	dir_of(path, dir, sizeof(dir));
	if (stat(dir, &st)) {
		int r = ERR();
		snprintf(err, errlen, "--%s %s: directory %s %s", opt, path, dir,
			 r == -ENOENT ? "does not exist" : strerror(-r));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "--%s %s: %s is not a directory", opt, path, dir);
		return -ENOTDIR;
	}
	if (access(dir, W_OK | X_OK)) {
		int r = ERR();
		snprintf(err, errlen, "--%s %s: cannot create files in %s: %s", opt, path, dir,
			 strerror(-r));
		return r;
	}
	return 0;
}

int ctl_group_id(const char *name, gid_t *gid)
{
	char buf[4096], *end;
	struct group g, *res = NULL;
	unsigned long n = strtoul(name, &end, 10);

	if (*name >= '0' && *name <= '9' && !*end && n < (gid_t)-1) {
		*gid = (gid_t)n;
		return 0;
	}
	if (getgrnam_r(name, &g, buf, sizeof(buf), &res) || !res)
		return -ENOENT;
	*gid = res->gr_gid;
	return 0;
}

int preflight_check(const struct config *cfg, char *err, size_t errlen)
{
	size_t sun_max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	gid_t gid;
	int r;

	if (cfg->ctl_path && strlen(cfg->ctl_path) > sun_max) {
		/* The same words as ctl_start(), which checks it again. */
		snprintf(err, errlen, "--ctl %s: path longer than %zu bytes", cfg->ctl_path,
			 sun_max);
		return -ENAMETOOLONG;
	}
	if (cfg->ctl_path && (r = can_create("ctl", cfg->ctl_path, false, err, errlen)))
		return r;
	if (cfg->ctl_group && ctl_group_id(cfg->ctl_group, &gid)) {
		snprintf(err, errlen, "--ctl-group %s: no such group", cfg->ctl_group);
		return -ENOENT;
	}
	if (cfg->port_file && (r = can_create("port-file", cfg->port_file, false, err, errlen)))
		return r;
	if (cfg->trace_file && (r = can_create("trace-file", cfg->trace_file, true, err, errlen)))
		return r;
	return 0;
}

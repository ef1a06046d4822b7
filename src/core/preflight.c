/* SPDX-License-Identifier: GPL-2.0-only */
/* Start-up checks of the files echosrv will create; see preflight.h. */
#include "core/preflight.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/safefile.h"
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

/* What safefile would refuse when the file is made (a link, a directory,
 * another owner's file, an unsafe directory, a name too long): the same
 * checks, so that --check does not pass what start-up then refuses. */
static int safe_to_make(const char *opt, const char *path, bool append, char *err,
			size_t errlen)
{
	int r = can_create(opt, path, append, err, errlen);

	if (!r && (r = safefile_check(path, append)))
		snprintf(err, errlen, "--%s: refusing %s: %s", opt, path,
			 safefile_refusal() ? safefile_refusal() : strerror(-r));
	return r;
}

/* The control socket is bound in place, never over something else
 * (ctl.c's bind_ctl() refuses in the same words). */
static int ctl_path_free(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "--ctl %s: exists and is not a socket; not replacing it",
			 path);
		return -EEXIST;
	}
	return 0;
}

/* chown() to a group needs CAP_CHOWN or membership (ctl.c's set_group()). */
static bool may_give_to(gid_t gid)
{
	gid_t groups[256];
	int n;

	if (geteuid() == 0 || getegid() == gid)
		return true;
	n = getgroups((int)ARRAY_SIZE(groups), groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return n < 0;	/* cannot tell: leave it to start-up */
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

void preflight_listen_error(char *err, size_t errlen, bool udp, const char *text,
			    unsigned port, int r)
{
	char hint[320] = "";

	if (r == -EADDRINUSE)
		snprintf(hint, sizeof(hint), " (another process has this port)");
	else if (r == -EACCES && port < 1024)
		snprintf(hint, sizeof(hint), " (a port below 1024 needs privilege: let systemd "
			 "bind it (echosrv.socket with %s=%u), or grant "
			 "CAP_NET_BIND_SERVICE (AmbientCapabilities=), or lower the sysctl "
			 "net.ipv4.ip_unprivileged_port_start to %u)",
			 udp ? "ListenDatagram" : "ListenStream", port, port);
	snprintf(err, errlen, "cannot %s %s: %s%s", udp ? "bind UDP" : "listen on", text,
		 strerror(-r), hint);
}

/* May this process bind its ports below 1024?  A trial bind tells: the
 * kernel checks the privilege before whether the port is taken, so an
 * instance already serving there (a --check before a restart) does not
 * fail this.  Sockets that systemd passes (LISTEN_FDS) are not bound. */
static int low_ports(const struct listen_addr *list, unsigned n, bool udp, char *err,
		     size_t errlen)
{
	if (getenv("LISTEN_FDS"))
		return 0;
	for (unsigned a = 0; a < n; a++) {
		const struct listen_addr *l = &list[a];
		/* The port sits at the same offset in sockaddr_in and sockaddr_in6. */
		unsigned port = ntohs(((const struct sockaddr_in *)&l->ss)->sin_port);
		char text[ADDR_TEXT_MAX];
		int fd, r;

		if (port == 0 || port >= 1024)
			continue;
		if ((fd = socket(l->ss.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC,
				 0)) < 0)
			continue;	/* start-up says why */
		r = bind(fd, (const struct sockaddr *)&l->ss, l->len) ? ERR() : 0;
		close(fd);
		if (r != -EACCES)
			continue;
		addr_format((const struct sockaddr *)&l->ss, text, sizeof(text));
		preflight_listen_error(err, errlen, udp, text, port, r);
		return r;
	}
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
	if (cfg->ctl_path && (r = ctl_path_free(cfg->ctl_path, err, errlen)))
		return r;
	if (cfg->ctl_group && ctl_group_id(cfg->ctl_group, &gid)) {
		snprintf(err, errlen, "--ctl-group %s: no such group", cfg->ctl_group);
		return -ENOENT;
	}
	if (cfg->ctl_path && cfg->ctl_group && !may_give_to(gid)) {
		snprintf(err, errlen, "--ctl-group %s: cannot give %s to it: %s (echosrv must be "
			 "a member of the group)", cfg->ctl_group, cfg->ctl_path, strerror(EPERM));
		return -EPERM;
	}
	if (cfg->port_file && (r = safe_to_make("port-file", cfg->port_file, false, err, errlen)))
		return r;
	if (cfg->trace_file && (r = safe_to_make("trace-file", cfg->trace_file, true, err, errlen)))
		return r;
	if ((r = low_ports(cfg->listen, cfg->n_listen, false, err, errlen)))
		return r;
	return low_ports(cfg->udp_listen, cfg->n_udp_listen, true, err, errlen);
}

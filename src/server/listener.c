/* SPDX-License-Identifier: GPL-2.0-only */
/* Binding, dual-stack fallback and the port file; see listener.h. */
#include "server/listener.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "core/safefile.h"
#include "core/trace.h"
#include "core/util.h"

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v)) ? ERR() : 0;
}

/* How a listening socket takes part in its address's SO_REUSEPORT group. */
enum group {
	GROUP_NONE,	/* one worker: no group */
	GROUP_FOUND,	/* the first of several: binds and listens alone, then opens the group */
	GROUP_JOIN,	/* the others: join the group the first one opened */
};

/* One listening socket on ss; 0 or -errno.
 *
 * The kernel lets a socket bind next to listening ones only if all of them
 * have SO_REUSEPORT and the same owner, so a second echosrv of the same
 * user would silently join our group and take a share of the connections.
 * The first socket of an address therefore binds and listens without
 * SO_REUSEPORT: that fails with EADDRINUSE wherever anyone listens on the
 * address, and of two instances starting at the same moment one fails at
 * listen().  Only then does it set SO_REUSEPORT, which lets this process's
 * other workers join (the kernel builds the group lazily around it).  A
 * later instance's first socket, again without SO_REUSEPORT, is refused. */
static int listen_one(const struct sockaddr_storage *ss, socklen_t len, enum group group,
		      int backlog, int *out)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int r;

	if (fd < 0)
		return ERR();
	if ((r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)))
		goto fail;
	if (group == GROUP_JOIN && (r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)))
		goto fail;
	/* Dual stack whatever the host's net.ipv6.bindv6only says. */
	if (ss->ss_family == AF_INET6 && (r = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0)))
		goto fail;
	if (bind(fd, (const struct sockaddr *)ss, len) || listen(fd, backlog)) {
		r = ERR();
		goto fail;
	}
	if (group == GROUP_FOUND && (r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)))
		goto fail;
	*out = fd;
	return 0;
fail:
	close(fd);
	return r;
}

/* --keepalive: set on the listening socket, because Linux copies these
 * options into every socket accepted from it.  That costs nothing per
 * accept and reaches every engine, including io_uring's direct descriptors,
 * which setsockopt() cannot name.  A silent connection is probed after
 * secs seconds, then 3 times every secs/3; TCP_USER_TIMEOUT bounds the same
 * total for a peer that stops acknowledging data we sent, which keepalive
 * alone would leave to the retransmission timer (about 15 minutes). */
int listener_set_keepalive(int fd, uint32_t secs)
{
	int intvl = (int)MAX(1, (secs + 2) / 3), cnt = 3;
	int r;

	if (!secs)	/* off, also after a reload turned it off */
		return set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 0) ?:
		       set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 0);
	if ((r = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1)) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)secs)) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl)) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, cnt)))
		return r;
	return set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, ((int)secs + cnt * intvl) * 1000);
}

/* Options every accepted socket inherits from its listener (bound here or
 * passed by systemd).  SO_OOBINLINE: urgent data (MSG_OOB) stays in the
 * byte stream, so every engine echoes it in order like any other byte;
 * without it TCP takes the urgent byte out of the stream, the epoll and
 * io_uring engines never see it, and sockmap (which moves whole skbs)
 * echoes it anyway. */
static int set_inherited(int fd, const struct config *cfg)
{
	int r = set_int(fd, SOL_SOCKET, SO_OOBINLINE, 1);

	return r ? r : listener_set_keepalive(fd, cfg->keepalive);
}

static bool ipv6_missing(int err)
{
	return err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL || err == -EPROTONOSUPPORT;
}

/* Bind one address for every worker into fds[w * stride]; the first socket
 * decides the port when 0 was asked for, and the others join it.  On a
 * failure the sockets opened so far are closed again. */
static int open_into(unsigned n_workers, const struct config *cfg, struct sockaddr_storage *ss,
		     socklen_t len, int *fds, unsigned stride, struct sockaddr_storage *bound)
{
	int r = 0;

	for (unsigned w = 0; w < n_workers; w++) {
		enum group g = n_workers == 1 ? GROUP_NONE : w == 0 ? GROUP_FOUND : GROUP_JOIN;
		r = listen_one(ss, len, g, (int)MIN(cfg->backlog, 0x7fffffffu), &fds[w * stride]);
		if (!r && (r = set_inherited(fds[w * stride], cfg))) {
			close(fds[w * stride]);
			fds[w * stride] = -1;
		}
		if (r) {
			while (w--) {
				close(fds[w * stride]);
				fds[w * stride] = -1;
			}
			return r;
		}
		if (w == 0) {
			socklen_t blen = sizeof(*bound);
			getsockname(fds[0], (struct sockaddr *)bound, &blen);
			*ss = *bound;	/* same port for the other workers */
		}
	}
	return 0;
}

static int open_addr(struct listeners *ls, const struct config *cfg, unsigned a,
		     struct sockaddr_storage *ss, socklen_t len)
{
	int r = open_into(ls->n_workers, cfg, ss, len, &ls->fds[a], ls->n_addr, &ls->bound[a]);

	if (!r)
		ls->used |= 1u << a;
	return r;
}

int listeners_bind(const struct listeners *ls, const struct config *cfg,
		   const struct listen_addr *want, int *fds, unsigned stride,
		   struct sockaddr_storage *bound, char *err, size_t errlen)
{
	struct sockaddr_storage ss = want->ss;
	int r = open_into(ls->n_workers, cfg, &ss, want->len, fds, stride, bound);

	if (r) {
		char text[ADDR_TEXT_MAX];
		addr_format((const struct sockaddr *)&want->ss, text, sizeof(text));
		snprintf(err, errlen, "cannot listen on %s: %s%s", text, strerror(-r),
			 r == -EADDRINUSE ? " (another process has this port)" : "");
	}
	return r;
}

/* The default [::]:40007 falls back to 0.0.0.0 where IPv6 is off. */
static int open_default(struct listeners *ls, const struct config *cfg)
{
	struct sockaddr_storage ss = cfg->listen[0].ss;
	int r = open_addr(ls, cfg, 0, &ss, cfg->listen[0].len);

	if (!ipv6_missing(r))
		return r;
	log_notice("IPv6 is not available here (%s); listening on IPv4 0.0.0.0 only",
		   strerror(-r));
	listeners_close_row(ls, 0);
	struct sockaddr_in a4 = {
		.sin_family = AF_INET,
		.sin_port = ((const struct sockaddr_in6 *)&cfg->listen[0].ss)->sin6_port,
		.sin_addr.s_addr = htonl(INADDR_ANY),
	};
	memcpy(&ss, &a4, sizeof(a4));
	return open_addr(ls, cfg, 0, &ss, sizeof(a4));
}

static int alloc_fds(struct listeners *ls, unsigned n_addr, unsigned n_workers)
{
	ls->n_addr = n_addr;
	ls->n_workers = n_workers;
	ls->fds = malloc(sizeof(int) * ls->n_addr * ls->n_workers);
	if (!ls->fds)
		return -ENOMEM;
	for (unsigned i = 0; i < ls->n_addr * ls->n_workers; i++)
		ls->fds[i] = -1;
	return 0;
}

/* Socket activation: adopt the n sockets systemd passed (from fd 3 on).
 * Worker 0 owns the originals and every other worker a dup of each, all
 * accepting from the same queue (the engines use EPOLLEXCLUSIVE or the
 * ring's equivalent, so one connection wakes one worker). */
static int adopt(struct listeners *ls, const struct config *cfg, int n, char *err,
		 size_t errlen)
{
	int r;

	if (n > CONFIG_MAX_LISTEN) {
		snprintf(err, errlen, "socket activation: %d sockets passed, at most %d supported", n,
			 CONFIG_MAX_LISTEN);
		return -EINVAL;
	}
	if ((r = alloc_fds(ls, (unsigned)n, cfg->workers)))
		return r;
	ls->activated = true;
	ls->shared = cfg->workers > 1;
	ls->used = (1u << n) - 1;
	for (unsigned a = 0; a < ls->n_addr; a++) {
		int fd = SD_LISTEN_FDS_START + (int)a;
		socklen_t blen = sizeof(ls->bound[a]);
		ls->fds[a] = fd;
		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0 ||
		    getsockname(fd, (struct sockaddr *)&ls->bound[a], &blen) ||
		    (ls->bound[a].ss_family != AF_INET && ls->bound[a].ss_family != AF_INET6)) {
			snprintf(err, errlen, "socket activation: descriptor %d is not a listening "
				 "TCP socket (check ListenStream= in the .socket unit)", fd);
			return -EINVAL;
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC))
			return ERR();
		if ((r = set_inherited(fd, cfg)))
			return r;
		for (unsigned w = 1; w < ls->n_workers; w++) {
			int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
			if (d < 0)
				return ERR();
			ls->fds[w * ls->n_addr + a] = d;
		}
	}
	if (!cfg->listen_default)
		log_notice("socket activation: using the %d socket%s systemd passed; --listen ignored",
			   n, n == 1 ? "" : "s");
	return 0;
}

int listeners_open(struct listeners *ls, const struct config *cfg, char *err, size_t errlen)
{
	/* unset_environment: LISTEN_* must not leak to anything we start. */
	int n = sd_listen_fds(1);
	int r;

	memset(ls, 0, sizeof(*ls));
	if (n < 0) {
		snprintf(err, errlen, "socket activation: %s", strerror(-n));
		return n;
	}
	if (n > 0) {
		if ((r = adopt(ls, cfg, n, err, errlen))) {
			if (!*err)
				snprintf(err, errlen, "socket activation: %s", strerror(-r));
			listeners_free(ls);
		}
		return r;
	}
	/* Every slot a reload may fill, so a row never moves (listener.h). */
	if ((r = alloc_fds(ls, CONFIG_MAX_LISTEN, cfg->workers)))
		return r;

	for (unsigned a = 0; a < cfg->n_listen; a++) {
		struct sockaddr_storage ss = cfg->listen[a].ss;
		ls->asked[a] = cfg->listen[a];
		r = cfg->listen_default ? open_default(ls, cfg)
					: open_addr(ls, cfg, a, &ss, cfg->listen[a].len);
		if (r) {
			char text[ADDR_TEXT_MAX];
			addr_format((const struct sockaddr *)&cfg->listen[a].ss, text, sizeof(text));
			snprintf(err, errlen, "cannot listen on %s: %s%s", text, strerror(-r),
				 r == -EADDRINUSE ? " (another process has this port)" : "");
			listeners_free(ls);
			return r;
		}
	}
	return 0;
}

void listeners_close_row(struct listeners *ls, unsigned worker)
{
	int *row = listener_row(ls, worker);

	for (unsigned a = 0; a < ls->n_addr; a++) {
		if (row[a] >= 0)
			close(row[a]);
		row[a] = -1;
	}
}

void listeners_free(struct listeners *ls)
{
	if (!ls->fds)
		return;
	for (unsigned w = 0; w < ls->n_workers; w++)
		listeners_close_row(ls, w);
	free(ls->fds);
	ls->fds = NULL;
}

int listeners_write_port_file(const struct listeners *ls, const char *path, struct safefile *f)
{
	char text[CONFIG_MAX_LISTEN * (ADDR_TEXT_MAX + 1)];
	size_t n = 0;

	for (unsigned a = 0; a < ls->n_addr; a++) {
		if (!(ls->used & (1u << a)))
			continue;
		addr_format((const struct sockaddr *)&ls->bound[a], text + n, ADDR_TEXT_MAX);
		n += strlen(text + n);
		text[n++] = '\n';
	}
	int r = safefile_replace(path, text, n, f);
	if (r && safefile_refusal())
		log_notice("refusing %s: %s", path, safefile_refusal());
	return r;
}

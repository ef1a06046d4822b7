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

#include "core/preflight.h"
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

/* A proxy listener's connections are handed over once their first bytes
 * are in (TCP_DEFER_ACCEPT): a balancer sends its header at once, so the
 * header is nearly always whole at accept and read there, without a turn
 * through the waiting set (preamble.c).  One second, not --proxy-timeout:
 * a connection that sends nothing is still accepted a second or two later
 * (when the kernel's SYN-ACK retransmit is answered), and its header wait
 * then runs from that accept as for any other. */
#define PROXY_DEFER_SECS 1

static int set_kind(int fd, bool proxy)
{
	return proxy ? set_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, PROXY_DEFER_SECS) : 0;
}

static unsigned addr_port_of(const struct listen_addr *l)
{
	/* The port sits at the same offset in sockaddr_in and sockaddr_in6. */
	return ntohs(((const struct sockaddr_in *)&l->ss)->sin_port);
}

static bool ipv6_missing(int err)
{
	return err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL || err == -EPROTONOSUPPORT;
}

/* Bind one address for every worker into fds[w * stride]; the first socket
 * decides the port when 0 was asked for, and the others join it.  On a
 * failure the sockets opened so far are closed again. */
static int open_into(unsigned n_workers, const struct config *cfg, struct sockaddr_storage *ss,
		     socklen_t len, bool proxy, int *fds, unsigned stride,
		     struct sockaddr_storage *bound)
{
	int r = 0;

	for (unsigned w = 0; w < n_workers; w++) {
		enum group g = n_workers == 1 ? GROUP_NONE : w == 0 ? GROUP_FOUND : GROUP_JOIN;
		r = listen_one(ss, len, g, (int)MIN(cfg->backlog, 0x7fffffffu), &fds[w * stride]);
		if (!r && ((r = set_inherited(fds[w * stride], cfg)) ||
			   (r = set_kind(fds[w * stride], proxy)))) {
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
	int r = open_into(ls->n_workers, cfg, ss, len, cfg->listen[a].proxy, &ls->fds[a],
			  ls->n_addr, &ls->bound[a]);

	if (!r)
		ls->used |= 1u << a;
	return r;
}

int listeners_bind(const struct listeners *ls, const struct config *cfg,
		   const struct listen_addr *want, int *fds, unsigned stride,
		   struct sockaddr_storage *bound, char *err, size_t errlen)
{
	struct sockaddr_storage ss = want->ss;
	int r = open_into(ls->n_workers, cfg, &ss, want->len, want->proxy, fds, stride, bound);

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

static void free_names(char **names)
{
	for (char **p = names; p && *p; p++)
		free(*p);
	free(names);
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

/* The a-th stream socket among the n systemd passed: datagram ones are
 * the UDP listeners' (udp_listener.c). */
static int passed_stream_fd(int n, unsigned a)
{
	for (int i = 0; i < n; i++)
		if (!udp_passed_is_datagram(SD_LISTEN_FDS_START + i) && a-- == 0)
			return SD_LISTEN_FDS_START + i;
	return -1;
}

/* Socket activation: adopt the n sockets systemd passed (from fd 3 on).
 * Worker 0 owns the originals and every other worker a dup of each, all
 * accepting from the same queue (the engines use EPOLLEXCLUSIVE or the
 * ring's equivalent, so one connection wakes one worker). */
static int adopt(struct listeners *ls, const struct config *cfg, int n, char **names,
		 char *err, size_t errlen)
{
	int r, passed = n;

	for (int i = n = 0; i < passed; i++)
		n += !udp_passed_is_datagram(SD_LISTEN_FDS_START + i);
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
		int fd = passed_stream_fd(passed, a);
		socklen_t blen = sizeof(ls->bound[a]);
		ls->fds[a] = fd;
		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0 ||
		    getsockname(fd, (struct sockaddr *)&ls->bound[a], &blen) ||
		    (ls->bound[a].ss_family != AF_INET && ls->bound[a].ss_family != AF_INET6)) {
			snprintf(err, errlen, "socket activation: descriptor %d is not a listening "
				 "TCP socket (check ListenStream= in the .socket unit)", fd);
			return -EINVAL;
		}
		int i = fd - SD_LISTEN_FDS_START;	/* names are by position among all passed */
		if (names && names[i] && !strcmp(names[i], "proxy")) {
			ls->proxy[a] = true;	/* FileDescriptorName=proxy */
			ls->n_proxy++;
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC))
			return ERR();
		if ((r = set_inherited(fd, cfg)) || (r = set_kind(fd, ls->proxy[a])))
			return r;
		for (unsigned w = 1; w < ls->n_workers; w++) {
			int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
			if (d < 0)
				return ERR();
			ls->fds[w * ls->n_addr + a] = d;
		}
	}
	if (ls->n_proxy && !cfg->n_proxy_from) {
		snprintf(err, errlen, "socket activation: a socket named \"proxy\" needs --proxy-from "
			 "CIDR, the load balancers trusted to send PROXY headers");
		return -EINVAL;
	}
	if (!cfg->listen_default)
		log_notice("socket activation: using the %d socket%s systemd passed; --listen ignored",
			   n, n == 1 ? "" : "s");
	return 0;
}

int listeners_open(struct listeners *ls, const struct config *cfg, char *err, size_t errlen)
{
	/* unset_environment: LISTEN_* must not leak to anything we start. */
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	int r;

	memset(ls, 0, sizeof(*ls));
	if (n < 0) {
		snprintf(err, errlen, "socket activation: %s", strerror(-n));
		return n;
	}
	if ((r = udp_listeners_open(&ls->udp, cfg, n, err, errlen)))
		return r;
	if (n > 0) {
		if ((r = adopt(ls, cfg, n, names, err, errlen))) {
			if (!*err)
				snprintf(err, errlen, "socket activation: %s", strerror(-r));
			listeners_free(ls);
		}
		free_names(names);
		return r;
	}
	free_names(names);
	/* Every slot a reload may fill, so a row never moves (listener.h). */
	if ((r = alloc_fds(ls, CONFIG_MAX_LISTEN, cfg->workers)))
		return r;

	for (unsigned a = 0; a < cfg->n_listen; a++) {
		struct sockaddr_storage ss = cfg->listen[a].ss;
		ls->proxy[a] = cfg->listen[a].proxy;
		ls->n_proxy += ls->proxy[a];
		ls->asked[a] = cfg->listen[a];
		r = cfg->listen_default ? open_default(ls, cfg)
					: open_addr(ls, cfg, a, &ss, cfg->listen[a].len);
		if (r) {
			char text[ADDR_TEXT_MAX];
			addr_format((const struct sockaddr *)&cfg->listen[a].ss, text, sizeof(text));
			preflight_listen_error(err, errlen, false, text, addr_port_of(&cfg->listen[a]), r);
			listeners_free(ls);
			return r;
		}
	}
	return 0;
}

/* Does a socket bound to b take connections to local address l?  Same
 * port, and the same address or b's family wildcard ([::] is dual-stack). */
static bool bound_takes(const struct sockaddr *b, const struct sockaddr *l)
{
	struct ipaddr ib, il, any = { 0 };

	if (((const struct sockaddr_in *)b)->sin_port != ((const struct sockaddr_in *)l)->sin_port)
		return false;	/* sin_port and sin6_port share their offset */
	addr_to_ip(b, &ib);
	addr_to_ip(l, &il);
	any.family = ib.family;
	return ipaddr_equal(&ib, &il) || (ipaddr_equal(&ib, &any) &&
					  (ib.family == AF_INET6 || il.family == AF_INET));
}

bool listeners_is_proxy(const struct listeners *ls, const struct sockaddr_storage *bound, int fd)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	int wild = -1;

	if (ls->n_proxy == 0)
		return false;
	if (getsockname(fd, (struct sockaddr *)&local, &len))
		return true;	/* unknown: the stricter kind */
	/* An exact address wins over a wildcard on the same port. */
	for (unsigned a = 0; a < CONFIG_MAX_LISTEN; a++) {
		struct ipaddr ib;
		if (!bound[a].ss_family ||
		    !bound_takes((const struct sockaddr *)&bound[a], (struct sockaddr *)&local))
			continue;
		addr_to_ip((const struct sockaddr *)&bound[a], &ib);
		struct ipaddr any = { .family = ib.family };
		if (!ipaddr_equal(&ib, &any))
			return ls->proxy[a];
		wild = (int)a;
	}
	return wild < 0 || ls->proxy[wild];
}

void listeners_close_row(struct listeners *ls, unsigned worker)
{
	int *row = listener_row(ls, worker);

	udp_listeners_close_row(&ls->udp, worker);
	for (unsigned a = 0; a < ls->n_addr; a++) {
		if (row[a] >= 0)
			close(row[a]);
		row[a] = -1;
	}
}

void listeners_free(struct listeners *ls)
{
	udp_listeners_free(&ls->udp);
	if (!ls->fds)
		return;
	for (unsigned w = 0; w < ls->n_workers; w++)
		listeners_close_row(ls, w);
	free(ls->fds);
	ls->fds = NULL;
}

int listeners_write_port_file(const struct listeners *ls, const char *path, struct safefile *f)
{
	char text[2 * CONFIG_MAX_LISTEN * (ADDR_TEXT_MAX + 5)];
	size_t n = 0;

	for (unsigned a = 0; a < ls->n_addr; a++) {
		if (!(ls->used & (1u << a)))
			continue;
		addr_format((const struct sockaddr *)&ls->bound[a], text + n, ADDR_TEXT_MAX);
		n += strlen(text + n);
		text[n++] = '\n';
	}
	/* UDP addresses follow, marked "udp:" (docs/udp.md). */
	for (unsigned a = 0; a < ls->udp.n_addr; a++) {
		if (!(ls->udp.used & (1u << a)))
			continue;
		memcpy(text + n, "udp:", 4);
		addr_format((const struct sockaddr *)&ls->udp.bound[a], text + n + 4, ADDR_TEXT_MAX);
		n += strlen(text + n);
		text[n++] = '\n';
	}
	int r = safefile_replace(path, text, n, f);
	if (r && safefile_refusal())
		log_notice("refusing %s: %s", path, safefile_refusal());
	return r;
}

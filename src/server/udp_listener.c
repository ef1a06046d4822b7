/* SPDX-License-Identifier: GPL-2.0-only */
/* Binding the UDP sockets; see udp_listener.h. */
#include "server/udp_listener.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "core/trace.h"
#include "core/util.h"

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v)) ? ERR() : 0;
}

bool udp_passed_is_datagram(int fd)
{
	return sd_is_socket(fd, AF_UNSPEC, SOCK_DGRAM, -1) > 0;
}

/* Ancillary data and the Don't Fragment choice, for bound and passed
 * sockets alike.  IP_PKTINFO on an IPv6 socket covers the IPv4 peers of a
 * dual-stack one; a kernel that refuses it still gives IPV6_PKTINFO with a
 * v4-mapped address, so that failure is ignored. */
static int set_options(int fd, int family, const struct config *cfg)
{
	int r;

	if (family == AF_INET6) {
		if ((r = set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)))
			return r;
		set_int(fd, IPPROTO_IP, IP_PKTINFO, 1);
		if (cfg->udp_df &&
		    ((r = set_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO)) ||
		     (r = set_int(fd, IPPROTO_IPV6, IPV6_DONTFRAG, 1))))
			return r;
	} else if ((r = set_int(fd, IPPROTO_IP, IP_PKTINFO, 1))) {
		return r;
	}
	if (cfg->udp_df)
		set_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO);	/* IPv4 peers */
	return 0;
}

/* One socket; the first of an address binds without SO_REUSEPORT, so that
 * an address someone else holds fails here (listener.c says why), and then
 * opens the group for the other workers. */
static int bind_one(const struct sockaddr_storage *ss, socklen_t len, bool first, bool group,
		    const struct config *cfg, int *out)
{
	int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int r;

	if (fd < 0)
		return ERR();
	if (!first && (r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)))
		goto fail;
	if (ss->ss_family == AF_INET6 && (r = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0)))
		goto fail;
	if ((r = set_options(fd, ss->ss_family, cfg)))
		goto fail;
	if (bind(fd, (const struct sockaddr *)ss, len)) {
		r = ERR();
		goto fail;
	}
	if (first && group && (r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)))
		goto fail;
	*out = fd;
	return 0;
fail:
	close(fd);
	return r;
}

static int bind_addr(struct udp_listeners *u, const struct config *cfg, unsigned a,
		     struct sockaddr_storage ss, socklen_t len)
{
	int r;

	for (unsigned w = 0; w < u->n_workers; w++) {
		if ((r = bind_one(&ss, len, w == 0, u->n_workers > 1, cfg, &u->fds[w * u->n_addr + a])))
			return r;
		if (w == 0) {
			socklen_t blen = sizeof(u->bound[a]);
			getsockname(u->fds[a], (struct sockaddr *)&u->bound[a], &blen);
			ss = u->bound[a];	/* the port 0 chose, for the others */
		}
	}
	return 0;
}

/* [::]:PORT falls back to 0.0.0.0:PORT where IPv6 is off, as TCP does. */
static int open_addr(struct udp_listeners *u, const struct config *cfg, unsigned a)
{
	const struct listen_addr *l = &cfg->udp_listen[a];
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&l->ss;
	int r = bind_addr(u, cfg, a, l->ss, l->len);

	if (!(r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL) || a6->sin6_family != AF_INET6 ||
	    !IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr))
		return r;
	log_notice("IPv6 is not available here (%s); UDP on IPv4 0.0.0.0 only", strerror(-r));
	udp_listeners_close_row(u, 0);
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	a4->sin_family = AF_INET;
	a4->sin_port = a6->sin6_port;
	return bind_addr(u, cfg, a, ss, sizeof(*a4));
}

static int alloc_fds(struct udp_listeners *u, unsigned n_addr, unsigned n_workers)
{
	u->n_addr = n_addr;
	u->n_workers = n_workers;
	u->fds = malloc(sizeof(int) * (n_addr * n_workers + 1));
	if (!u->fds)
		return -ENOMEM;
	for (unsigned i = 0; i < n_addr * n_workers; i++)
		u->fds[i] = -1;
	return 0;
}

/* Socket activation: worker 0 takes every datagram socket passed. */
static int adopt(struct udp_listeners *u, const struct config *cfg, int passed, char *err,
		 size_t errlen)
{
	unsigned n = 0;
	int r;

	for (int i = 0; i < passed; i++)
		n += udp_passed_is_datagram(SD_LISTEN_FDS_START + i);
	if (n > CONFIG_MAX_LISTEN) {
		snprintf(err, errlen, "socket activation: %u datagram sockets passed, at most %d",
			 n, CONFIG_MAX_LISTEN);
		return -EINVAL;
	}
	if ((r = alloc_fds(u, n, cfg->workers)))
		return r;
	u->activated = true;
	for (int i = 0, a = 0; i < passed; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		socklen_t blen = sizeof(u->bound[a]);
		if (!udp_passed_is_datagram(fd))
			continue;
		u->fds[a] = fd;
		if (getsockname(fd, (struct sockaddr *)&u->bound[a], &blen) ||
		    (u->bound[a].ss_family != AF_INET && u->bound[a].ss_family != AF_INET6)) {
			snprintf(err, errlen, "socket activation: descriptor %d is not a UDP socket "
				 "(check ListenDatagram= in the .socket unit)", fd);
			return -EINVAL;
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC))
			return ERR();
		if ((r = set_options(fd, u->bound[a].ss_family, cfg)))
			return r;
		a++;
	}
	if (n && cfg->n_udp_listen)
		log_notice("socket activation: using the %u datagram socket%s systemd passed; "
			   "--udp-listen ignored", n, n == 1 ? "" : "s");
	else if (cfg->n_udp_listen)
		log_notice("socket activation: no datagram socket passed; --udp-listen ignored");
	return 0;
}

int udp_listeners_open(struct udp_listeners *u, const struct config *cfg, int passed,
		       char *err, size_t errlen)
{
	int r;

	memset(u, 0, sizeof(*u));
	if (passed > 0) {
		if ((r = adopt(u, cfg, passed, err, errlen))) {
			if (!*err)
				snprintf(err, errlen, "socket activation: %s", strerror(-r));
			udp_listeners_free(u);
		}
		return r;
	}
	if ((r = alloc_fds(u, cfg->n_udp_listen, cfg->workers)))
		return r;
	for (unsigned a = 0; a < u->n_addr; a++) {
		if ((r = open_addr(u, cfg, a))) {
			char text[ADDR_TEXT_MAX];
			addr_format((const struct sockaddr *)&cfg->udp_listen[a].ss, text, sizeof(text));
			snprintf(err, errlen, "cannot bind UDP %s: %s%s", text, strerror(-r),
				 r == -EADDRINUSE ? " (another process has this port)" : "");
			udp_listeners_free(u);
			return r;
		}
	}
	return 0;
}

void udp_listeners_close_row(struct udp_listeners *u, unsigned worker)
{
	if (!u->fds)
		return;
	int *row = udp_listener_row(u, worker);
	for (unsigned a = 0; a < u->n_addr; a++) {
		if (row[a] >= 0)
			close(row[a]);
		row[a] = -1;
	}
}

void udp_listeners_free(struct udp_listeners *u)
{
	if (!u->fds)
		return;
	for (unsigned w = 0; w < u->n_workers; w++)
		udp_listeners_close_row(u, w);
	free(u->fds);
	u->fds = NULL;
}

unsigned udp_listeners_ports(const struct udp_listeners *u, uint16_t *ports, unsigned max)
{
	unsigned n = 0;

	for (unsigned a = 0; a < u->n_addr && n < max; a++) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&u->bound[a];	/* same in in6 */
		ports[n++] = ntohs(s->sin_port);
	}
	return n;
}

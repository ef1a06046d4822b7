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

#include "core/preflight.h"
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

/* What a fresh socket of family has for opt: "off" again is the kernel's
 * default (net.ipv4.ip_no_pmtu_disc may make that IP_PMTUDISC_DONT), not a
 * value of ours. */
static int kernel_default(int family, int level, int opt, int fallback)
{
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), v = fallback;
	socklen_t len = sizeof(v);

	if (fd >= 0) {
		if (getsockopt(fd, level, opt, &v, &len))
			v = fallback;
		close(fd);
	}
	return v;
}

int udp_listener_set_df(int fd, int family, bool on)
{
	int v6 = on ? IPV6_PMTUDISC_DO
		    : kernel_default(AF_INET6, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_WANT);
	int v4 = on ? IP_PMTUDISC_DO
		    : kernel_default(family, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_WANT);
	int r;

	if (family == AF_INET6 &&
	    ((r = set_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, v6)) ||
	     (r = set_int(fd, IPPROTO_IPV6, IPV6_DONTFRAG, on))))
		return r;
	r = set_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, v4);
	return family == AF_INET ? r : 0;	/* on IPv6, only for its IPv4 peers */
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
	} else if ((r = set_int(fd, IPPROTO_IP, IP_PKTINFO, 1))) {
		return r;
	}
	return cfg->udp_df ? udp_listener_set_df(fd, family, true) : 0;
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

/* One address for every worker into fds[w * stride]; the first socket
 * decides the port when 0 was asked for.  Nothing is left open on a
 * failure. */
static int bind_addr(unsigned n_workers, const struct config *cfg, struct sockaddr_storage ss,
		     socklen_t len, int *fds, unsigned stride, struct sockaddr_storage *bound)
{
	int r;

	for (unsigned w = 0; w < n_workers; w++) {
		if ((r = bind_one(&ss, len, w == 0, n_workers > 1, cfg, &fds[w * stride]))) {
			while (w--) {
				close(fds[w * stride]);
				fds[w * stride] = -1;
			}
			return r;
		}
		if (w == 0) {
			socklen_t blen = sizeof(*bound);
			getsockname(fds[0], (struct sockaddr *)bound, &blen);
			ss = *bound;	/* the port 0 chose, for the others */
		}
	}
	return 0;
}

/* [::]:PORT falls back to 0.0.0.0:PORT where IPv6 is off, as TCP does. */
static int open_addr(unsigned n_workers, const struct config *cfg, const struct listen_addr *l,
		     int *fds, unsigned stride, struct sockaddr_storage *bound)
{
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&l->ss;
	int r = bind_addr(n_workers, cfg, l->ss, l->len, fds, stride, bound);

	if (!(r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL) || a6->sin6_family != AF_INET6 ||
	    !IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr))
		return r;
	log_notice("IPv6 is not available here (%s); UDP on IPv4 0.0.0.0 only", strerror(-r));
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	a4->sin_family = AF_INET;
	a4->sin_port = a6->sin6_port;
	return bind_addr(n_workers, cfg, ss, sizeof(*a4), fds, stride, bound);
}

static void bind_error(char *err, size_t errlen, const struct listen_addr *l, int r)
{
	char text[ADDR_TEXT_MAX];

	addr_format((const struct sockaddr *)&l->ss, text, sizeof(text));
	preflight_listen_error(err, errlen, true, text,
			       ntohs(((const struct sockaddr_in *)&l->ss)->sin_port), r);
}

int udp_listeners_bind(const struct udp_listeners *u, const struct config *cfg,
		       const struct listen_addr *want, int *fds, unsigned stride,
		       struct sockaddr_storage *bound, char *err, size_t errlen)
{
	int r = open_addr(u->n_workers, cfg, want, fds, stride, bound);

	if (r)
		bind_error(err, errlen, want, r);
	return r;
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
	u->used = (1u << n) - 1;
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
	/* Every slot a reload may fill, so a row never moves (udp_listener.h). */
	if ((r = alloc_fds(u, CONFIG_MAX_LISTEN, cfg->workers)))
		return r;
	for (unsigned a = 0; a < cfg->n_udp_listen; a++) {
		if ((r = open_addr(u->n_workers, cfg, &cfg->udp_listen[a], &u->fds[a], u->n_addr,
				   &u->bound[a]))) {
			bind_error(err, errlen, &cfg->udp_listen[a], r);
			udp_listeners_free(u);
			return r;
		}
		u->used |= 1u << a;
		u->asked[a] = cfg->udp_listen[a];
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

unsigned udp_listeners_ports(const struct sockaddr_storage *bound, uint32_t slots,
			     uint16_t *ports, unsigned max)
{
	unsigned n = 0;

	for (unsigned a = 0; a < CONFIG_MAX_LISTEN && n < max; a++) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&bound[a];	/* same in in6 */
		if (slots & (1u << a))
			ports[n++] = ntohs(s->sin_port);
	}
	return n;
}

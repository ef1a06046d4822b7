/* SPDX-License-Identifier: GPL-2.0-only */
/* UDP echo: batches in, guard, batches out; see udp.h.
 *
 * Techniques: recvmmsg with MSG_TRUNC, so the kernel reports each
 * datagram's real length even when it was larger than the buffer (that is
 * how too-big is told from the rest); one buffer of --udp-max-size per
 * batch slot, echoed in place (no copy); the reply's source address is the
 * received IP_PKTINFO's ipi_spec_dst or IPV6_PKTINFO's address, so a
 * wildcard socket on a host with many addresses answers from the right
 * one.  A socket gets at most UDP_ROUNDS batches per readiness, so a flood
 * on UDP cannot starve the worker's TCP connections (the epoll set is
 * level-triggered and says "ready" again next turn).  Coalesced receives
 * (UDP_GRO) are udp_gso.c's; building replies and counting drops,
 * udp_reply.c's. */
#include "engine/udp.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/udp_guard.h"
#include "core/util.h"
#include "engine/udp_priv.h"
#include "server/worker.h"

#define UDP_ROUNDS 4
#define IFACES_NS (5 * NSEC_PER_SEC)	/* how often the interface list is re-read */

/* --- what the guard needs to know of the host ------------------------------ */

/* The entries the guard uses: one per loopback interface, and one per
 * IPv4 address with a broadcast address (an interface with two IPv4
 * networks has two).  Nothing else is kept: getifaddrs() lists every
 * interface once more for AF_PACKET and once per IPv6 address, and on a
 * host with many interfaces those would fill the list before the entries
 * that matter. */
static void load_ifaces(struct worker *w, struct udp_worker *u)
{
	struct udp_iface ifs[UDP_GUARD_MAX_IFACES];
	struct ifaddrs *all;
	unsigned n = 0;

	u->ifaces_at = w->now;
	if (getifaddrs(&all)) {
		TRACE(TR_ERROR, "worker %u: getifaddrs: %s", w->id, strerror(errno));
		return;
	}
	for (struct ifaddrs *i = all; i && n < ARRAY_SIZE(ifs); i = i->ifa_next) {
		unsigned idx = if_nametoindex(i->ifa_name);
		bool lo = i->ifa_flags & IFF_LOOPBACK;
		uint32_t b = 0;

		if (!idx || !i->ifa_addr)
			continue;
		/* An address added without "brd" is reported with itself as
		 * its broadcast address: that one is no broadcast. */
		if (i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_BROADCAST) &&
		    i->ifa_broadaddr) {
			b = ((struct sockaddr_in *)i->ifa_broadaddr)->sin_addr.s_addr;
			if (b == ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr)
				b = 0;
		}
		if (b || (lo && i->ifa_addr->sa_family == AF_PACKET))
			ifs[n++] = (struct udp_iface){ .index = idx, .loopback = lo, .bcast = b };
	}
	freeifaddrs(all);
	udp_guard_set_ifaces(&u->guard, ifs, n);
}

/* --- one datagram's addresses -------------------------------------------- */

void udp_local_add(struct local *l, const struct cmsghdr *c)
{
	if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
		memcpy(&l->p4, CMSG_DATA(c), sizeof(l->p4));
		l->v4 = l->known = true;
	} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
		memcpy(&l->p6, CMSG_DATA(c), sizeof(l->p6));
		l->known = true;
	} else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
		int g;
		memcpy(&g, CMSG_DATA(c), sizeof(g));
		l->gso = g > 0 ? (uint32_t)g : 0;
	}
}

void udp_local_end(struct local *l)
{
	if (l->v4) {
		l->dst.family = AF_INET;
		memcpy(l->dst.bytes, &l->p4.ipi_addr, 4);
		l->ifindex = (unsigned)l->p4.ipi_ifindex;
		/* The kernel's local address for the reply differs from the
		 * destination when that was a broadcast (of any kind). */
		l->bcast = l->p4.ipi_spec_dst.s_addr != l->p4.ipi_addr.s_addr;
	} else if (l->known) {
		struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = l->p6.ipi6_addr };
		addr_to_ip((struct sockaddr *)&a6, &l->dst);
		l->ifindex = l->p6.ipi6_ifindex;
	}
}

/* --- the batch ----------------------------------------------------------- */

static int receive(struct udp_worker *u, int fd)
{
	for (unsigned i = 0; i < UDP_BATCH; i++) {
		u->iov_in[i] = (struct iovec){ u->bufs + (size_t)i * UDP_BUF_STRIDE, u->buf_size };
		u->in[i].msg_hdr = (struct msghdr){
			.msg_name = &u->src[i], .msg_namelen = sizeof(u->src[i]),
			.msg_iov = &u->iov_in[i], .msg_iovlen = 1,
			.msg_control = u->cin[i].buf, .msg_controllen = sizeof(u->cin[i].buf),
		};
	}
	return recvmmsg(fd, u->in, UDP_BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
}

/* recvmmsg's message i as the judge sees every receive. */
static const struct udp_rx *rx_of(struct udp_worker *u, unsigned i)
{
	struct msghdr *m = &u->in[i].msg_hdr;
	struct udp_rx *rx = &u->rx[i];

	*rx = (struct udp_rx){
		.src = m->msg_name, .srclen = m->msg_namelen, .data = m->msg_iov->iov_base,
		.len = u->in[i].msg_len, .flags = m->msg_flags,
	};
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
		udp_local_add(&rx->l, c);
	udp_local_end(&rx->l);
	return rx;
}

unsigned udp_consider(struct worker *w, struct udp_worker *u, const struct udp_rx *rx,
		      unsigned k)
{
	const struct local *l = &rx->l;
	uint32_t len = rx->len;

	if (l->gso && l->gso < len)
		return udp_gso_consider(w, u, rx, k);
	STAT_ADD(&w->stats, udp_in, 1);
	STAT_ADD(&w->stats, udp_bytes_in, len);
	PROBE(udp_recv, w->id, len);
	struct udp_dgram d = {
		.src = rx->src, .ifindex = l->ifindex, .dst = l->known ? &l->dst : NULL,
		.dst_broadcast = l->bcast, .len = len,
		.truncated = (rx->flags & MSG_CTRUNC) || ((rx->flags & MSG_TRUNC) &&
							  len <= UDP_PAYLOAD_MAX),
	};
	enum udp_verdict v = udp_guard_check(&u->guard, &d, w->now);
	if (v != UDP_PASS) {
		udp_drop(w, u, v, rx->src, 1);
		return 0;
	}
	udp_reply(u, k, rx, rx->data, len, 0);
	return 1;
}

static uint32_t datagrams(const struct udp_worker *u, unsigned k)
{
	uint32_t len = (uint32_t)u->iov_out[k].iov_len;

	return u->seg[k] ? (len + u->seg[k] - 1) / u->seg[k] : 1;
}

/* Send replies [0, k).  A full queue drops the rest of the batch (it would
 * be full for them too); any other error drops the one reply it names. */
void udp_send_batch(struct worker *w, struct udp_worker *u, int fd, unsigned k)
{
	unsigned i = 0;

	while (i < k) {
		int s = sendmmsg(fd, u->out + i, k - i, MSG_DONTWAIT);
		if (s > 0) {
			for (unsigned j = i; j < i + (unsigned)s; j++)
				udp_sent(w, u->out[j].msg_hdr.msg_name,
					 (uint32_t)u->iov_out[j].iov_len, u->seg[j]);
			i += (unsigned)s;
			continue;
		}
		int err = s < 0 ? errno : EIO;
		bool full = err == EAGAIN || err == ENOBUFS || err == ENOMEM;
		if (!full) {
			/* This reply alone failed: a refused UDP_SEGMENT goes
			 * again datagram by datagram (the queue may fill there). */
			if (u->seg[i])
				full = !udp_gso_split(w, u, fd, i);
			else
				udp_drop(w, u, UDP_SEND_ERROR, u->out[i].msg_hdr.msg_name, 1);
			i++;
		}
		for (; full && i < k; i++)
			udp_drop(w, u, UDP_SEND_FULL, u->out[i].msg_hdr.msg_name, datagrams(u, i));
	}
}

/* Slot's socket fd is readable. */
static void serve(struct worker *w, struct udp_worker *u, unsigned slot, int fd)
{
	u->from_bound = u->bound_v4 & (1u << slot);
	for (unsigned round = 0; round < UDP_ROUNDS; round++) {
		int n = receive(u, fd);
		unsigned k = 0;

		if (n <= 0)
			break;	/* EAGAIN, or an error the next readiness reports again */
		for (unsigned i = 0; i < (unsigned)n; i++)
			k += udp_consider(w, u, rx_of(u, i), k);
		udp_send_batch(w, u, fd, k);
		if (n < UDP_BATCH)
			break;
	}
	u->from_bound = false;	/* io_uring's receives (uring/dgram.c) never are */
}

/* --- set-up and reload ----------------------------------------------------- */

static struct udp_guard_cfg guard_cfg(const struct worker *w, const struct config *cfg)
{
	const struct udp_listeners *ul = &w->srv->ls.udp;
	unsigned sharers = ul->activated ? 1 : ul->n_workers;

	return (struct udp_guard_cfg){
		.acl = &cfg->acl, .allow_low_ports = cfg->udp_allow_low_ports,
		.max_size = cfg->udp_max_size, .rate = cfg->udp_rate,
		.sources = (w->srv->cfg.udp_sources + sharers - 1) / sharers,
	};
}

/* The loop check's ports: those of this worker's configuration (a copy
 * of its own, as the main thread's changes with a reload). */
static void set_ports(const struct worker *w, struct udp_worker *u)
{
	uint16_t ports[UDP_GUARD_MAX_PORTS];
	unsigned n = udp_listeners_ports(w->live->udp_bound, w->live->udp_slots, ports,
					 ARRAY_SIZE(ports));

	udp_guard_clear_ports(&u->guard);
	for (unsigned i = 0; i < n; i++)
		udp_guard_add_port(&u->guard, ports[i]);
}

/* A reload moved this worker to another configuration (worker_take_live()):
 * the guard follows it before it looks at another datagram, so it never
 * reads an ACL of a configuration that may be freed. */
static void follow_reload(struct worker *w, struct udp_worker *u)
{
	struct udp_guard_cfg gc = guard_cfg(w, w->cfg);
	int r = udp_guard_update(&u->guard, &gc);

	if (r) {
		gc.rate = 0;	/* no memory for the table: unlimited, but the rest holds */
		udp_guard_update(&u->guard, &gc);
		TRACE(TR_ERROR, "worker %u: UDP rate table: %s; --udp-rate not applied", w->id,
		      strerror(-r));
	}
	u->cfg = w->cfg;
	set_ports(w, u);
}

void udp_begin(struct worker *w, struct udp_worker *u)
{
	if (unlikely(u->cfg != w->cfg))
		follow_reload(w, u);
	if (w->now - u->ifaces_at >= IFACES_NS)
		load_ifaces(w, u);
}

void udp_ready(struct worker *w)
{
	struct udp_worker *u = w->udp;
	struct epoll_event ev[CONFIG_MAX_LISTEN];
	int *row = udp_listener_row(&w->srv->ls.udp, w->id);

	udp_begin(w, u);
	/* One socket (the usual case): it is the one that is ready, so skip
	 * asking the set.  The set's stale "ready" is re-checked and cleared
	 * by the kernel when the engine next polls it, so nothing spins. */
	if (u->n_socks == 1) {
		if (row[u->one] >= 0)
			serve(w, u, u->one, row[u->one]);
		return;
	}
	int n = epoll_wait(u->epfd, ev, CONFIG_MAX_LISTEN, 0);
	for (int i = 0; i < n; i++)
		if (row[ev[i].data.u32] >= 0)	/* closed when draining started */
			serve(w, u, ev[i].data.u32, row[ev[i].data.u32]);
}

void udp_ready_slot(struct worker *w, unsigned slot)
{
	struct udp_worker *u = w->udp;
	int fd;

	if (!u || slot >= w->srv->ls.udp.n_addr)
		return;
	fd = udp_listener_row(&w->srv->ls.udp, w->id)[slot];
	udp_begin(w, u);
	if (fd >= 0)	/* closed when draining started */
		serve(w, u, slot, fd);
}

/* Bound to one IPv4 unicast address (udp_reply.c's write_local() says
 * why that matters)?  Asked of the socket itself, so a passed one
 * (socket activation) is seen as it is. */
static bool bound_v4_unicast(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len) || len != sizeof(a) ||
	    a.sin_family != AF_INET)
		return false;
	uint32_t h = ntohl(a.sin_addr.s_addr);
	return h != INADDR_ANY && h != INADDR_BROADCAST && !IN_MULTICAST(h);
}

/* Put fd (slot a of the row) in the set: ours says a, the engine's
 * tag0 + a. */
static int watch(struct worker *w, struct udp_worker *u, unsigned a, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = u->own_set ? a : u->tag0 + a };

	if (epoll_ctl(u->epfd, EPOLL_CTL_ADD, fd, &ev))
		return ERR();
	u->bound_v4 = bound_v4_unicast(fd) ? u->bound_v4 | (1u << a) : u->bound_v4 & ~(1u << a);
	udp_gso_enable(fd, w->id);
	u->one = u->n_socks++ ? u->one : a;
	return 0;
}

static int setup(struct worker *w, struct udp_worker *u, const int *row, unsigned n_addr,
		 int epfd)
{
	struct udp_guard_cfg gc = guard_cfg(w, w->cfg);
	int r;

	u->cfg = w->cfg;
	if (getrandom(&gc.seed, sizeof(gc.seed), GRND_NONBLOCK) != sizeof(gc.seed))
		gc.seed = (uint32_t)mono_ns();
	if ((r = udp_guard_init(&u->guard, &gc)))
		return r;
	set_ports(w, u);
	/* The largest payload whatever --udp-max-size says, so a reload may
	 * raise it, and the largest coalesced receive (UDP_GRO).  Large, so
	 * it is mapped, not taken from the heap: pages are touched only by
	 * datagrams that big, and the RSS of small-datagram traffic stays
	 * small.  Each buffer starts on a page (a stride of 64 KiB): the
	 * kernel's copy into a buffer that malloc left 16 bytes into a page
	 * ran at a third of the speed, which made a 65,000-byte datagram cost
	 * twice the baseline's CPU (docs/udp.md). */
	u->buf_size = UDP_BUF_SIZE;
	if (posix_memalign((void **)&u->bufs, UDP_BUF_STRIDE, (size_t)UDP_BATCH * UDP_BUF_STRIDE))
		return -ENOMEM;
	if (epfd >= 0)
		u->epfd = epfd;
	else if ((u->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return ERR();
	else
		u->own_set = true;
	for (unsigned a = 0; a < n_addr; a++)
		if (row[a] >= 0 && (r = watch(w, u, a, row[a])))
			return r;
	load_ifaces(w, u);
	return 0;
}

/* epfd: the engine's set, whose events say tag0 + slot; -1: a set of our own. */
static int create(struct worker *w, int epfd, uint32_t tag0)
{
	struct udp_listeners *ul = &w->srv->ls.udp;
	struct udp_worker *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->epfd = -1;
	u->tag0 = tag0;
	w->udp = u;
	int r = setup(w, u, udp_listener_row(ul, w->id), ul->n_addr, epfd);
	if (r)
		TRACE(TR_ERROR, "worker %u: UDP set-up: %s", w->id, strerror(-r));
	return r;
}

int udp_init_in(struct worker *w, int epfd, uint32_t tag0)
{
	struct udp_listeners *ul = &w->srv->ls.udp;
	bool any = false;

	if (!ul->fds || !ul->n_addr)
		return 0;
	int *row = udp_listener_row(ul, w->id);
	for (unsigned a = 0; a < ul->n_addr; a++)
		any |= row[a] >= 0;
	/* None: no UDP until a reload adds some (udp_add_socket()), or
	 * systemd's sockets, which worker 0 serves. */
	return any ? create(w, epfd, tag0) : 0;
}

int udp_init(struct worker *w)
{
	return udp_init_in(w, -1, 0);
}

int udp_add_socket_in(struct worker *w, unsigned slot, int fd, int epfd, uint32_t tag0)
{
	int *row = udp_listener_row(&w->srv->ls.udp, w->id);
	int r = 0;

	if (!w->udp && (r = create(w, epfd, tag0))) {
		udp_fini(w);	/* nothing watches it yet */
		close(fd);
		return r;
	}
	if ((r = watch(w, w->udp, slot, fd))) {
		close(fd);
		return r;
	}
	row[slot] = fd;
	return 0;
}

int udp_add_socket(struct worker *w, unsigned slot, int fd)
{
	return udp_add_socket_in(w, slot, fd, -1, 0);
}

/* The set's count, and which slot is the only one when it is one. */
static void recount(struct udp_worker *u, const int *row, unsigned n_addr)
{
	u->n_socks = 0;
	for (unsigned a = 0; a < n_addr; a++)
		if (row[a] >= 0)
			u->one = u->n_socks++ ? u->one : a;
}

void udp_remove_socket(struct worker *w, unsigned slot)
{
	struct udp_listeners *ul = &w->srv->ls.udp;
	int *row = udp_listener_row(ul, w->id);
	struct udp_worker *u = w->udp;

	if (row[slot] < 0)
		return;
	/* Out of the set before the number can be reused by an added one. */
	if (u)
		epoll_ctl(u->epfd, EPOLL_CTL_DEL, row[slot], NULL);
	close(row[slot]);
	row[slot] = -1;
	if (u)
		recount(u, row, ul->n_addr);
}

int udp_fd(const struct worker *w)
{
	const struct udp_worker *u = w->udp;

	return u && u->own_set ? u->epfd : -1;
}

void udp_fini(struct worker *w)
{
	struct udp_worker *u = w->udp;

	if (!u)
		return;
	if (u->own_set)
		close(u->epfd);
	udp_guard_fini(&u->guard);
	free(u->bufs);
	free(u);
	w->udp = NULL;
}

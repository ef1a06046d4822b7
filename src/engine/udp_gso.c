/* SPDX-License-Identifier: GPL-2.0-only */
/* UDP echo of coalesced receives: UDP_GRO in, UDP_SEGMENT out.
 *
 * Its own file because it is one idea of its own beside udp.c's batch
 * loop: with UDP_GRO on the socket the kernel hands over several datagrams
 * of one source, all of one size but the last (which may be shorter), as
 * one receive with their size in a UDP_GRO cmsg.  Echoing that buffer with
 * UDP_SEGMENT set to the same size makes the kernel cut it back into the
 * same datagrams: each goes back as one datagram of its own size, and the
 * whole run costs one system call each way instead of one per datagram.
 *
 * The counters and the guard see datagrams, never receives: a receive of
 * 40 coalesced datagrams counts 40 in, spends 40 rate tokens, and is
 * too-big or not per datagram.  When the rate allows only some of them the
 * first ones are echoed (with UDP_SEGMENT) and the rest are rate drops, the
 * same as 40 separate datagrams would have met.
 *
 * UDP_SEGMENT never fragments: the kernel refuses a send whose segments do
 * not fit the route's MTU (EMSGSIZE or EINVAL, with or without
 * --udp-df), or that has more segments than it takes, or that a device
 * cannot segment.  Such a reply is sent again datagram by datagram, so it
 * meets exactly what plain replies meet: fragmented without --udp-df,
 * dropped as send-error with it. */
#include <errno.h>
#include <netinet/udp.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "core/util.h"
#include "engine/udp_priv.h"
#include "server/worker.h"

void udp_gso_enable(int fd, unsigned worker)
{
	static atomic_bool said;
	int on = 1;

	if (!setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on)))
		return;
	if (!atomic_exchange(&said, true))
		TRACE(TR_INFO, "worker %u: UDP_GRO refused (%s): UDP datagrams are received one "
		      "at a time", worker, strerror(errno));
}

/* The too-big case: every full-size datagram is over --udp-max-size, but
 * the short last one (tail bytes at its end) is judged on its own. */
static unsigned tail_only(struct worker *w, struct udp_worker *u, const struct udp_rx *rx,
			  unsigned k, struct udp_dgram *d, uint32_t tail)
{
	udp_drop(w, u, UDP_TOO_BIG, rx->src, rx->len / rx->l.gso);
	d->len = tail;
	enum udp_verdict v = udp_guard_check(&u->guard, d, w->now);
	if (v != UDP_PASS) {
		udp_drop(w, u, v, rx->src, 1);
		return 0;
	}
	udp_reply(u, k, rx, rx->data + rx->len - tail, tail, 0);
	return 1;
}

unsigned udp_gso_consider(struct worker *w, struct udp_worker *u, const struct udp_rx *rx,
			  unsigned k)
{
	const struct local *l = &rx->l;
	uint32_t len = rx->len, seg = l->gso;
	uint32_t n = (len + seg - 1) / seg, tail = len % seg;
	struct ipaddr ip;

	STAT_ADD(&w->stats, udp_in, n);
	STAT_ADD(&w->stats, udp_bytes_in, len);
	STAT_ADD(&w->stats, udp_gro, 1);
	for (uint32_t j = 0; j < n; j++)
		PROBE(udp_recv, w->id, j + 1 < n || !tail ? seg : tail);
	/* Judged as its first datagram: all share the source and the
	 * addresses; any cut (MSG_TRUNC too, here) loses some of them. */
	struct udp_dgram d = {
		.src = rx->src, .ifindex = l->ifindex, .dst = l->known ? &l->dst : NULL,
		.dst_broadcast = l->bcast, .len = seg,
		.truncated = rx->flags & (MSG_CTRUNC | MSG_TRUNC),
	};
	enum udp_verdict v = udp_guard_check(&u->guard, &d, w->now);
	if (v == UDP_TOO_BIG && tail)
		return tail_only(w, u, rx, k, &d, tail);
	if (v != UDP_PASS) {
		udp_drop(w, u, v, rx->src, n);
		return 0;
	}
	addr_to_ip(rx->src, &ip);
	uint32_t ok = 1 + udp_guard_rate_n(&u->guard, &ip, w->now, n - 1);
	if (ok < n)
		udp_drop(w, u, UDP_RATE, rx->src, n - ok);
	udp_reply(u, k, rx, rx->data, ok == n ? len : ok * seg, ok > 1 ? (uint16_t)seg : 0);
	return 1;
}

bool udp_gso_split(struct worker *w, struct udp_worker *u, int fd, unsigned i)
{
	struct msghdr m = u->out[i].msg_hdr;
	uint8_t *base = u->iov_out[i].iov_base;
	uint32_t len = (uint32_t)u->iov_out[i].iov_len, seg = u->seg[i];
	struct iovec iov;

	m.msg_iov = &iov;
	m.msg_controllen -= CMSG_SPACE(sizeof(uint16_t));	/* UDP_SEGMENT is last */
	if (!m.msg_controllen)
		m.msg_control = NULL;
	for (uint32_t off = 0; off < len; off += seg) {
		iov = (struct iovec){ base + off, MIN(seg, len - off) };
		if (sendmsg(fd, &m, MSG_DONTWAIT) >= 0) {
			udp_sent(w, m.msg_name, (uint32_t)iov.iov_len, 0);
			continue;
		}
		if (errno == EAGAIN || errno == ENOBUFS || errno == ENOMEM) {
			udp_drop(w, u, UDP_SEND_FULL, m.msg_name, (len - off + seg - 1) / seg);
			return false;
		}
		udp_drop(w, u, UDP_SEND_ERROR, m.msg_name, 1);
	}
	return true;
}

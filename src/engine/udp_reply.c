/* SPDX-License-Identifier: GPL-2.0-only */
/* UDP echo: what a reply and a drop do, for udp.c's batch and udp_gso.c's
 * coalesced receives alike (a file of its own so that those two depend on
 * it and not on each other): the reply's control data (the local address,
 * UDP_SEGMENT), counting each datagram sent or dropped, and the bounded
 * ERROR lines for drops. */
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>

#include "core/udp_guard.h"
#include "core/util.h"
#include "engine/udp_priv.h"
#include "server/worker.h"

#define DROP_LOG_NS NSEC_PER_SEC	/* one ERROR line per reason per second */

/* --- drops --------------------------------------------------------------- */

static void count_drop(struct stats *s, enum udp_verdict v, uint32_t n)
{
	switch (v) {
#define X(e, f, name) case e: STAT_ADD(s, udp_drop_##f, n); break;
	UDP_DROPS(X)
#undef X
	default: break;
	}
}

void udp_drop(struct worker *w, struct udp_worker *u, enum udp_verdict v,
	      const struct sockaddr *src, uint32_t n)
{
	struct drop_log *l = &u->dlog[v];
	char text[ADDR_TEXT_MAX];

	count_drop(&w->stats, v, n);
	for (uint32_t i = 0; i < n; i++)
		PROBE(udp_drop, w->id, udp_verdict_name(v));
	if (!trace_on(TR_ERROR) || !n)
		return;
	if (l->last && w->now - l->last < DROP_LOG_NS) {
		l->suppressed += n;
		return;
	}
	addr_format(src, text, sizeof(text));
	TRACE(TR_ERROR, "worker %u: UDP datagram from %s dropped: %s (%llu more since the last "
	      "such line)", w->id, text, udp_verdict_name(v), (unsigned long long)l->suppressed);
	l->last = w->now;
	l->suppressed = n - 1;
}

/* The reply's control data: send from the local address it came to.  A
 * socket bound to one IPv4 unicast address receives only what was sent to
 * that address (the guard drops broadcasts, the one case where
 * ipi_spec_dst would differ), and the kernel sends from it anyway: there
 * the IP_PKTINFO would say what the kernel does without it, at the cost
 * of its parsing in every reply. */
static socklen_t write_local(const struct udp_worker *u, const struct local *l,
			     struct cmsghdr *c)
{
	if (!l->known || (l->v4 && u->from_bound))
		return 0;
	if (l->v4) {
		struct in_pktinfo p = { .ipi_spec_dst = l->p4.ipi_spec_dst };
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(p));
		memcpy(CMSG_DATA(c), &p, sizeof(p));
		return CMSG_SPACE(sizeof(p));
	}
	c->cmsg_level = IPPROTO_IPV6;
	c->cmsg_type = IPV6_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(l->p6));
	memcpy(CMSG_DATA(c), &l->p6, sizeof(l->p6));
	return CMSG_SPACE(sizeof(l->p6));
}

/* UDP_SEGMENT, last (udp_gso_split() takes it off by its length). */
static socklen_t write_segment(uint16_t seg, struct cmsghdr *c)
{
	c->cmsg_level = SOL_UDP;
	c->cmsg_type = UDP_SEGMENT;
	c->cmsg_len = CMSG_LEN(sizeof(seg));
	memcpy(CMSG_DATA(c), &seg, sizeof(seg));
	return CMSG_SPACE(sizeof(seg));
}

void udp_reply(struct udp_worker *u, unsigned k, const struct udp_rx *rx, void *base,
	       uint32_t len, uint16_t seg)
{
	union cmsg_space *cs = &u->cout[k];
	socklen_t n;

	memset(cs, 0, sizeof(*cs));
	n = write_local(u, &rx->l, (struct cmsghdr *)cs->buf);
	if (seg)
		n += write_segment(seg, (struct cmsghdr *)(cs->buf + n));
	u->seg[k] = seg;
	u->iov_out[k] = (struct iovec){ base, len };
	u->out[k].msg_hdr = (struct msghdr){
		.msg_name = rx->src, .msg_namelen = rx->srclen,
		.msg_iov = &u->iov_out[k], .msg_iovlen = 1,
		.msg_control = n ? cs->buf : NULL, .msg_controllen = n,
	};
}

/* --- sent ---------------------------------------------------------------- */

void udp_sent(struct worker *w, const struct sockaddr *dst, uint32_t len, uint16_t seg)
{
	uint32_t n = seg ? (len + seg - 1) / seg : 1;

	STAT_ADD(&w->stats, udp_out, n);
	STAT_ADD(&w->stats, udp_bytes_out, len);
	for (uint32_t off = 0, i = 0; i < n; i++, off += seg) {
		uint32_t size = seg ? MIN((uint32_t)seg, len - off) : len;

		PROBE(udp_send, w->id, size);
		if (trace_on(TR_DATA)) {
			char text[ADDR_TEXT_MAX];
			addr_format(dst, text, sizeof(text));
			TRACE(TR_DATA, "udp echo peer=%s worker=%u bytes=%u", text, w->id, size);
		}
	}
}

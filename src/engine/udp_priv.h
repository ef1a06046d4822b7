/* SPDX-License-Identifier: GPL-2.0-only */
/* What the UDP echo's files share: the worker's UDP state and the reply
 * helpers.  udp.c (the batch loop and the per-datagram judge) calls
 * udp_gso.c (coalesced receives); both call udp_reply.c (replies and
 * drops), which calls neither.  The io_uring engine's multishot receive
 * (uring/dgram.c) feeds udp.c's judge and batch send with datagrams it
 * received itself (the message path below).  Private to src/engine;
 * udp.h is the interface for the engines' loops. */
#ifndef ECHOSRV_ENGINE_UDP_PRIV_H
#define ECHOSRV_ENGINE_UDP_PRIV_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/addr.h"
#include "core/udp_guard.h"

#define UDP_BATCH 32
/* Replies per batch: a coalesced receive whose full-size segments are
 * too big but whose short last one is not makes two (udp_gso.c). */
#define UDP_REPLIES (2 * UDP_BATCH)
/* A receive buffer: the largest coalesced (UDP_GRO) receive, 64 KiB less
 * nothing; a plain datagram is at most UDP_PAYLOAD_MAX of it. */
#define UDP_BUF_SIZE 65535u
#define UDP_BUF_STRIDE 65536u	/* buffers are this far apart, each on a page */

/* Received: IPV6_PKTINFO or IP_PKTINFO, and UDP_GRO's segment size (an
 * int); sent: the same pktinfo and UDP_SEGMENT's (a uint16_t). */
union cmsg_space {
	char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)) +
		 CMSG_SPACE(sizeof(int))];
	struct cmsghdr align;
};

struct drop_log {
	uint64_t last;		/* ns of the last line */
	uint64_t suppressed;	/* drops since, not logged */
};


/* One received datagram's addresses and segment size. */
struct local {
	struct ipaddr dst;	/* the address it was sent to */
	unsigned ifindex;
	bool known, bcast;
	bool v4;		/* reply with IP_PKTINFO (else IPV6_PKTINFO) */
	struct in_pktinfo p4;
	struct in6_pktinfo p6;
	uint32_t gso;		/* UDP_GRO: the coalesced datagrams' size; 0: not coalesced */
};

/* One receive, whichever way it came: recvmmsg's batch (udp.c) or a
 * multishot recvmsg completion (uring/dgram.c).  Replies point into it
 * (the source address and the bytes), so it must stay until they are
 * sent. */
struct udp_rx {
	struct sockaddr *src;
	socklen_t srclen;
	uint8_t *data;
	uint32_t len;		/* the kernel's length: the real one, also when cut (MSG_TRUNC) */
	int flags;		/* as received: MSG_TRUNC, MSG_CTRUNC */
	struct local l;
};

struct udp_worker {
	int epfd;		/* the set the sockets are in: ours, or the engine's */
	bool own_set;		/* epfd is ours (udp_fd()); else the engine's (udp_init_in()) */
	uint32_t tag0;		/* in the engine's set: slot a's event says tag0 + a */
	uint32_t bound_v4;	/* slots whose socket is bound to one IPv4 unicast address */
	bool from_bound;	/* this batch came to such a socket: replies need no IP_PKTINFO */
	unsigned n_socks;	/* in the set; with one, it is slot `one` of the row */
	unsigned one;
	struct udp_guard guard;
	uint8_t *bufs;		/* UDP_BATCH buffers of buf_size */
	uint32_t buf_size;
	uint64_t ifaces_at;	/* ns of the last interface list */
	const struct config *cfg;	/* the guard's settings come from here */
	struct mmsghdr in[UDP_BATCH], out[UDP_REPLIES];
	struct iovec iov_in[UDP_BATCH], iov_out[UDP_REPLIES];
	uint16_t seg[UDP_REPLIES];	/* reply's UDP_SEGMENT size; 0: one datagram */
	struct sockaddr_storage src[UDP_BATCH];
	struct udp_rx rx[UDP_BATCH];
	union cmsg_space cin[UDP_BATCH], cout[UDP_REPLIES];
	struct drop_log dlog[UDP_N_VERDICTS];
};

struct worker;

/* --- udp.c: the message path ----------------------------------------------- */

/* Read one received control message into l (zeroed before the first);
 * udp_local_end() once after the last. */
void udp_local_add(struct local *l, const struct cmsghdr *c);
void udp_local_end(struct local *l);
/* Before a turn's datagrams: follow a reload, re-read the interfaces when due. */
void udp_begin(struct worker *w, struct udp_worker *u);
/* Count and judge rx; if it passes, make it reply k (and k + 1: see
 * udp_gso.c).  Returns the replies made, 0 to 2. */
unsigned udp_consider(struct worker *w, struct udp_worker *u, const struct udp_rx *rx,
		      unsigned k);
/* Send replies [0, k) on fd with sendmmsg, never waiting: a full queue
 * drops and counts. */
void udp_send_batch(struct worker *w, struct udp_worker *u, int fd, unsigned k);

/* --- udp_reply.c --- */

/* n datagrams dropped for v (counted, probed, traced at a bounded rate). */
void udp_drop(struct worker *w, struct udp_worker *u, enum udp_verdict v,
	      const struct sockaddr *src, uint32_t n);
/* Make reply k: len bytes at base, back to rx's source, from its local
 * address; seg: UDP_SEGMENT size (0: one datagram). */
void udp_reply(struct udp_worker *u, unsigned k, const struct udp_rx *rx, void *base,
	       uint32_t len, uint16_t seg);
/* Reply m went out (len bytes, seg as above): count each datagram. */
void udp_sent(struct worker *w, const struct sockaddr *dst, uint32_t len, uint16_t seg);

/* --- udp_gso.c --- */

/* Ask the kernel to coalesce this socket's receives (UDP_GRO); a kernel
 * that refuses is said once (INFO) and the socket serves without. */
void udp_gso_enable(int fd, unsigned worker);
/* rx is rx->l.gso-sized datagrams coalesced: count and judge each, and
 * make the replies from k on.  Returns how many (0..2). */
unsigned udp_gso_consider(struct worker *w, struct udp_worker *u, const struct udp_rx *rx,
			  unsigned k);
/* Reply i (with UDP_SEGMENT) failed with err, not a full queue: the kernel
 * refused the segments (larger than the route's MTU, over its segment
 * count...): send them one by one, as plain replies would have been.
 * False when the send queue filled (the caller drops the rest). */
bool udp_gso_split(struct worker *w, struct udp_worker *u, int fd, unsigned i);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* The io_uring engine's UDP receive: one multishot recvmsg per UDP socket
 * of the worker, into a provided-buffer ring of its own (docs/udp.md).
 *
 * Each completion is one receive (a datagram, or a UDP_GRO run of them):
 * the buffer holds the kernel's io_uring_recvmsg_out header, the source
 * address, the control messages (pktinfo, UDP_GRO's segment size) and the
 * payload, and the liburing helpers find each part.  The request asks for
 * MSG_TRUNC, so the header's payloadlen is the datagram's real length and
 * its flags say MSG_TRUNC / MSG_CTRUNC as recvmmsg's would: too-big and
 * truncated stay told apart.  From there the datagram goes through the
 * same judge, counters and reply building as the recvmmsg path
 * (engine/udp.c, udp_gso.c, udp_reply.c): nothing of that is here.
 *
 * Sending: the replies of one loop turn (every UDP completion reaped in
 * it) go out with one sendmmsg per socket at the end of the reap, from the
 * buffers they arrived in, and the buffers go back to the ring right after.
 * Not io_uring sendmsg requests: a UDP send never waits (non-blocking, a
 * full queue is a send-full drop, never a queued reply), so a request would
 * complete inline anyway and buy only the saving of that one system call
 * per turn, at the price of replies and their buffers in flight across
 * turns and of the refused-UDP_SEGMENT split and the send-full accounting
 * being done a second time on completions.  sendmmsg keeps both exactly the
 * code the epoll engine runs (udp_send_batch()).  The replies of one batch
 * are all of one socket; a completion of another socket, or a batch full
 * (UDP_REPLIES), sends what is gathered first.
 *
 * The ring: UDP_RING_BUFS buffers of UDP_RING_STRIDE bytes (68 KiB: a
 * recvmsg header and the largest coalesced receive, 64 KiB, since UDP_GRO
 * stays on), each posted from UDP_RING_LEAD bytes in so that the payload,
 * behind the 144-byte header, starts on a page (the kernel's copy into a
 * buffer that is not page-aligned ran at a third of the speed, udp.c).  So
 * 8.5 MiB of address space per worker with UDP, mapped, not allocated:
 * pages are touched only by datagrams that reach them, the posted depth
 * adapts (bufs.h), and idle pages go back after 5 s.  A receive that finds
 * the ring empty ends the multishot with ENOBUFS before the kernel takes a
 * datagram off the socket, so nothing is lost: the ring's depth doubles
 * (uring_bufs_grow()) and the receive is re-armed in the same turn, after
 * the buffers of the turn's replies are back.  The socket's receive queue
 * holds the datagrams meanwhile (its overflow is the kernel's drop, as on
 * the recvmmsg path).
 *
 * Draining: the multishots are cancelled when draining starts, before the
 * worker closes the sockets (uudp_stop()); the ring's buffers stay mapped
 * until the ring itself is gone (uudp_fini() after io_uring_queue_exit),
 * so no completion can name a buffer that was freed.  A completion of a
 * socket already closed gives its buffer back unread. */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/util.h"
#include "engine/udp_priv.h"
#include "engine/uring/uring.h"
#include "server/worker.h"

#define UDP_BGID 1		/* the TCP ring is group 0 */
#define UDP_RING_BUFS 128u
#define UDP_NAME_LEN 32u	/* a sockaddr_in6 (28), rounded up so the cmsgs behind are aligned */
#define UDP_HDR (sizeof(struct io_uring_recvmsg_out) + UDP_NAME_LEN + sizeof(union cmsg_space))
#define UDP_RING_LEAD (4096u - UDP_HDR)
#define UDP_RING_STRIDE (4096u + 65536u)
#define UDP_FAILS_MAX 8		/* errors in a row before a socket is given up */

_Static_assert(UDP_HDR % 8 == 0 && UDP_HDR < 4096, "recvmsg header fits before the page");

struct uring_udp {
	struct uring_bufs bufs;
	struct msghdr mh;		/* the receive's shape: name and control room */
	bool armed[CONFIG_MAX_LISTEN];
	/* Per slot, in the receive's user_data: a reload that closes a
	 * slot's socket moves it on, so the completions its cancelled
	 * receive still delivers are told from those of a socket that a
	 * reload put in the same slot. */
	uint32_t gen[CONFIG_MAX_LISTEN];
	uint8_t fails[CONFIG_MAX_LISTEN];	/* errors in a row; UDP_FAILS_MAX: given up */
	bool stopped;			/* draining: never re-armed */
	/* The replies gathered this turn: all on socket fd, from held[]. */
	int fd;
	unsigned k, n_held;
	uint16_t held[UDP_REPLIES];
};

static int *row_of(struct worker *w)
{
	return udp_listener_row(&w->srv->ls.udp, w->id);
}

static void arm(struct worker *w, struct uring_udp *d, unsigned a)
{
	struct io_uring_sqe *sqe;
	int fd = row_of(w)[a];

	if (fd < 0 || d->armed[a] || d->stopped || d->fails[a] >= UDP_FAILS_MAX ||
	    !(sqe = uring_sqe(w->eng)))
		return;
	io_uring_prep_recvmsg_multishot(sqe, fd, &d->mh, MSG_TRUNC);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = d->bufs.bgid;
	io_uring_sqe_set_data64(sqe, ud_make(UOP_UDP_RECV, d->gen[a], a));
	d->armed[a] = true;
}

int uudp_init(struct worker *w)
{
	static atomic_bool said;
	struct uring_engine *u = w->eng;
	struct uring_udp *d;
	int r;

	if (!w->udp)
		return 0;
	if (!uring_udp_mshot) {
		if (!atomic_exchange(&said, true))
			TRACE(TR_INFO, "io_uring: UDP receive by readiness poll and recvmmsg (%s)",
			      uring_udp_why);
		return 0;
	}
	if (!(d = calloc(1, sizeof(*d))))
		return -ENOMEM;
	if ((r = uring_bufs_init(&d->bufs, &u->ring, UDP_BGID, UDP_RING_BUFS, UDP_RING_STRIDE,
				 UDP_RING_LEAD))) {
		free(d);
		TRACE(TR_ERROR, "worker %u: io_uring UDP buffer ring: %s", w->id, strerror(-r));
		return r;
	}
	d->mh = (struct msghdr){ .msg_namelen = UDP_NAME_LEN,
				 .msg_controllen = sizeof(union cmsg_space) };
	d->fd = -1;
	u->udp = d;
	TRACE(TR_INFO, "worker %u: io_uring: UDP receive by multishot recvmsg, %u buffers of %u "
	      "bytes", w->id, d->bufs.count, (unsigned)(d->bufs.size - d->bufs.lead - UDP_HDR));
	for (unsigned a = 0; a < w->srv->ls.udp.n_addr; a++)
		arm(w, d, a);
	return 0;
}

/* Completion bytes in buf as the judge's receive; false: not a whole header. */
static bool parse(struct uring_udp *d, void *buf, int res, struct udp_rx *rx)
{
	struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, res, &d->mh);

	if (!o)
		return false;
	*rx = (struct udp_rx){
		.src = io_uring_recvmsg_name(o), .srclen = MIN(o->namelen, d->mh.msg_namelen),
		.data = io_uring_recvmsg_payload(o, &d->mh), .len = o->payloadlen,
		.flags = (int)o->flags,
	};
	for (struct cmsghdr *c = io_uring_recvmsg_cmsg_firsthdr(o, &d->mh); c;
	     c = io_uring_recvmsg_cmsg_nexthdr(o, &d->mh, c))
		udp_local_add(&rx->l, c);
	udp_local_end(&rx->l);
	return true;
}

/* A completion without a buffer: the multishot ended, or failed. */
static void ended(struct worker *w, struct uring_udp *d, unsigned a, int res)
{
	if (res == -ENOBUFS) {
		uring_bufs_grow(&d->bufs);	/* re-armed in uudp_turn() */
		return;
	}
	if (res >= 0 || res == -ECANCELED || ++d->fails[a] < UDP_FAILS_MAX)
		return;
	TRACE(TR_ERROR, "worker %u: UDP receive on socket %u keeps failing (%s); it is no "
	      "longer served", w->id, a, strerror(-res));
}

void uudp_on_cqe(struct worker *w, const struct io_uring_cqe *cqe, unsigned a)
{
	struct uring_udp *d = ((struct uring_engine *)w->eng)->udp;
	int fd = row_of(w)[a];
	struct udp_rx rx;

	if ((uint32_t)(cqe->user_data >> UD_IDX_BITS) != d->gen[a]) {
		/* The receive of a socket a reload closed: nothing to serve. */
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			uint16_t old = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
			uring_buf_taken(&d->bufs, old);
			uring_buf_put(&d->bufs, old);
		}
		return;
	}
	if (!(cqe->flags & IORING_CQE_F_MORE))
		d->armed[a] = false;
	if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
		ended(w, d, a, cqe->res);
		return;
	}
	uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	uring_buf_taken(&d->bufs, bid);
	if (fd < 0 || !parse(d, uring_buf(&d->bufs, bid), cqe->res, &rx)) {
		uring_buf_put(&d->bufs, bid);	/* closed by the drain, or nothing in it */
		return;
	}
	d->fails[a] = 0;
	if (d->n_held && (d->fd != fd || d->k + 2 > UDP_REPLIES))
		uudp_flush(w);
	udp_begin(w, w->udp);
	unsigned n = udp_consider(w, w->udp, &rx, d->k);
	if (!n) {
		uring_buf_put(&d->bufs, bid);	/* dropped: no reply points into it */
		return;
	}
	d->fd = fd;
	d->k += n;
	d->held[d->n_held++] = bid;
}

void uudp_flush(struct worker *w)
{
	struct uring_udp *d = ((struct uring_engine *)w->eng)->udp;

	if (!d || !d->n_held)
		return;
	udp_send_batch(w, w->udp, d->fd, d->k);
	for (unsigned i = 0; i < d->n_held; i++)
		uring_buf_put(&d->bufs, d->held[i]);
	d->k = d->n_held = 0;
	d->fd = -1;
}

void uudp_turn(struct worker *w)
{
	struct uring_udp *d = ((struct uring_engine *)w->eng)->udp;

	if (!d)
		return;
	uring_bufs_refill(&d->bufs, w->now);
	for (unsigned a = 0; a < w->srv->ls.udp.n_addr; a++)
		arm(w, d, a);
}

uint64_t uudp_release_due(const struct worker *w)
{
	const struct uring_udp *d = ((const struct uring_engine *)w->eng)->udp;

	return d ? uring_bufs_release_due(&d->bufs, w->now) : UINT64_MAX;
}

/* Draining starts: the caller submits these cancels before the sockets
 * close, so a socket is not kept open by its request. */
void uudp_stop(struct worker *w)
{
	struct uring_engine *u = w->eng;
	struct uring_udp *d = u->udp;
	struct io_uring_sqe *sqe;

	if (!d)
		return;
	d->stopped = true;
	for (unsigned a = 0; a < w->srv->ls.udp.n_addr; a++) {
		if (!d->armed[a] || !(sqe = uring_sqe(u)))
			continue;
		io_uring_prep_cancel64(sqe, ud_make(UOP_UDP_RECV, d->gen[a], a), 0);
		io_uring_sqe_set_data64(sqe, ud_make(UOP_CANCEL, 0, a));
	}
}

/* A reload is about to close slot a's socket: the replies gathered for it
 * go out first, and its receive is cancelled (it holds the socket open
 * until then, swallowing datagrams the closed port should refuse). */
void uudp_forget(struct worker *w, unsigned a)
{
	struct uring_engine *u = w->eng;
	struct uring_udp *d = u->udp;
	struct io_uring_sqe *sqe;

	if (!d)
		return;
	uudp_flush(w);
	if (d->armed[a] && (sqe = uring_sqe(u))) {
		io_uring_prep_cancel64(sqe, ud_make(UOP_UDP_RECV, d->gen[a], a), 0);
		io_uring_sqe_set_data64(sqe, ud_make(UOP_CANCEL, 0, a));
	}
	d->armed[a] = false;
	d->fails[a] = 0;
	d->gen[a]++;
}

/* A reload gave slot a a socket (already in the row): receive on it; the
 * worker's first UDP socket brings the ring. */
int uudp_serve(struct worker *w, unsigned a)
{
	struct uring_engine *u = w->eng;

	if (!u->udp)
		return uudp_init(w);	/* arms every slot in the row */
	arm(w, u->udp, a);
	return 0;
}

/* After io_uring_queue_exit(): the kernel has let go of the buffers. */
void uudp_fini(struct worker *w)
{
	struct uring_engine *u = w->eng;

	if (!u->udp)
		return;
	uring_bufs_fini(&u->udp->bufs, NULL);
	free(u->udp);
	u->udp = NULL;
}

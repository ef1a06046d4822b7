/* SPDX-License-Identifier: GPL-2.0-only */
/* The io_uring engine's primitives: submissions, a connection's receive,
 * its close and release.
 *
 * Everything above (the loop, data.c, bulk.c) calls these; they call only
 * uconn.c and the worker, never back up, so the engine's files form no
 * circle.  The switch between data mode (ring buffers) and bulk mode
 * (splice) has one decision point: uring_consider_bulk() here, after each
 * receive, decides that a connection goes bulk and stops its receive; the
 * loop then calls ubulk_maybe_enter() after every data-mode completion,
 * which switches once the connection is quiet; bulk mode goes back by
 * arming a receive here (uring_arm_recv) once its pipe is empty.  So data.c
 * and bulk.c never call each other. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/uring/uring.h"
#include "core/util.h"
#include "server/worker.h"

#define FULL_RECVS 2		/* whole-buffer receives in a row before going bulk */
#define BULK_MIN_BYTES (32u << 10)	/* ... which together hold at least this */

struct io_uring_sqe *uring_sqe(struct uring_engine *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	for (int i = 0; !sqe && i < 4; i++) {
		int r = io_uring_submit(&u->ring);
		if (r < 0 && r != -EAGAIN && r != -EBUSY && r != -EINTR) {
			u->fatal = r;
			return NULL;
		}
		sqe = io_uring_get_sqe(&u->ring);
	}
	if (!sqe && !u->fatal)
		u->fatal = -EBUSY;
	return sqe;
}

/* --- receiving ----------------------------------------------------------- */

/* Arm the connection's receive into the buffer ring, within its room: at
 * adoption, on resuming after a pause or a shortage, and back from bulk. */
void uring_arm_recv(struct worker *w, struct conn *c)
{
	struct uring_engine *u = w->eng;
	struct uconn *uc = uconn_of(u, c);
	struct io_uring_sqe *sqe;

	if (c->state != CONN_OPEN ||
	    (uc->flags & (UC_RECV | UC_STARVED | UC_BULK_WANT | UC_BULK)))
		return;
	if (uring_held(c, uc) >= c->cap) {	/* no room: wait for sends */
		uc->flags |= UC_PAUSED;
		return;
	}
	if (!(sqe = uring_sqe(u))) {
		uring_close(w, c, CLOSE_ERROR);
		return;
	}
	/* Never more than --conn-buffer held.  The kernel's multishot limit
	 * ends the receive once it is reached, but the receive that reaches
	 * it fills a whole buffer: so the limit leaves one buffer of room,
	 * and a connection with less room than a buffer gets a single-shot
	 * receive of exactly its room (as every receive does without the
	 * limit). */
	uint32_t room = c->cap - uring_held(c, uc);
	if (uring_mshot_limit && room >= u->bufs.size) {
		io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
		sqe->file_index = room - u->bufs.size + 1;	/* sqe->optlen */
	} else {
		io_uring_prep_recv(sqe, c->fd, NULL, room, 0);
	}
	uring_target(sqe, c, uc);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = u->bufs.bgid;
	io_uring_sqe_set_data64(sqe, ud_make(UOP_RECV, c->gen, c->idx));
	uc->flags |= UC_RECV;
	c->engine_ref++;
}

/* Cancel the armed receive (it ends with its last completion). */
void uring_stop_recv(struct worker *w, struct conn *c, struct uconn *uc)
{
	struct uring_engine *u = w->eng;
	struct io_uring_sqe *sqe;

	if ((uc->flags & (UC_RECV | UC_RECV_CANCEL)) != UC_RECV)
		return;
	if (!(sqe = uring_sqe(u)))
		return;
	io_uring_prep_cancel64(sqe, ud_make(UOP_RECV, c->gen, c->idx), 0);
	io_uring_sqe_set_data64(sqe, ud_make(UOP_CANCEL, c->gen, c->idx));
	uc->flags |= UC_RECV_CANCEL;
}

/* Data arrived in a ring buffer (n bytes): a connection whose receives
 * fill whole buffers, in a row and BULK_MIN_BYTES of them at least, asks to
 * switch (a byte floor too, so that with --conn-buffer's smallest buffers
 * ordinary request-response traffic stays on ring buffers); its multishot
 * receive is cancelled, and the loop's ubulk_maybe_enter() switches once it is over
 * and the queue is sent. */
void uring_consider_bulk(struct worker *w, struct conn *c, struct uconn *uc, uint32_t n)
{
	struct uring_engine *u = w->eng;

	if (n < u->bufs.size) {
		uc->full_recvs = 0;
		return;
	}
	if (!u->bulk_ok || c->state != CONN_OPEN || (uc->flags & (UC_BULK_WANT | UC_BULK)) ||
	    ((uc->flags & UC_DIRECT) && !u->install_ok))
		return;
	if (uc->full_recvs < UINT8_MAX)
		uc->full_recvs++;
	if (uc->full_recvs < FULL_RECVS ||
	    (uint64_t)uc->full_recvs * u->bufs.size < BULK_MIN_BYTES || !uring_bulk_take(u, c, uc))
		return;
	uc->flags |= UC_BULK_WANT;
	uring_stop_recv(w, c, uc);
}

/* --- closing ------------------------------------------------------------- */

/* Everything received has been echoed after the peer's FIN: FIN back.  A
 * registered socket gets its FIN from the close itself (nothing is unread,
 * so closing is a graceful FIN), which spares an io-wq shutdown request;
 * a bulk one has a plain descriptor for it. */
void uring_maybe_finish(struct worker *w, struct conn *c, struct uconn *uc)
{
	if (c->state == CONN_FLUSHING && !(uc->flags & UC_SEND) && !uring_held(c, uc)) {
		if (uc->flags & UC_BULK)
			shutdown(uc->bulk_fd, SHUT_WR);
		else if (!(uc->flags & UC_DIRECT))
			shutdown(c->fd, SHUT_WR);
		uring_close(w, c, CLOSE_PEER);
	}
}

/* The last request of a closing connection is back: give everything back
 * and free the slot. */
void uring_release_if_done(struct worker *w, struct conn *c)
{
	struct uring_engine *u = w->eng;

	if (c->state != CONN_CLOSING || c->engine_ref)
		return;
	if (c->buf || uconn_of(u, c)->spill)
		uring_freed(u, w->now);
	uconn_release(u, c);
	if (uconn_of(u, c)->flags & UC_DIRECT) {
		int none = -1;
		io_uring_register_files_update(&u->ring, c->idx, &none, 1);
	} else {
		close(c->fd);
	}
	worker_closed(w, c);
}

/* Begin closing: cancel whatever is in flight; the release follows when
 * the last completion is back. */
void uring_close(struct worker *w, struct conn *c, enum close_reason why)
{
	struct uring_engine *u = w->eng;
	struct io_uring_sqe *sqe;

	if (c->state == CONN_CLOSING)
		return;
	worker_closing(w, c, why);
	if (c->engine_ref && (sqe = uring_sqe(u))) {
		if (uconn_of(u, c)->flags & UC_DIRECT)
			io_uring_prep_cancel_fd(sqe, (int)c->idx,
						IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
		else
			io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, ud_make(UOP_CANCEL, c->gen, c->idx));
	}
	uring_release_if_done(w, c);
}

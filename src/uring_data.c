/* SPDX-License-Identifier: GPL-2.0-only */
/* The io_uring engine's echo path for one connection.
 *
 * Fast path: the kernel receives into a ring buffer (multishot receive,
 * buffer select) and the same buffer is sent straight back with
 * MSG_DONTWAIT; it returns to the ring when the send completes.  No copy in
 * user space, one send in flight per connection so bytes stay in order.
 *
 * Slow path: a send that comes back short or with EAGAIN means the peer
 * reads slower than it writes.  Then the unsent bytes are copied into a
 * private buffer of --conn-buffer bytes (c->buf, like the epoll engine)
 * and the ring buffers go back at once, so slow readers never pin the
 * worker's shared pool; sends from the private copy wait in the kernel for
 * room.  A connection never receives more than --conn-buffer minus what it
 * holds, exactly, on every kernel.  Where the kernel has a byte limit for
 * a multishot receive (6.17) the receive is armed with the room less one
 * buffer (the receive that crosses the limit fills a whole buffer) and
 * ends by itself; once the room is smaller than a buffer, and everywhere
 * on older kernels, a receive is single-shot and asks for at most the room
 * left (the kernel fills at most that much of the ring buffer it picks).  A multishot receive cannot be bounded there: before 6.17 one
 * wake-up receives until the socket is empty, a whole receive window into
 * as many ring buffers as are posted, before any completion is seen, so
 * cancelling it at the limit came too late by up to megabytes.  Either way
 * TCP then throttles the peer; receiving resumes when half of the held
 * bytes are gone.  Bytes that arrive while a send still reads the private
 * copy and it cannot be compacted go to a "spill" behind it; the two
 * together never hold more than --conn-buffer.
 *
 * Running out of ring buffers ends a multishot receive with ENOBUFS; the
 * connection waits on a FIFO "starved" list and is re-armed as buffers
 * come back, at most one connection per posted buffer, so nothing spins
 * and no data is lost (it stays in the socket). */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "uring.h"
#include "util.h"
#include "worker.h"

uint32_t udata_held(const struct conn *c, const struct uconn *uc)
{
	return c->len + uc->spill_len + uc->q_bytes + uc->pipe_bytes;
}

static enum close_reason errno_reason(int err)
{
	return (err == ECONNRESET || err == EPIPE) ? CLOSE_RESET : CLOSE_ERROR;
}

static void starve(struct uring_engine *u, struct uconn *uc)
{
	uc->flags |= UC_STARVED;
	uc->snext = &u->starved;
	uc->sprev = u->starved.sprev;
	u->starved.sprev->snext = uc;
	u->starved.sprev = uc;
}

static void unstarve(struct uconn *uc)
{
	uc->sprev->snext = uc->snext;
	uc->snext->sprev = uc->sprev;
	uc->flags &= (uint16_t)~UC_STARVED;
}

void udata_arm_recv(struct worker *w, struct conn *c)
{
	struct uring_engine *u = w->eng;
	struct uconn *uc = uconn_of(u, c);
	struct io_uring_sqe *sqe;

	if (c->state != CONN_OPEN ||
	    (uc->flags & (UC_RECV | UC_STARVED | UC_BULK_WANT | UC_BULK)))
		return;
	if (udata_held(c, uc) >= u->cap) {	/* no room: wait for sends */
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
	uint32_t room = u->cap - udata_held(c, uc);
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

void udata_stop_recv(struct worker *w, struct conn *c, struct uconn *uc)
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

static void pause_recv(struct worker *w, struct conn *c, struct uconn *uc)
{
	uc->flags |= UC_PAUSED;
	udata_stop_recv(w, c, uc);
}

/* Receive again if the connection has room, with some hysteresis so a
 * slow reader does not cancel and re-arm on every send. */
static void maybe_resume(struct worker *w, struct conn *c, struct uconn *uc)
{
	struct uring_engine *u = w->eng;
	uint32_t h = udata_held(c, uc);

	if (uc->flags & UC_PAUSED) {
		if (h > u->cap / 2)
			return;
		uc->flags &= (uint16_t)~UC_PAUSED;
	}
	if (h < u->cap)
		udata_arm_recv(w, c);
}

/* Slow mode: unsent bytes live in the private copy c->buf (at most
 * --conn-buffer bytes; a send may be reading it) and, behind it, the spill:
 * what arrived after the private copy was full but before the receive's
 * cancel took effect.  The spill is never sent from, so it may move. */
static bool slow(const struct conn *c, const struct uconn *uc)
{
	return c->len || uc->spill_len;
}

static int spill_append(struct uring_engine *u, struct uconn *uc, const uint8_t *data,
			uint32_t n)
{
	if (uc->spill_len + n > uc->spill_cap) {
		/* Never beyond --conn-buffer: held bytes never are. */
		uint32_t cap = MAX(uc->spill_len + n, MIN(uc->spill_cap * 2, u->cap));
		uint8_t *p = realloc(uc->spill, cap);
		if (!p)
			return -ENOMEM;
		uc->spill = p;
		uc->spill_cap = cap;
	}
	memcpy(uc->spill + uc->spill_len, data, n);
	uc->spill_len += n;
	return 0;
}

/* Append up to n bytes to the private copy; returns how many fit. */
static uint32_t priv_fit(struct uring_engine *u, struct conn *c, struct uconn *uc,
			 const uint8_t *data, uint32_t n)
{
	if (!c->buf) {
		if (!(c->buf = malloc(u->cap)))
			return 0;
		c->off = c->len = 0;
	}
	/* Compact only while no send reads from the buffer. */
	if (c->off + c->len + n > u->cap && c->off && !(uc->flags & UC_SEND_PRIV)) {
		memmove(c->buf, c->buf + c->off, c->len);
		c->off = 0;
	}
	uint32_t k = MIN(n, u->cap - (c->off + c->len));
	memcpy(c->buf + c->off + c->len, data, k);
	c->len += k;
	return k;
}

/* Copy n bytes to the end of the slow-mode data.  0 or -ENOMEM. */
static int stash(struct uring_engine *u, struct conn *c, struct uconn *uc, const uint8_t *data,
		 uint32_t n)
{
	if (!uc->spill_len) {
		uint32_t k = priv_fit(u, c, uc, data, n);
		data += k;
		n -= k;
	}
	return n ? spill_append(u, uc, data, n) : 0;
}

/* Move spilled bytes up into the private copy (no send in flight). */
static void unspill(struct uring_engine *u, struct conn *c, struct uconn *uc, uint64_t now)
{
	if (!uc->spill_len || (uc->flags & UC_SEND))
		return;
	uint32_t k = priv_fit(u, c, uc, uc->spill, uc->spill_len);
	memmove(uc->spill, uc->spill + k, uc->spill_len - k);
	uc->spill_len -= k;
	if (!uc->spill_len) {
		free(uc->spill);
		uc->spill = NULL;
		uc->spill_cap = 0;
		uring_freed(u, now);
	}
}

static void queue_push(struct uring_engine *u, struct uconn *uc, uint16_t bid, uint32_t skip)
{
	struct uring_bufs *b = &u->bufs;

	b->next[bid] = BUFS_NONE;
	if (uc->q_head == BUFS_NONE) {
		uc->q_head = bid;
		uc->q_off = skip;
	} else {
		b->next[uc->q_tail] = bid;
	}
	uc->q_tail = bid;
	uc->q_bytes += b->len[bid] - skip;
}

/* n bytes from the head of the ring queue are gone (sent or copied). */
static void queue_consume(struct uring_engine *u, struct uconn *uc, uint32_t n)
{
	struct uring_bufs *b = &u->bufs;

	while (n) {
		uint16_t bid = uc->q_head;
		uint32_t k = MIN(n, b->len[bid] - uc->q_off);
		uc->q_off += k;
		uc->q_bytes -= k;
		n -= k;
		if (uc->q_off == b->len[bid]) {
			uc->q_head = b->next[bid];
			uc->q_off = 0;
			uring_buf_put(b, bid);
		}
	}
	if (uc->q_head == BUFS_NONE)
		uc->q_tail = BUFS_NONE;
}

/* The peer stopped keeping up: copy everything queued in ring buffers to
 * the private copy (and spill) and give the ring buffers back, so a slow
 * reader never pins the shared pool.  0 or -ENOMEM. */
static int go_slow(struct uring_engine *u, struct conn *c, struct uconn *uc)
{
	while (uc->q_head != BUFS_NONE) {
		uint16_t bid = uc->q_head;
		uint32_t k = u->bufs.len[bid] - uc->q_off;
		if (stash(u, c, uc, uring_buf(&u->bufs, bid) + uc->q_off, k))
			return -ENOMEM;
		queue_consume(u, uc, k);
	}
	return 0;
}

static void kick_send(struct worker *w, struct conn *c, struct uconn *uc)
{
	struct uring_engine *u = w->eng;
	struct io_uring_sqe *sqe;

	if (uc->flags & UC_SEND)
		return;
	if (!c->len)
		unspill(u, c, uc, w->now);
	if (!c->len && uc->q_head == BUFS_NONE)
		return;
	if (!(sqe = uring_sqe(u))) {
		uring_close(w, c, CLOSE_ERROR);
		return;
	}
	if (c->len) {
		/* The peer is slow: let the kernel wait for room. */
		io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL);
		uring_target(sqe, c, uc);
		uc->send_len = c->len;
		uc->flags |= UC_SEND | UC_SEND_PRIV;
	} else {
		uint16_t bid = uc->q_head;
		uc->send_len = u->bufs.len[bid] - uc->q_off;
		io_uring_prep_send(sqe, c->fd, uring_buf(&u->bufs, bid) + uc->q_off, uc->send_len,
				   MSG_NOSIGNAL | MSG_DONTWAIT);
		uring_target(sqe, c, uc);
		uc->flags |= UC_SEND;
	}
	io_uring_sqe_set_data64(sqe, ud_make(UOP_SEND, c->gen, c->idx));
	c->engine_ref++;
}

/* Everything received has been echoed after the peer's FIN: FIN back.  A
 * registered socket gets its FIN from the close itself (nothing is unread,
 * so closing is a graceful FIN), which spares an io-wq shutdown request;
 * a bulk one has a plain descriptor for it. */
void udata_maybe_finish(struct worker *w, struct conn *c, struct uconn *uc)
{
	if (c->state == CONN_FLUSHING && !(uc->flags & UC_SEND) && !udata_held(c, uc)) {
		if (uc->flags & UC_BULK)
			shutdown(uc->bulk_fd, SHUT_WR);
		else if (!(uc->flags & UC_DIRECT))
			shutdown(c->fd, SHUT_WR);
		uring_close(w, c, CLOSE_PEER);
	}
}

/* Data arrived in ring buffer bid. */
static void take(struct worker *w, struct conn *c, struct uconn *uc, uint16_t bid, uint32_t n)
{
	struct uring_engine *u = w->eng;

	u->bufs.len[bid] = n;
	if (slow(c, uc)) {
		int r = stash(u, c, uc, uring_buf(&u->bufs, bid), n);
		uring_buf_put(&u->bufs, bid);
		if (r) {
			uring_close(w, c, CLOSE_ERROR);
			return;
		}
	} else {
		queue_push(u, uc, bid, 0);
	}
	conn_note_held(c, udata_held(c, uc));
	kick_send(w, c, uc);
	if (udata_held(c, uc) >= u->cap)
		pause_recv(w, c, uc);
	ubulk_consider(w, c, uc, n);
}

void udata_on_recv(struct worker *w, struct conn *c, const struct io_uring_cqe *cqe)
{
	struct uring_engine *u = w->eng;
	struct uconn *uc = uconn_of(u, c);
	int res = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		uc->flags &= (uint16_t)~(UC_RECV | UC_RECV_CANCEL);
		c->engine_ref--;
	}
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		uring_buf_taken(&u->bufs, bid);
		if (res > 0 && c->state == CONN_OPEN) {
			worker_recv(w, c, (uint32_t)res);
			take(w, c, uc, bid, (uint32_t)res);
		} else {
			uring_buf_put(&u->bufs, bid);	/* closing, or no data in it */
		}
	}
	if (res == 0) {
		if (c->state == CONN_OPEN)
			conn_set_state(c, CONN_FLUSHING);
		udata_maybe_finish(w, c, uc);
		return;
	}
	if (res == -ENOBUFS) {
		uring_bufs_grow(&u->bufs);
		if (uc->flags & UC_BULK_WANT) {
			ubulk_maybe_enter(w, c, uc);	/* needs no ring buffer */
		} else if (c->state == CONN_OPEN && !(uc->flags & UC_STARVED)) {
			starve(u, uc);
		}
		return;
	}
	if (res < 0 && res != -ECANCELED && c->state != CONN_CLOSING) {
		uring_close(w, c, errno_reason(-res));
		return;
	}
	if (!(uc->flags & UC_RECV))
		maybe_resume(w, c, uc);
	ubulk_maybe_enter(w, c, uc);
}

void udata_on_send(struct worker *w, struct conn *c, const struct io_uring_cqe *cqe)
{
	struct uring_engine *u = w->eng;
	struct uconn *uc = uconn_of(u, c);
	bool priv = uc->flags & UC_SEND_PRIV;
	int res = cqe->res;

	c->engine_ref--;
	uc->flags &= (uint16_t)~(UC_SEND | UC_SEND_PRIV);
	if (c->state == CONN_CLOSING)
		return;
	if (res < 0 && res != -EAGAIN) {
		uring_close(w, c, errno_reason(-res));
		return;
	}
	uint32_t n = res > 0 ? (uint32_t)res : 0;
	if (n)
		worker_sent(w, c, n);
	if (priv) {
		conn_sent(c, n);	/* frees the copy once it is empty */
		if (!c->buf)
			uring_freed(u, w->now);
	} else {
		queue_consume(u, uc, n);
		if (n < uc->send_len && go_slow(u, c, uc)) {
			uring_close(w, c, CLOSE_ERROR);
			return;
		}
	}
	kick_send(w, c, uc);
	if (c->state == CONN_FLUSHING)
		udata_maybe_finish(w, c, uc);
	else if (c->state == CONN_OPEN)
		maybe_resume(w, c, uc);
	ubulk_maybe_enter(w, c, uc);
}

/* After a batch of completions and a refill: re-arm as many starved
 * connections as there are posted buffers, oldest first.  Once every
 * completion is reaped that count is exact (with DEFER_TASKRUN the kernel
 * only takes buffers while we are in io_uring_enter), so a re-armed receive
 * finds a buffer unless another connection's data came first -- nothing
 * spins. */
void udata_feed_starved(struct worker *w)
{
	struct uring_engine *u = w->eng;
	uint32_t n = uring_bufs_posted(&u->bufs);

	while (n && u->starved.snext != &u->starved) {
		struct uconn *uc = u->starved.snext;
		unstarve(uc);
		n--;
		maybe_resume(w, uc->c, uc);
	}
}

/* The connection is going away: drop it from the starved list and give
 * back every ring buffer it still holds. */
void udata_forget(struct worker *w, struct conn *c)
{
	struct uring_engine *u = w->eng;
	struct uconn *uc = uconn_of(u, c);

	if (uc->flags & UC_STARVED)
		unstarve(uc);
	if (uc->q_head != BUFS_NONE)
		queue_consume(u, uc, uc->q_bytes);
	free(uc->spill);
	uc->spill = NULL;
	uc->spill_len = uc->spill_cap = 0;
	ubulk_forget(w, c, uc);
}

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

#include "engine/uring/uring.h"
#include "core/util.h"
#include "server/worker.h"

static enum close_reason errno_reason(int err)
{
	return (err == ECONNRESET || err == EPIPE) ? CLOSE_RESET : CLOSE_ERROR;
}

static void pause_recv(struct worker *w, struct conn *c, struct uconn *uc)
{
	uc->flags |= UC_PAUSED;
	uring_stop_recv(w, c, uc);
}

/* Receive again if the connection has room, with some hysteresis so a
 * slow reader does not cancel and re-arm on every send. */
static void maybe_resume(struct worker *w, struct conn *c, struct uconn *uc)
{
	uint32_t h = uring_held(c, uc);

	if (uc->flags & UC_PAUSED) {
		if (h > c->cap / 2)
			return;
		uc->flags &= (uint16_t)~UC_PAUSED;
	}
	if (h < c->cap)
		uring_arm_recv(w, c);
}

/* Slow mode: unsent bytes live in the private copy c->buf (at most
 * --conn-buffer bytes; a send may be reading it) and, behind it, the spill:
 * what arrived after the private copy was full but before the receive's
 * cancel took effect.  The spill is never sent from, so it may move. */
static bool slow(const struct conn *c, const struct uconn *uc)
{
	return c->len || uc->spill_len;
}

static int spill_append(uint32_t limit, struct uconn *uc, const uint8_t *data, uint32_t n)
{
	if (uc->spill_len + n > uc->spill_cap) {
		/* Never beyond --conn-buffer: held bytes never are. */
		uint32_t cap = MAX(uc->spill_len + n, MIN(uc->spill_cap * 2, limit));
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
		if (!(c->buf = malloc(c->cap)))
			return 0;
		c->off = c->len = 0;
	}
	/* Compact only while no send reads from the buffer. */
	if (c->off + c->len + n > c->cap && c->off && !(uc->flags & UC_SEND_PRIV)) {
		memmove(c->buf, c->buf + c->off, c->len);
		c->off = 0;
	}
	uint32_t k = MIN(n, c->cap - (c->off + c->len));
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
	return n ? spill_append(c->cap, uc, data, n) : 0;
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
		uring_queue_consume(u, uc, k);
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
	conn_note_held(c, uring_held(c, uc));
	kick_send(w, c, uc);
	if (uring_held(c, uc) >= c->cap)
		pause_recv(w, c, uc);
	uring_consider_bulk(w, c, uc, n);
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
		uring_maybe_finish(w, c, uc);
		return;
	}
	if (res == -ENOBUFS) {
		uring_bufs_grow(&u->bufs);
		/* One asking for bulk mode needs no ring buffer: the loop
		 * switches it (ubulk_maybe_enter). */
		if (!(uc->flags & UC_BULK_WANT) && c->state == CONN_OPEN &&
		    !(uc->flags & UC_STARVED))
			uring_starve(u, uc);
		return;
	}
	if (res < 0 && res != -ECANCELED && c->state != CONN_CLOSING) {
		uring_close(w, c, errno_reason(-res));
		return;
	}
	if (!(uc->flags & UC_RECV))
		maybe_resume(w, c, uc);
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
		uring_queue_consume(u, uc, n);
		if (n < uc->send_len && go_slow(u, c, uc)) {
			uring_close(w, c, CLOSE_ERROR);
			return;
		}
	}
	kick_send(w, c, uc);
	if (c->state == CONN_FLUSHING)
		uring_maybe_finish(w, c, uc);
	else if (c->state == CONN_OPEN)
		maybe_resume(w, c, uc);
}

/* A connection that starts with n bytes to echo, read outside the ring
 * (with a PROXY header): it starts in slow mode, and they are sent from
 * the private copy before anything received after them.  False if c was
 * closed (no memory for the copy, no room in the submission queue). */
bool udata_begin_with(struct worker *w, struct conn *c, const uint8_t *data, uint32_t n)
{
	struct uring_engine *u = w->eng;
	struct uconn *uc = uconn_of(u, c);

	if (stash(u, c, uc, data, n)) {
		uring_close(w, c, CLOSE_ERROR);
		return false;
	}
	conn_note_held(c, uring_held(c, uc));
	kick_send(w, c, uc);
	/* kick_send() closed c if it found no submission entry; the slot's
	 * memory outlives the close, so its flags can still be read. */
	return uc->flags & UC_SEND;
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
		uring_unstarve(uc);
		n--;
		maybe_resume(w, uc->c, uc);
	}
}


/* SPDX-License-Identifier: GPL-2.0-only */
/* The io_uring engine's bulk mode: large transfers by splice, no copy.
 *
 * A connection whose receives keep filling whole ring buffers is moving
 * bulk data; copying every byte into a ring buffer and back out costs more
 * than the system calls.  Such a connection switches to socket -> pipe ->
 * same socket with splice(2): tcp_splice_read() hands the pipe references
 * to the received pages, and splicing the pipe into the socket sends those
 * pages (MSG_SPLICE_PAGES), so the server copies nothing.
 *
 * Why plain splice(2) from the worker, driven by a multishot poll, and not
 * IORING_OP_SPLICE: the kernel always runs a splice request on an io-wq
 * thread (a thread hop and a second wake-up per message), while a poll
 * completion is produced in the worker itself and the two splices that
 * follow cost no more than the two system calls they are.  splice(2) needs
 * a plain descriptor: a registered socket gets one installed from its
 * file-table slot (IORING_OP_FIXED_FD_INSTALL, Linux 6.8) while it is in
 * bulk mode.  The descriptor is made non-blocking (both splices take their
 * blocking from the file); it is made blocking again on the way out, since
 * the ring's slow-path sends rely on the kernel waiting for room.
 *
 * Bounds: unsent data is what sits in the pipe, and a splice in
 * never asks for more than --conn-buffer minus that, so a slow reader holds
 * at most --conn-buffer; then TCP throttles the peer, an output poll waits
 * for room, and input resumes after it.  At most BULK_MAX connections per
 * worker are in bulk mode (each costs a pipe: two or three descriptors).  A
 * bulk connection that moved nothing for a whole sweep (a second) with an
 * empty pipe goes back to ring buffers and gives its pipe back, so an idle
 * connection holds no buffer and no pipe for long.
 *
 * Order: the switch waits until the multishot receive has ended and every
 * byte received into ring buffers has been sent, so spliced bytes always
 * follow them; going back waits until the input poll is gone and the pipe
 * is empty.  EOF: the peer's FIN is seen as a splice of 0 bytes; FIN goes
 * back once the pipe is empty (udata_maybe_finish).
 *
 * Urgent data: splice (tcp_read_sock) stops in front of the urgent mark
 * and never moves past it, even with SO_OOBINLINE, and at the peer's FIN
 * it reports 0 as if the stream had ended there.  The input poll asks for
 * POLLPRI too, which TCP reports while an urgent mark lies ahead; while it
 * does, a splice that brings nothing is followed by a one-byte recv(),
 * which reads across the mark (the byte is inline), and the byte goes into
 * the pipe behind everything spliced before it, so the order holds.
 *
 * Spin: for 100 us (ECHOSRV_URING_SPIN_US) after a loop turn that moved
 * bulk bytes the worker polls for completions instead of sleeping.  On a
 * request-response stream the next message is one client turnaround away,
 * and on the 2-CPU test VM
 * (no guest halt-polling) waking a sleeping worker costs an IPI and VM
 * exits, more than the copy splice saves.  Measured, 64 KiB x 1 connection
 * against the baseline loop in one run: splice alone 1.05-1.2x its MB/s,
 * splice with a 50 us spin no better (shorter than the turnaround), with
 * 100-300 us 2.1-2.4x, server CPU per message 0.7x either way.  Only bulk
 * connections set it off, so small messages never spin; a stream that stops
 * costs at most that spin of polling.
 *
 * ECHOSRV_URING_SPLICE=0 turns bulk mode off and ECHOSRV_URING_SPIN_US=N
 * sets the spin (0: none), for benchmarks. */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/uring/uring.h"
#include "core/util.h"
#include "server/worker.h"

/* Linux 6.8; liburing 2.3's header predates it. */
#define URING_OP_FIXED_FD_INSTALL 54
#define PUMP_ROUNDS 8		/* splice pairs per event before yielding */
#define SWEEP_NS NSEC_PER_SEC

static void pump(struct worker *w, struct conn *c, struct uconn *uc);

static void w_eng_moved(struct worker *w)
{
	((struct uring_engine *)w->eng)->bulk_moved = w->now;
}

/* Poll instead of sleeping for a moment after bulk bytes moved: on a
 * request-response stream the next message is a round trip away, and
 * waking a sleeping thread costs more than the wait (in a VM, an IPI and
 * two exits).  Small messages never get here, so they never spin. */
bool ubulk_spinning(const struct worker *w)
{
	const struct uring_engine *u = w->eng;

	return u->bulk_spin_ns && u->bulk_moved && w->now - u->bulk_moved < u->bulk_spin_ns;
}

void ubulk_init(struct uring_engine *u, struct io_uring *ring)
{
	struct io_uring_probe *p;

	if (!uring_env.splice)
		return;
	u->bulk_ok = true;
	u->bulk_spin_ns = (uint64_t)uring_env.spin_us * 1000;
	if ((p = io_uring_get_probe_ring(ring))) {
		u->install_ok = io_uring_opcode_supported(p, URING_OP_FIXED_FD_INSTALL);
		io_uring_free_probe(p);
	}
}

/* --- the table of bulk connections -------------------------------------- */

/* --- switching ----------------------------------------------------------- */

static bool arm_poll(struct worker *w, struct conn *c, struct uconn *uc, bool out)
{
	struct uring_engine *u = w->eng;
	struct io_uring_sqe *sqe = uring_sqe(u);

	if (!sqe) {
		uring_close(w, c, CLOSE_ERROR);
		return false;
	}
	if (out)
		io_uring_prep_poll_add(sqe, 0, POLLOUT);
	else
		io_uring_prep_poll_multishot(sqe, 0, POLLIN | POLLPRI);
	uring_target(sqe, c, uc);
	io_uring_sqe_set_data64(sqe, ud_make(out ? UOP_POLLOUT : UOP_POLLIN, c->gen, c->idx));
	uc->flags |= out ? UC_POLLOUT : UC_POLLIN;
	c->engine_ref++;
	return true;
}

/* Stay on ring buffers after all (no pipe, no descriptor to be had). */
static void abandon(struct worker *w, struct conn *c, struct uconn *uc, int err)
{
	TRACE(TR_CONN, "conn=%llx stays on ring buffers: %s", (unsigned long long)conn_id(c),
	      strerror(err));
	uring_bulk_drop(w->eng, uc);
	uring_arm_recv(w, c);
}

static int set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK))
		return ERR();
	return 0;
}

static void enter(struct worker *w, struct conn *c, struct uconn *uc, int fd, bool installed)
{
	int p[2], r;

	if (pipe2(p, O_NONBLOCK | O_CLOEXEC)) {
		r = errno;
		goto fail;
	}
	if ((r = -set_nonblock(fd, true))) {
		close(p[0]);
		close(p[1]);
		goto fail;
	}
	uc->bulk_fd = fd;
	uc->pipe_r = p[0];
	uc->pipe_w = p[1];
	uc->pipe_bytes = 0;
	uc->flags = (uint16_t)((uc->flags & ~UC_BULK_WANT) | UC_BULK | UC_MOVED |
			       (installed ? UC_BULK_FD : 0));
	TRACE(TR_CONN, "conn=%llx bulk mode: splice", (unsigned long long)conn_id(c));
	if (arm_poll(w, c, uc, false))
		pump(w, c, uc);
	return;
fail:
	if (installed)
		close(fd);
	abandon(w, c, uc, r);
}

/* After any completion of a switching connection: switch once the receive
 * is over and nothing is unsent; a registered socket first gets a plain
 * descriptor. */
void ubulk_maybe_enter(struct worker *w, struct conn *c, struct uconn *uc)
{
	struct uring_engine *u = w->eng;
	struct io_uring_sqe *sqe;

	if ((uc->flags & (UC_BULK_WANT | UC_INSTALL | UC_RECV | UC_SEND)) != UC_BULK_WANT ||
	    c->state != CONN_OPEN || uring_held(c, uc))
		return;
	if (!(uc->flags & UC_DIRECT)) {
		enter(w, c, uc, c->fd, false);
		return;
	}
	if (!(sqe = uring_sqe(u))) {
		uring_close(w, c, CLOSE_ERROR);
		return;
	}
	io_uring_prep_rw(URING_OP_FIXED_FD_INSTALL, sqe, (int)c->idx, NULL, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, ud_make(UOP_INSTALL, c->gen, c->idx));
	uc->flags |= UC_INSTALL;
	c->engine_ref++;
}

/* Back to ring buffers: the input poll is gone and the pipe is empty. */
static void leave(struct worker *w, struct conn *c, struct uconn *uc)
{
	set_nonblock(uc->bulk_fd, false);
	uring_pipe_close(uc);
	uring_bulk_drop(w->eng, uc);
	TRACE(TR_CONN, "conn=%llx bulk mode ends: idle", (unsigned long long)conn_id(c));
	uring_arm_recv(w, c);
}

/* --- moving data --------------------------------------------------------- */

static enum close_reason errno_reason(int err)
{
	return (err == ECONNRESET || err == EPIPE) ? CLOSE_RESET : CLOSE_ERROR;
}

/* Pipe -> socket.  False when the connection was closed. */
static bool splice_out(struct worker *w, struct conn *c, struct uconn *uc)
{
	ssize_t n;

	if (!uc->pipe_bytes || (uc->flags & UC_POLLOUT))
		return true;
	n = splice(uc->pipe_r, NULL, uc->bulk_fd, NULL, uc->pipe_bytes,
		   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n < 0 && errno != EAGAIN) {
		uring_close(w, c, errno_reason(errno));
		return false;
	}
	if (n > 0) {
		uc->pipe_bytes -= (uint32_t)n;
		uc->flags |= UC_MOVED;
		w_eng_moved(w);
		worker_sent(w, c, (uint32_t)n);
	}
	/* Short: the peer reads slower than it writes; wait for room. */
	return !uc->pipe_bytes || arm_poll(w, c, uc, true);
}

/* Splice stopped at what may be the urgent mark, with the pipe empty:
 * read one byte past it by recv() and queue it in the pipe (header
 * comment).  As splice(2): the bytes moved, 0 at EOF, or -1 with errno;
 * EAGAIN means no mark is in reach yet, and the next poll says again. */
static ssize_t urgent_in(struct uconn *uc)
{
	uint8_t b;
	ssize_t n = recv(uc->bulk_fd, &b, 1, MSG_DONTWAIT);

	if (n < 0 && errno == EAGAIN)
		uc->urgent = false;
	if (n <= 0)
		return n;
	/* An empty pipe always has room for one byte. */
	return write(uc->pipe_w, &b, 1);
}

/* Socket -> pipe, at most what keeps the unsent bytes within
 * --conn-buffer.  Returns 1 when bytes came in, 0 when none (or EOF), -1
 * when the connection was closed. */
static int splice_in(struct worker *w, struct conn *c, struct uconn *uc)
{
	ssize_t n;

	if (c->state != CONN_OPEN || uc->pipe_bytes >= c->cap)
		return 0;
	n = splice(uc->bulk_fd, NULL, uc->pipe_w, NULL, c->cap - uc->pipe_bytes,
		   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n <= 0 && (n == 0 || errno == EAGAIN) && uc->urgent && !uc->pipe_bytes)
		n = urgent_in(uc);
	if (n > 0) {
		uc->pipe_bytes += (uint32_t)n;
		conn_note_held(c, uc->pipe_bytes);
		uc->flags |= UC_MOVED;
		w_eng_moved(w);
		worker_recv(w, c, (uint32_t)n);
		return 1;
	}
	if (n == 0) {
		conn_set_state(c, CONN_FLUSHING);
	} else if (errno != EAGAIN) {
		uring_close(w, c, errno_reason(errno));
		return -1;
	}
	return 0;
}

/* Move what there is: send what the pipe holds, take in what the socket
 * has, until the socket is empty (EAGAIN), the pipe is full or the peer is
 * slow.  A connection with more to do after PUMP_ROUNDS is pumped again at
 * the end of the loop turn, so one connection cannot hold the worker. */
static void pump(struct worker *w, struct conn *c, struct uconn *uc)
{
	struct uring_engine *u = w->eng;
	int r = 0;

	/* A connection stays in the table until its last completion: once
	 * it is closing, nothing more may move. */
	if (!(uc->flags & UC_BULK) || (c->state != CONN_OPEN && c->state != CONN_FLUSHING))
		return;
	for (int i = 0; i < PUMP_ROUNDS; i++) {
		if (!splice_out(w, c, uc) || (r = splice_in(w, c, uc)) < 0)
			return;
		if (!r)
			break;
	}
	if (r > 0 && !splice_out(w, c, uc))
		return;
	if (r > 0 && !(uc->flags & UC_AGAIN)) {
		uc->flags |= UC_AGAIN;
		u->n_again++;
	}
	uring_maybe_finish(w, c, uc);
}

void ubulk_on_cqe(struct worker *w, struct conn *c, const struct io_uring_cqe *cqe, enum uop op)
{
	struct uring_engine *u = w->eng;
	struct uconn *uc = uconn_of(u, c);
	bool last = op != UOP_POLLIN || !(cqe->flags & IORING_CQE_F_MORE);

	if (last) {
		c->engine_ref--;
		uc->flags &= (uint16_t)~(op == UOP_POLLIN ? UC_POLLIN :
					 op == UOP_POLLOUT ? UC_POLLOUT : UC_INSTALL);
	}
	if (op == UOP_INSTALL) {
		if (c->state != CONN_OPEN) {
			if (cqe->res >= 0)
				close(cqe->res);
		} else if (cqe->res < 0) {
			/* A kernel without it: stop trying.  A shortage (EMFILE,
			 * ENOMEM) only keeps this connection on ring buffers. */
			if (cqe->res == -EINVAL || cqe->res == -EOPNOTSUPP || cqe->res == -EBADF)
				u->install_ok = false;
			abandon(w, c, uc, -cqe->res);
		} else {
			enter(w, c, uc, cqe->res, true);
		}
		return;
	}
	if (c->state == CONN_CLOSING || !(uc->flags & UC_BULK))
		return;
	if (op == UOP_POLLIN && cqe->res > 0)
		uc->urgent = (cqe->res & POLLPRI) != 0;
	/* A poll that failed (not cancelled) would fail again if re-armed. */
	if (cqe->res < 0 && cqe->res != -ECANCELED) {
		uring_close(w, c, CLOSE_ERROR);
		return;
	}
	pump(w, c, uc);
	if (c->state == CONN_CLOSING || c->state == CONN_FREE || (uc->flags & UC_POLLIN))
		return;
	/* The input poll is over: cancelled by the idle sweep, or ended by
	 * the kernel.  Leave if the sweep asked and the pipe is empty. */
	if ((uc->flags & UC_LEAVE) && !uc->pipe_bytes && !(uc->flags & UC_POLLOUT) &&
	    c->state == CONN_OPEN) {
		leave(w, c, uc);
		return;
	}
	uc->flags &= (uint16_t)~UC_LEAVE;
	if (c->state == CONN_OPEN)
		arm_poll(w, c, uc, false);
}

/* The loop's wait, in ms (-1: none), shortened so that the idle sweep
 * runs while bulk connections exist and pending pumps run at once. */
int ubulk_timeout_ms(const struct worker *w, int ms)
{
	const struct uring_engine *u = w->eng;

	if (u->n_again)
		return 0;
	if (!u->n_bulk)
		return ms;
	uint64_t due = u->bulk_sweep + SWEEP_NS;
	int until = due <= w->now ? 0 : (int)((due - w->now + 999999) / 1000000);
	return ms < 0 ? until : MIN(ms, until);
}

/* Once per loop turn: pump connections that stopped early, and once a
 * second send bulk connections that moved nothing back to ring buffers. */
void ubulk_turn(struct worker *w)
{
	struct uring_engine *u = w->eng;
	bool sweep = w->now - u->bulk_sweep >= SWEEP_NS;

	if (!u->n_again && !sweep)
		return;
	if (sweep)
		u->bulk_sweep = w->now;
	/* Downwards: a connection that closes is replaced by the last one,
	 * which has been visited already. */
	for (uint32_t i = u->n_bulk; i-- > 0;) {
		if (i >= u->n_bulk)
			continue;
		struct conn *c = u->bulk[i];
		struct uconn *uc = uconn_of(u, c);
		if (uc->flags & UC_AGAIN) {
			uc->flags &= (uint16_t)~UC_AGAIN;
			u->n_again--;
			pump(w, c, uc);
			continue;
		}
		if (!sweep || (uc->flags & (UC_BULK | UC_LEAVE)) != UC_BULK ||
		    c->state != CONN_OPEN)
			continue;
		if (uc->flags & UC_MOVED) {
			uc->flags &= (uint16_t)~UC_MOVED;
		} else if (!uc->pipe_bytes && (uc->flags & UC_POLLIN)) {
			struct io_uring_sqe *sqe = uring_sqe(u);
			if (!sqe)
				continue;
			io_uring_prep_cancel64(sqe, ud_make(UOP_POLLIN, c->gen, c->idx), 0);
			io_uring_sqe_set_data64(sqe, ud_make(UOP_CANCEL, c->gen, c->idx));
			uc->flags |= UC_LEAVE;
		}
	}
}

/* Forced stop: whatever bulk connections are left. */
void ubulk_fini(struct worker *w)
{
	struct uring_engine *u = w->eng;

	for (uint32_t i = 0; i < u->n_bulk; i++) {
		struct uconn *uc = uconn_of(u, u->bulk[i]);
		if (uc->flags & UC_BULK)
			uring_pipe_close(uc);
	}
	u->n_bulk = 0;
}

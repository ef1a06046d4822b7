/* SPDX-License-Identifier: GPL-2.0-only */
/* The io_uring engine: a completion loop, one ring per worker.
 *
 * Techniques: multishot accept per listener and multishot receive per
 * connection into a provided-buffer ring (bufs.c), so an idle connection
 * holds no buffer and arming costs one submission per connection, not per
 * message (before Linux 6.17, which can limit a multishot receive's bytes,
 * receives are single-shot so that the --conn-buffer bound holds; data.c
 * says why).  The echo path is in data.c, and connections that move bulk
 * data switch to splice (bulk.c: no copy at all, and the worker polls
 * instead of sleeping for 100 us after bulk bytes moved; 64 KiB x 1
 * connection went from about 1.0x to 2.1-2.4x the baseline loop's MB/s on
 * the 2-CPU test VM, README has the figures).  The ring is created in the
 * worker's own thread with SINGLE_ISSUER and DEFER_TASKRUN where the kernel
 * has them (completions are then produced only when this thread asks, with
 * no cross-thread wake-ups), and every loop iteration submits all new
 * requests and waits for completions in one io_uring_enter.  The wake
 * eventfd is watched with a multishot poll.  Admitted sockets move into a
 * registered file table (slot = conn index), so requests skip the
 * descriptor lookup and connections hold no descriptor.
 *
 * This file is the top of the engine: it dispatches each completion to
 * data.c or bulk.c and, after a data-mode one, lets bulk.c switch the
 * connection if it asked to (ring.c says how the switch is decided).  The
 * primitives everyone calls (submissions, receive, close, release) are in
 * ring.c and uconn.c, which never call back up here.
 *
 * Teardown is counted: c->engine_ref is the number of requests in flight
 * for a connection; closing cancels them by descriptor and the slot is
 * freed (worker_closed) only when the last completion is back.  Needs
 * Linux 6.1 for the flags; 6.0 for multishot receive (probed). */
#include <malloc.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/udp.h"
#include "engine/uring/uring.h"
#include "core/util.h"
#include "server/worker.h"

#define SQ_ENTRIES 1024
#define CQ_ENTRIES 16384
#define BUF_SIZE_MAX (64u << 10)
#define BUF_POOL_BYTES (64u << 20)	/* per worker, address space; pages fill on use */
#define TRIM_IDLE_NS (5 * NSEC_PER_SEC)

/* --- per-connection slots ------------------------------------------------ */

static void ur_close(struct worker *w, struct conn *c, enum close_reason why)
{
	uring_close(w, c, why);
}

/* --- accepting ----------------------------------------------------------- */

/* Move an admitted socket into the ring's file table at slot c->idx and
 * drop its descriptor: requests then skip the descriptor lookup, and the
 * connection no longer counts against RLIMIT_NOFILE.  worker_admit() has
 * used the plain descriptor already (peer address, TCP_NODELAY).  A slot
 * beyond the table keeps its descriptor. */
static void go_direct(struct uring_engine *u, struct conn *c)
{
	int fd = c->fd;

	if (c->idx >= u->n_files || io_uring_register_files_update(&u->ring, c->idx, &fd, 1) != 1)
		return;
	close(fd);
	c->fd = -1;
	uconn_of(u, c)->flags |= UC_DIRECT;
}

/* A proxy listener: every free slot gets a single-shot accept that writes
 * the peer's address into it (struct accept_slot says why). */
static void arm_proxy_accepts(struct uring_engine *u, int fd, unsigned a)
{
	for (unsigned k = 0; k < PROXY_ACCEPTS; k++) {
		struct accept_slot *s = &u->proxy_accept[a][k];
		struct io_uring_sqe *sqe;

		if (s->armed || !(sqe = uring_sqe(u)))
			continue;
		s->len = sizeof(s->ss);
		io_uring_prep_accept(sqe, fd, (struct sockaddr *)&s->ss, &s->len, SOCK_CLOEXEC);
		io_uring_sqe_set_data64(sqe, ud_make(UOP_ACCEPT, k + 1, a));
		s->armed = true;
	}
}

static void arm_accept(struct worker *w, unsigned a)
{
	struct uring_engine *u = w->eng;
	int fd = listener_row(&w->srv->ls, w->id)[a];
	struct io_uring_sqe *sqe;

	if (fd >= 0 && w->srv->ls.proxy[a]) {
		arm_proxy_accepts(u, fd, a);
		return;
	}
	if (fd < 0 || u->accept_armed[a] || !(sqe = uring_sqe(u)))
		return;
	/* No address buffer: a multishot accept would overwrite it with each
	 * new connection before we read it; getpeername() is exact. */
	io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_make(UOP_ACCEPT, 0, a));
	u->accept_armed[a] = true;
}

/* Every accept in flight on listener address a: the multishot one
 * (generation 0) and a proxy listener's slots (1 on). */
static void cancel_accepts(struct uring_engine *u, unsigned a)
{
	for (unsigned k = 0; k <= PROXY_ACCEPTS; k++) {
		bool armed = k ? u->proxy_accept[a][k - 1].armed : u->accept_armed[a];
		struct io_uring_sqe *sqe;

		if (armed && (sqe = uring_sqe(u))) {
			io_uring_prep_cancel64(sqe, ud_make(UOP_ACCEPT, k, a), 0);
			io_uring_sqe_set_data64(sqe, ud_make(UOP_CANCEL, 0, a));
		}
	}
}

static void ur_set_accepting(struct worker *w, bool on)
{
	struct uring_engine *u = w->eng;

	u->accepting = on;
	for (unsigned a = 0; a < w->srv->ls.n_addr; a++) {
		if (on)
			arm_accept(w, a);
		else
			cancel_accepts(u, a);
	}
	/* Now, not at the next loop turn: the worker may close the listeners
	 * right after this returns. */
	io_uring_submit(&u->ring);
}

/* Draining starts; the worker closes the listeners, UDP ones too, right
 * after: the UDP receives are cancelled first (submitted with the accept
 * cancels). */
static void ur_stop_accepting(struct worker *w)
{
	uudp_stop(w);
	ur_set_accepting(w, false);
}

static bool attach(struct worker *w, struct conn *c)
{
	struct uring_engine *u = w->eng;

	if (uring_attach(u, c)) {
		worker_closing(w, c, CLOSE_ERROR);
		close(c->fd);
		worker_closed(w, c);
		return false;
	}
	go_direct(u, c);
	return true;
}

/* An admitted connection (accepted here or dealt by another worker). */
static void ur_adopt(struct worker *w, struct conn *c)
{
	if (attach(w, c))
		uring_arm_recv(w, c);
}

/* A PROXY connection with bytes that came with its header: their echo is
 * a request in the ring, submitted with the receive in the loop's next
 * io_uring_enter, not a send() of its own. */
static void ur_adopt_with(struct worker *w, struct conn *c, const uint8_t *data, uint32_t n)
{
	if (attach(w, c) && udata_begin_with(w, c, data, n))
		uring_arm_recv(w, c);
}

static void on_accept(struct worker *w, const struct io_uring_cqe *cqe, uint64_t ud)
{
	struct uring_engine *u = w->eng;
	unsigned a = ud_idx(ud);
	uint32_t k = (uint32_t)(ud_conn_id(ud) >> 32);	/* the generation */
	struct accept_slot *s = k ? &u->proxy_accept[a][k - 1] : NULL;
	int fd = cqe->res;

	if (s)
		s->armed = false;
	else if (!(cqe->flags & IORING_CQE_F_MORE))
		u->accept_armed[a] = false;
	if (fd < 0) {
		if (fd != -ECANCELED && worker_accept_failed(w, -fd))
			ur_set_accepting(w, false);
	} else {
		/* A proxy slot holds the peer's address; the multishot accept
		 * has none (see arm_accept): getpeername(). */
		worker_accepted(w, fd, s ? (const struct sockaddr *)&s->ss : NULL);
	}
	if (u->accepting && !w->draining && !w->accept_resume)
		arm_accept(w, a);
}

/* --- the loop ------------------------------------------------------------ */

static void arm_wake(struct worker *w)
{
	struct uring_engine *u = w->eng;
	struct io_uring_sqe *sqe;

	if (u->wake_armed || !(sqe = uring_sqe(u)))
		return;
	io_uring_prep_poll_multishot(sqe, w->wake_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(UOP_WAKE, 0, 0));
	u->wake_armed = true;
}

static void on_wake(struct worker *w, const struct io_uring_cqe *cqe)
{
	struct uring_engine *u = w->eng;
	uint64_t v;
	ssize_t r = read(w->wake_fd, &v, sizeof(v));

	(void)r;	/* the phase is read in worker_tick() */
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		u->wake_armed = false;
		arm_wake(w);
	}
}

/* Proxy listeners: the worker's set of connections waiting for their
 * PROXY header is one epoll descriptor, polled here like wake_fd. */
static void arm_preamble(struct worker *w)
{
	struct uring_engine *u = w->eng;
	struct io_uring_sqe *sqe;

	if (w->pre.epfd < 0 || u->pre_armed || !(sqe = uring_sqe(u)))
		return;
	io_uring_prep_poll_multishot(sqe, w->pre.epfd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(UOP_PREAMBLE, 0, 0));
	u->pre_armed = true;
}

static void on_preamble(struct worker *w, const struct io_uring_cqe *cqe)
{
	struct uring_engine *u = w->eng;

	worker_preamble_ready(w);
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		u->pre_armed = false;
		arm_preamble(w);
	}
}

/* UDP is received by multishot recvmsg into a buffer ring of its own
 * (dgram.c).  Where the kernel has no multishot recvmsg (probe.c) it is
 * served by readiness instead (udp.h): a one-shot poll on the worker's UDP
 * set, re-armed after each serving, which completes at once while
 * datagrams are still waiting. */
static void arm_udp(struct worker *w)
{
	struct uring_engine *u = w->eng;
	struct io_uring_sqe *sqe;

	if (udp_fd(w) < 0 || !(sqe = uring_sqe(u)))
		return;
	io_uring_prep_poll_add(sqe, udp_fd(w), POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(UOP_UDP, 0, 0));
}

static void on_udp(struct worker *w)
{
	udp_ready(w);
	arm_udp(w);
}

/* A reload added or removed one of the worker's UDP sockets (udp.h).
 * Multishot: each socket has its own receive (dgram.c).  Poll: a socket
 * joins the set the armed poll watches (epoll wakes it), so only the
 * worker's first one, which makes the set, needs a poll armed. */
static int ur_udp_socket(struct worker *w, unsigned slot, int fd)
{
	bool had = udp_fd(w) >= 0;
	int r;

	if (fd < 0) {
		uudp_forget(w, slot);
		udp_remove_socket(w, slot);
		return 0;
	}
	if ((r = udp_add_socket(w, slot, fd)))
		return r;
	if (uring_udp_mshot && (r = uudp_serve(w, slot)))
		udp_remove_socket(w, slot);
	else if (!uring_udp_mshot && !had)
		arm_udp(w);
	return r;
}

static void dispatch(struct worker *w, const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	enum uop op = ud_op(ud);

	switch (op) {
	case UOP_ACCEPT: on_accept(w, cqe, ud); return;
	case UOP_WAKE:   on_wake(w, cqe); return;
	case UOP_PREAMBLE: on_preamble(w, cqe); return;
	case UOP_UDP:      on_udp(w); return;
	case UOP_UDP_RECV: uudp_on_cqe(w, cqe, ud_idx(ud)); return;
	case UOP_CANCEL: return;
	default: break;
	}
	/* Slots are freed only after their last completion, so this lookup
	 * cannot miss; the generation check is the safety net. */
	struct conn *c = conn_lookup(&w->conns, ud_conn_id(ud));
	if (!c) {
		TRACE(TR_ERROR, "worker %u: completion for closed slot %u", w->id, ud_idx(ud));
		return;
	}
	if (op == UOP_RECV || op == UOP_SEND) {
		if (op == UOP_RECV)
			udata_on_recv(w, c, cqe);
		else
			udata_on_send(w, c, cqe);
		/* The mode switch (ring.c): one asking for bulk mode switches
		 * once its receive is over and everything queued is sent. */
		ubulk_maybe_enter(w, c, uconn_of(w->eng, c));
	} else {
		ubulk_on_cqe(w, c, cqe, op);
	}
	uring_release_if_done(w, c);
}

static void reap(struct worker *w)
{
	struct uring_engine *u = w->eng;
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&u->ring, head, cqe) {
		dispatch(w, cqe);
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
	uudp_flush(w);	/* the turn's UDP replies, in one batch */
}

/* --- memory back after a load ------------------------------------------ */

/* Give freed connection buffers back to the kernel once none has been
 * freed for TRIM_IDLE_NS: glibc keeps freed memory in its arenas (a
 * worker's 64 KiB copies land in that thread's arena, below the size it
 * maps on its own), so RSS would stay at the peak.  malloc_trim(0) also
 * drops free pages in the middle of the heap.  Not during churn: a slow
 * reader's copy comes and goes, and trimming then would only make the next
 * malloc fault pages in again.  The pool's idle buffers are dropped by
 * uring_bufs_refill(). */
static void trim_heap(struct worker *w)
{
	struct uring_engine *u = w->eng;

	if (u->freed_at && w->now - u->freed_at >= TRIM_IDLE_NS) {
		malloc_trim(0);
		u->freed_at = 0;
	}
}

/* The loop's wait, shortened so that pending releases happen even when
 * nothing else would wake the worker (every connection gone). */
static int release_timeout_ms(const struct worker *w, int ms)
{
	const struct uring_engine *u = w->eng;
	uint64_t due = MIN(uring_bufs_release_due(&u->bufs, w->now), uudp_release_due(w));

	if (u->freed_at)
		due = MIN(due, u->freed_at + TRIM_IDLE_NS <= w->now ? 0 :
			  u->freed_at + TRIM_IDLE_NS - w->now);
	if (due == UINT64_MAX)
		return ms;
	int until = (int)MIN((due + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC, 1u << 30);
	return ms < 0 ? until : MIN(ms, until);
}

static int ur_run(struct worker *w)
{
	struct uring_engine *u = w->eng;
	bool busy = w->srv->cfg.busy_poll;

	while (!worker_done(w) && !u->fatal) {
		struct io_uring_cqe *cqe;
		int r;

		uring_bufs_refill(&u->bufs, w->now);
		worker_pool_fill(w, u->bufs.count - u->bufs.n_stack - u->bufs.posted, u->bufs.count);
		worker_waiting(w);
		if (busy || ubulk_spinning(w)) {
			/* Submit and collect what is ready, never sleep. */
			r = io_uring_submit_and_get_events(&u->ring);
		} else {
			int ms = release_timeout_ms(w, ubulk_timeout_ms(w, worker_timeout_ms(w)));
			struct __kernel_timespec ts = {
				.tv_sec = ms / 1000, .tv_nsec = (long long)(ms % 1000) * 1000000,
			};
			r = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, ms < 0 ? NULL : &ts, NULL);
		}
		if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			return r;
		w->now = mono_ns();
		reap(w);
		uring_bufs_refill(&u->bufs, w->now);
		uudp_turn(w);
		udata_feed_starved(w);
		ubulk_turn(w);
		trim_heap(w);
		worker_tick(w);
	}
	return u->fatal;
}

/* --- set-up -------------------------------------------------------------- */

/* ECHOSRV_URING_BUFS=COUNT[xSIZE] overrides the buffer pool (tests shrink it
 * to exercise running out of buffers; benchmarks try other sizes). */
static void pool_shape(const struct config *cfg, uint32_t *count, uint32_t *size)
{
	/* A quarter of --conn-buffer: a connection's multishot receive may
	 * fill its room less one buffer (data.c), so a smaller buffer
	 * keeps it armed for longer before single-shot receives take over. */
	*size = uring_env.bufs_size ? uring_env.bufs_size : MIN(BUF_SIZE_MAX, cfg->conn_buffer / 4);
	*count = uring_env.bufs_count ? uring_env.bufs_count : BUF_POOL_BYTES / *size;
	*count = MIN(*count, BUFS_MAX);
}

/* One registered file slot per connection slot of this worker, when the
 * table can cover every connection the server may hold (--max-conns within
 * RLIMIT_NOFILE, the kernel's cap on a table).  Otherwise -- and with
 * ECHOSRV_URING_DIRECT=0 -- sockets keep their descriptors, so that running
 * out of descriptors still means what the accept pause expects (a mix
 * would fill the descriptor table with the overflow and leave accept
 * failing while registered slots sit free).  Holding more connections than
 * RLIMIT_NOFILE (several tables) is for the connection-scaling work. */
static void files_table(struct worker *w, struct uring_engine *u)
{
	uint32_t n = w->conns.max_chunks * CONN_CHUNK;
	struct rlimit rl;
	int r;

	/* Each worker has a table of its own, so --max-conns may exceed
	 * RLIMIT_NOFILE by up to the number of workers (--workers 4 holds
	 * 60,000 under a limit of 20,000).  SO_REUSEPORT spreads connections
	 * evenly; a worker that still gets more than its table keeps
	 * descriptors for the excess, and the accept pause covers those. */
	if (!uring_env.direct || getrlimit(RLIMIT_NOFILE, &rl) ||
	    (uint64_t)rl.rlim_cur * w->srv->cfg.workers < w->srv->cfg.max_conns)
		return;
	n = (uint32_t)MIN((rlim_t)MIN(n, 1u << 20), rl.rlim_cur);
	if ((r = io_uring_register_files_sparse(&u->ring, n)))
		TRACE(TR_INFO, "worker %u: no registered file table (%s); using descriptors",
		      w->id, strerror(-r));
	else
		u->n_files = n;
}

/* A failure leaves what was set up for ur_fini(), which the worker calls
 * after a failed init too. */
static int ur_init(struct worker *w)
{
	struct uring_engine *u = calloc(1, sizeof(*u));
	uint32_t count, size;
	int r;

	if (!u)
		return -ENOMEM;
	w->eng = u;
	u->cap = w->srv->cfg.conn_buffer;
	u->starved.snext = u->starved.sprev = &u->starved;
	u->n_uc_chunks = w->conns.max_chunks;
	if (!(u->uc = calloc(u->n_uc_chunks, sizeof(*u->uc)))) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = uring_ring_create(&u->ring, SQ_ENTRIES, CQ_ENTRIES)))
		goto fail;
	u->ring_ok = true;
	/* Each io_uring_enter then skips the ring descriptor lookup. */
	io_uring_register_ring_fd(&u->ring);
	files_table(w, u);
	ubulk_init(u, &u->ring);
	pool_shape(&w->srv->cfg, &count, &size);
	if ((r = uring_bufs_init(&u->bufs, &u->ring, 0, count, size, 0))) {
		TRACE(TR_ERROR, "worker %u: io_uring buffer ring: %s", w->id, strerror(-r));
		goto fail;
	}
	TRACE(TR_INFO, "worker %u: io_uring: %u buffers of %u bytes, %s descriptors, receive %s, "
	      "bulk splice %s", w->id, u->bufs.count, u->bufs.size,
	      u->n_files ? "registered" : "plain",
	      uring_mshot_limit ? "multishot, limited to the room" :
	      "single-shot, sized to the room",
	      !u->bulk_ok ? "off" : (u->n_files && !u->install_ok) ? "off (no fd install)" : "on");
	arm_wake(w);
	arm_preamble(w);
	if ((r = udp_init(w)) || (r = uudp_init(w)))
		goto fail;
	if (!u->udp)
		arm_udp(w);
	ur_set_accepting(w, true);
	if ((r = u->fatal))
		goto fail;
	return 0;
fail:
	return r;
}

/* Forced stop: a connection still open keeps its engine state. */
static void close_leftover(struct conn *c, void *arg)
{
	struct uconn *uc = uconn_of(arg, c);

	free(uc->spill);	/* c->buf goes with the connection table */
	uc->spill = NULL;
	if (c->fd >= 0)
		close(c->fd);	/* registered ones went with the ring */
}

static void ur_fini(struct worker *w)
{
	struct uring_engine *u = w->eng;

	if (!u) {
		udp_fini(w);
		return;
	}
	/* Only after a forced stop are connections left; exiting the ring
	 * cancels their requests, then their sockets can go. */
	if (u->ring_ok)
		io_uring_queue_exit(&u->ring);
	ubulk_fini(w);
	uudp_fini(w);	/* after the ring: no receive names its buffers */
	udp_fini(w);	/* after the ring: no poll on its descriptor is left */
	uring_bufs_fini(&u->bufs, NULL);	/* the kernel has let go of it */
	conn_table_each(&w->conns, close_leftover, u);
	for (uint32_t i = 0; u->uc && i < u->n_uc_chunks; i++)
		free(u->uc[i]);
	free(u->uc);
	free(u);
	w->eng = NULL;
}

const struct engine_ops engine_uring = {
	.name = "io_uring",
	.probe = uring_probe,
	.init = ur_init,
	.run = ur_run,
	.adopt = ur_adopt,
	.adopt_with = ur_adopt_with,
	.close = ur_close,
	.set_accepting = ur_set_accepting,
	.udp_socket = ur_udp_socket,
	.stop_accepting = ur_stop_accepting,
	.fini = ur_fini,
};

/* SPDX-License-Identifier: GPL-2.0-only */
/* A worker: one thread, one engine loop, its own connections, idle timer
 * and statistics.  A connection lives on one worker for its whole life, so
 * nothing on the data path is shared or locked.
 *
 * The worker_*() functions are the policy half of every engine: engines do
 * the I/O and call these at accept, receive, send and close. */
#ifndef ECHOSRV_WORKER_H
#define ECHOSRV_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/conn.h"
#include "server/handoff.h"
#include "server/mailbox.h"
#include "server/preamble.h"
#include "core/idle.h"
#include "server/server.h"
#include "core/stats.h"
#include "core/trace.h"
#include "core/util.h"

struct reject_log {
	uint64_t last;		/* ns of the last line */
	uint32_t suppressed[4];	/* by enum admit, since that line */
};

struct worker {
	unsigned id;
	struct server *srv;
	const struct live *live;	/* the configuration this worker runs */
	const struct config *cfg;	/* &live->cfg */
	_Atomic uint64_t live_gen;	/* live->gen, once taken (for main) */
	pthread_t thread;
	void *eng;		/* engine-private state */
	void *udp;		/* the UDP echo state (engine/udp.c); NULL: no UDP */
	int wake_fd;		/* eventfd: main -> worker */
	int init_result;
	struct conn_table conns;
	struct idle_list idle;
	struct stats stats;
	uint64_t now;		/* ns, refreshed once per loop iteration */
	uint64_t idle_ns;	/* 0: no idle timeout */
	uint64_t accept_resume;	/* ns; 0 while accepting */
	uint32_t conn_cap;	/* most connections this worker may hold (an
				 * engine's own bound, e.g. its BPF maps); 0: none */
	bool draining;
	struct reject_log rlog;
	struct worker_query query;
	_Atomic uint64_t sync_req;	/* report_refresh() asks (engine_ops.sync) */
	_Atomic uint64_t sync_done;	/* the last request this worker answered */
	uint64_t sync_next;	/* ns: no refresh for reports before then */
	_Atomic uint64_t alive;	/* `now` at the last worker_tick(): the watchdog
				 * checks that every loop still turns */
	_Atomic bool paused;	/* accepting paused for descriptor exhaustion
				 * (accept_resume, for readers on other threads) */
	_Atomic uint32_t pool_used, pool_size;	/* the engine's shared receive
						 * buffers, if it has such a pool */
	struct handoff handoff;	/* socket activation: connections dealt to us */
	unsigned dealt;		/* connections this worker accepted from a shared socket */
	struct preamble_set pre;	/* proxy listeners: waiting for the header */
};

int worker_create(struct worker *w, struct server *srv, unsigned id);
int worker_start(struct worker *w);
void worker_destroy(struct worker *w);

/* Wake the worker to look at the server phase (from any thread). */
void worker_wake(struct worker *w);

/* --- called by engines ---------------------------------------------------- */

/* A new connection on fd from sa: its slot, or NULL if refused (counted and
 * traced); the engine then closes fd, with worker_reject_close() for a
 * plain descriptor. */
struct conn *worker_admit(struct worker *w, int fd, const struct sockaddr *sa);
void worker_reject_close(int fd);

static inline void worker_recv(struct worker *w, struct conn *c, uint32_t n)
{
	c->bytes_in += n;
	STAT_ADD(&w->stats, bytes_in, n);
	if (w->idle_ns)
		idle_touch(&w->idle, &c->idle, w->now);
	PROBE(recv, conn_id(c), w->id, n);
	TRACE(TR_DATA, "recv conn=%llx worker=%u bytes=%u",
	      (unsigned long long)conn_id(c), w->id, n);
}

static inline void worker_sent(struct worker *w, struct conn *c, uint32_t n)
{
	c->bytes_out += n;
	STAT_ADD(&w->stats, bytes_out, n);
	PROBE(send, conn_id(c), w->id, n);
	TRACE(TR_DATA, "send conn=%llx worker=%u bytes=%u",
	      (unsigned long long)conn_id(c), w->id, n);
}

/* The loop is about to wait: what it did since the last wait counts as
 * busy time (worker_busy_seconds_total).  The engine refreshes w->now just
 * after the wait, so one clock read per turn measures it. */
static inline void worker_waiting(struct worker *w)
{
	STAT_ADD(&w->stats, busy_ns, mono_ns() - w->now);
}

/* The engine's buffer pool: used of size buffers are held (metrics). */
static inline void worker_pool_fill(struct worker *w, uint32_t used, uint32_t size)
{
	atomic_store_explicit(&w->pool_used, used, memory_order_relaxed);
	atomic_store_explicit(&w->pool_size, size, memory_order_relaxed);
}

/* First step of any close: state, reason, off the idle timer. */
void worker_closing(struct worker *w, struct conn *c, enum close_reason why);
/* Last step: the engine has let go of c; account, trace, free the slot. */
void worker_closed(struct worker *w, struct conn *c);

/* accept() failed with err (positive errno).  True when the engine should
 * pause accepting (descriptor or memory exhaustion); the worker resumes it
 * after a short while or as soon as one of its connections closes. */
bool worker_accept_failed(struct worker *w, int err);

/* A connection this worker accepted on plain descriptor fd, from sa (NULL:
 * ask getpeername).  From a shared (systemd) socket it may be dealt to
 * another worker (handoff.h); otherwise it is admitted and goes to the
 * engine's adopt(), or is refused and reset. */
void worker_accepted(struct worker *w, int fd, const struct sockaddr *sa);

/* Proxy listeners: w->pre.epfd (when >= 0) is readable.  Every engine
 * watches that descriptor for input, as it watches wake_fd, and calls this;
 * connections whose PROXY header is complete are admitted here and handed
 * to the engine's adopt() like any other (preamble.h). */
void worker_preamble_ready(struct worker *w);

/* For readiness engines (epoll, sockmap): accept up to a batch from lfd,
 * which is readable, each through worker_accepted(); descriptor
 * exhaustion pauses accepting through the engine's set_accepting().  The
 * batch bound keeps accepting from starving the connections already
 * open. */
void worker_accept_batch(struct worker *w, int lfd);

/* A reload published l (server.live): take all of it now, at this loop
 * turn, then set live_gen (worker_live.c; called by worker_tick()). */
void worker_take_live(struct worker *w, const struct live *l);

/* Milliseconds until the next timer (idle, drain, accept resume), -1 for
 * none.  Uses w->now. */
int worker_timeout_ms(const struct worker *w);
/* Run timers and react to a phase change; call once per loop iteration
 * after refreshing w->now. */
void worker_tick(struct worker *w);

/* The loop may end: a stop, or a drain with nothing left to serve.  The
 * hand-off queue is sealed in the same step, so a connection dealt to this
 * worker a moment before is served, not closed (the lock is taken only
 * once the drain has emptied the worker). */
static inline bool worker_done(struct worker *w)
{
	if (server_phase(w->srv) == PHASE_STOPPING)
		return true;
	return w->draining && w->conns.active == 0 && w->pre.n == 0 &&
	       handoff_seal(&w->handoff);
}

#endif

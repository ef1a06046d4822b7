/* SPDX-License-Identifier: GPL-2.0-only */
/* What the whole process shares: the configuration, the listeners, the
 * admission limits and the list of workers.  Owned by main.c; workers read
 * it, and the only fields they write are atomics. */
#ifndef ECHOSRV_SERVER_H
#define ECHOSRV_SERVER_H

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "server/engine_ops.h"
#include "core/limits.h"
#include "server/listener.h"

enum server_phase {
	PHASE_RUNNING,
	PHASE_DRAINING,	/* stop accepting, let connections finish */
	PHASE_STOPPING,	/* close everything now (start-up failure) */
};

/* What the control socket asks main to do (bits: a stop outranks a drain). */
enum server_req {
	SERVER_REQ_DRAIN = 1,
	SERVER_REQ_STOP = 2,
};

struct worker;

/* One configuration in force as the workers see it.  Published whole by a
 * reload (ops/reload.c) through server.live and never changed after, so a
 * worker that loads the pointer at a loop turn has all of the old or all of
 * the new, without a lock; the old one is freed once every worker has said
 * (worker.live_gen) that it moved on. */
struct live {
	struct config cfg;
	uint64_t gen;
	uint32_t slots;		/* listener slots in use (bit a: listener_row()[a]) */
	uint32_t fresh;		/* slots this generation bound a socket for: unused
				 * before, or replacing one that goes */
	/* The address of each slot in use, as this generation has it: the
	 * workers read it (listeners_is_proxy) while a reload writes the
	 * main thread's copy in srv->ls, so they get a copy of their own. */
	struct sockaddr_storage bound[CONFIG_MAX_LISTEN];
	int *added;		/* [worker * CONFIG_MAX_LISTEN + a]: the socket of a slot
				 * this generation bound, for that worker to take; else -1 */
	/* The same for the UDP sockets (udp_listener.h's slots), and the
	 * addresses the loop check guards (engine/udp.c). */
	uint32_t udp_slots, udp_fresh;
	struct sockaddr_storage udp_bound[CONFIG_MAX_LISTEN];
	int *udp_added;
};

struct server {
	struct config cfg;		/* as started; what a reload changes is in live */
	_Atomic(struct live *) live;
	struct listeners ls;
	struct limits limits;
	const struct engine_ops *engine;
	struct worker *workers;
	unsigned n_workers;
	pthread_t main_thread;
	sem_t ready;			/* each worker posts once its loop is set up */
	_Atomic int phase;		/* enum server_phase */
	_Atomic uint64_t drain_deadline;	/* ns, valid once DRAINING */
	_Atomic unsigned running;	/* workers whose loop has not ended */
	_Atomic int requests;		/* enum server_req bits, for main */
	_Atomic uint64_t failure;	/* the first worker loop that failed:
					 * (id + 1) << 32 | errno; 0: none */
	uint64_t started;		/* ns, monotonic */
	_Atomic bool serving;		/* start-up is over: listening, announced */
	const char *engine_fallback;	/* why the engine asked for was not the
					 * one chosen; NULL: it was */
};

static inline int server_phase(struct server *s)
{
	return atomic_load_explicit(&s->phase, memory_order_acquire);
}

/* Ask main for a drain or a stop from another thread: main takes it in its
 * signal loop, the same path as SIGTERM, so there is one way to stop. */
static inline void server_request(struct server *s, int req)
{
	atomic_fetch_or(&s->requests, req);
	pthread_kill(s->main_thread, SIGUSR1);
}

#endif

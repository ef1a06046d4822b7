/* What the whole process shares: the configuration, the listeners, the
 * admission limits and the list of workers.  Owned by main.c; workers read
 * it, and the only fields they write are atomics. */
#ifndef ECHOSRV_SERVER_H
#define ECHOSRV_SERVER_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "engine.h"
#include "limits.h"
#include "listener.h"

enum server_phase {
	PHASE_RUNNING,
	PHASE_DRAINING,	/* stop accepting, let connections finish */
	PHASE_STOPPING,	/* close everything now (start-up failure) */
};

struct worker;

struct server {
	struct config cfg;
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
	uint64_t started;		/* ns, monotonic */
};

static inline int server_phase(struct server *s)
{
	return atomic_load_explicit(&s->phase, memory_order_acquire);
}

#endif

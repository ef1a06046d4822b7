/* SPDX-License-Identifier: GPL-2.0-only */
/* A worker's mailbox: how another thread asks a worker something that only
 * the worker's own thread may look at (its connection table).
 *
 * The asker (the control thread, through ops/report.c) leaves a question,
 * a function, and wakes the worker; the worker runs the function from
 * worker_tick() and leaves the answer.  The question is a function so that
 * what is asked (today the connection listing) stays with the asker and
 * this layer knows nothing of it.  The data path only ever does the relaxed
 * load of `pending`; the lock is taken off the data path, once per request. */
#ifndef ECHOSRV_MAILBOX_H
#define ECHOSRV_MAILBOX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct worker;

/* Runs in the worker's thread with the asker's argument (a connection id,
 * say): a malloc'ed answer (or NULL), with how many connections it lists
 * or found (*listed) of how many are open (*total). */
typedef char *worker_question(struct worker *w, uint64_t arg, uint32_t *listed, uint32_t *total);

struct worker_query {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic bool pending;	/* a question waits for an answer */
	bool answered;
	bool gone;		/* the loop has ended: answer nothing, at once */
	worker_question *ask;	/* set with pending, under lock */
	uint64_t arg;		/* its argument, under lock */
	char *reply;		/* the question's answer */
	uint32_t listed, total;
};

/* Worker side. */
void worker_query_init(struct worker_query *q);
void worker_query_fini(struct worker_query *q);
void worker_query_answer(struct worker *w);	/* from worker_tick() */
void worker_query_gone(struct worker *w);	/* the loop has ended */

/* Asker side: leave the question (then wake the worker: worker_wake()),
 * and wait for the answer until deadline (CLOCK_MONOTONIC); true if it
 * answered (q->reply, q->listed and q->total are then its answer). */
void worker_query_ask(struct worker_query *q, worker_question *ask, uint64_t arg);
bool worker_query_await(struct worker_query *q, const struct timespec *deadline);

#endif

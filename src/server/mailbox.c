/* SPDX-License-Identifier: GPL-2.0-only */
/* A worker's mailbox; see mailbox.h. */
#include "server/mailbox.h"

#include <stdlib.h>

#include "core/util.h"
#include "server/worker.h"

void worker_query_answer(struct worker *w)
{
	struct worker_query *q = &w->query;
	worker_question *ask;
	uint64_t arg;
	uint32_t listed = 0, total = 0;
	char *reply;

	pthread_mutex_lock(&q->lock);
	ask = atomic_load(&q->pending) ? q->ask : NULL;
	arg = q->arg;
	pthread_mutex_unlock(&q->lock);
	if (!ask)
		return;
	w->now = mono_ns();
	reply = ask(w, arg, &listed, &total);
	pthread_mutex_lock(&q->lock);
	if (atomic_load(&q->pending) && q->ask == ask && q->arg == arg) {	/* not given up on meanwhile */
		free(q->reply);
		q->reply = reply;
		reply = NULL;
		q->listed = listed;
		q->total = total;
		q->answered = true;
		atomic_store(&q->pending, false);
		pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	free(reply);
}

void worker_query_gone(struct worker *w)
{
	struct worker_query *q = &w->query;

	pthread_mutex_lock(&q->lock);
	q->gone = true;
	atomic_store(&q->pending, false);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void worker_query_init(struct worker_query *q)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);
}

void worker_query_fini(struct worker_query *q)
{
	free(q->reply);
	q->reply = NULL;
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
}

void worker_query_ask(struct worker_query *q, worker_question *ask, uint64_t arg)
{
	pthread_mutex_lock(&q->lock);
	free(q->reply);
	q->reply = NULL;
	q->answered = false;
	q->ask = ask;
	q->arg = arg;
	if (!q->gone)
		atomic_store(&q->pending, true);
	pthread_mutex_unlock(&q->lock);
}

bool worker_query_await(struct worker_query *q, const struct timespec *deadline)
{
	bool ok;

	pthread_mutex_lock(&q->lock);
	while (!q->answered && !q->gone &&
	       pthread_cond_timedwait(&q->cond, &q->lock, deadline) == 0)
		;
	ok = q->answered;
	atomic_store(&q->pending, false);	/* a late answer is dropped */
	pthread_mutex_unlock(&q->lock);
	return ok;
}

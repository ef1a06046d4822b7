/* SPDX-License-Identifier: GPL-2.0-only */
/* Closing one connection on the operator's request; see kill.h. */
#include "ops/kill.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "ops/report.h"
#include "server/server.h"
#include "server/worker.h"

/* Questions put to a worker (they run in its thread).  *listed is 1 when
 * the worker holds an open connection with that id. */
static struct conn *find_open(struct worker *w, uint64_t id)
{
	struct conn *c = conn_lookup(&w->conns, id);

	return c && (c->state == CONN_OPEN || c->state == CONN_FLUSHING) ? c : NULL;
}

static char *holds(struct worker *w, uint64_t id, uint32_t *listed, uint32_t *total)
{
	*listed = find_open(w, id) != NULL;
	*total = w->conns.active;
	return NULL;
}

static char *close_it(struct worker *w, uint64_t id, uint32_t *listed, uint32_t *total)
{
	struct conn *c = find_open(w, id);

	*listed = c != NULL;
	*total = w->conns.active;
	if (c)
		w->srv->engine->close(w, c, CLOSE_ADMIN);
	return NULL;
}

static struct timespec deadline_in(unsigned ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* Ask workers [from, to) the question; how many said yes, the last of
 * them in *who; -ETIMEDOUT if one that still runs did not answer. */
static int ask(struct server *srv, unsigned from, unsigned to, worker_question *q, uint64_t id,
	       unsigned *who)
{
	struct timespec deadline = deadline_in(REPORT_WAIT_MS);
	int yes = 0, r = 0;

	for (unsigned i = from; i < to; i++) {
		worker_query_ask(&srv->workers[i].query, q, id);
		worker_wake(&srv->workers[i]);
	}
	for (unsigned i = from; i < to; i++) {
		struct worker_query *wq = &srv->workers[i].query;
		if (!worker_query_await(wq, &deadline)) {
			if (!wq->gone)
				r = -ETIMEDOUT;
			continue;
		}
		if (wq->listed) {
			yes++;
			*who = i;
		}
	}
	return r ? r : yes;
}

int kill_conn(struct server *srv, uint64_t id, uint32_t worker, unsigned *closed_by,
	      char *err, size_t errlen)
{
	unsigned from = 0, to = srv->n_workers, who = 0;
	int n;

	if (worker != KILL_ANY_WORKER) {
		if (worker >= srv->n_workers) {
			snprintf(err, errlen, "no worker %u (there are %u)", worker, srv->n_workers);
			return -ENOENT;
		}
		from = worker;
		to = worker + 1;
	}
	if (to - from > 1) {
		if ((n = ask(srv, from, to, holds, id, &who)) < 0)
			goto timeout;
		if (n > 1) {
			snprintf(err, errlen, "connection %llx is open on %d workers: "
				 "name one (kill %llx WORKER)", (unsigned long long)id, n,
				 (unsigned long long)id);
			return -EEXIST;
		}
		if (n == 0)
			goto none;
		from = who;
		to = who + 1;
	}
	if ((n = ask(srv, from, to, close_it, id, &who)) < 0)
		goto timeout;
	if (n == 0)
		goto none;
	*closed_by = who;
	return 0;
none:
	snprintf(err, errlen, "no open connection %llx%s", (unsigned long long)id,
		 worker != KILL_ANY_WORKER ? " on that worker" : "");
	return -ENOENT;
timeout:
	snprintf(err, errlen, "a worker did not answer within %d ms", REPORT_WAIT_MS);
	return -ETIMEDOUT;
}

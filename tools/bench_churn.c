/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench_churn.c - connection churn for echosrv-bench (--connect-rate N):
 * new connections at fixed times, N per second over all threads, each
 * echoing its closed-loop messages for --lifetime (messages or seconds) and
 * then ending cleanly (our FIN, the server's FIN), which frees its slot for
 * a later connect.  --connections is the number of slots: a connect that
 * falls due while all of a thread's are busy is not made and is counted
 * (no_slot), as the load generator's limit, not the server's.
 *
 * What churn measures is the server's connection set-up: the time from
 * connect() to the connection being writable (the handshake, with the
 * server's accept queue on the way), and the connects that fail.  A
 * connection the server accepts and then closes or resets before anything
 * came back (an ACL, a connection limit) is a rejection, counted with the
 * connect failures rather than as an echo error.
 */
#include "bench_loop.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CHURN_BATCH 256         /* connects started per loop turn at most */

static struct bconn *free_slot(struct loop *l)
{
	for (unsigned i = 0; i < l->n; i++) {
		struct bconn *c = &l->c[(l->cursor + i) % l->n];

		if (c->state == C_DONE) {
			l->cursor = (l->cursor + i + 1) % l->n;
			return c;
		}
	}
	return NULL;
}

static void conn_failed(struct loop *l, struct bconn *c, int e, const char *step)
{
	enum bench_conn_fail kind = e == ECONNREFUSED ? BCF_refused :
				    e == ETIMEDOUT ? BCF_timeout : BCF_other;
	char buf[64];

	l->res->conn_fail[kind]++;
	bench_report(l->sh, "connection %u: %s: %s", c->id, step,
		     loop_errtext(e, buf, sizeof(buf)));
	if (c->fd >= 0)
		loop_close(l, c);
}

uint64_t churn_due(struct loop *l, uint64_t now)
{
	double offset = (double)l->th->index * 1e9 / l->o->connect_rate;

	for (unsigned i = 0; i < CHURN_BATCH; i++) {
		uint64_t t = l->sh->clk.go +
			     (uint64_t)((double)l->next_conn * l->conn_gap_ns + offset);
		const char *step;
		struct bconn *c;
		int r;

		if (t > now)
			return t;
		l->next_conn++;
		c = free_slot(l);
		if (!c) {
			l->res->conn_fail[BCF_no_slot]++;
			continue;
		}
		l->res->conn_attempts++;
		r = conn_start(l, c, &step);
		if (r < 0)
			conn_failed(l, c, -r, step);
	}
	return now;                     /* more are due: come back at once */
}

void churn_connected(struct loop *l, struct bconn *c, uint64_t now)
{
	const struct bench_opts *o = l->o;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	socklen_t len = sizeof(int);
	uint64_t msgs = o->pipeline;
	int e = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
		e = errno;
	if (e) {
		conn_failed(l, c, e, "connect");
		return;
	}
	if ((e = -bench_send_proxy(o, c->fd))) {
		conn_failed(l, c, e, "PROXY header");
		return;
	}
	if (now >= l->sh->clk.measure && now < l->sh->clk.end) {
		hist_record(&l->res->setup, now - c->t_conn);
		l->res->conn_opened++;
	}
	c->state = C_OPEN;
	c->t_open = now;
	epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
	if (o->life_msgs && o->life_msgs < msgs)
		msgs = o->life_msgs;
	for (unsigned m = 0; m < msgs; m++)
		c->t_issue[m] = now;
	c->issued = o->size * msgs;
	loop_flush(l, c);
}

bool churn_rejected(struct loop *l, struct bconn *c, int e)
{
	char buf[64];

	if (!l->churn || c->received)
		return false;
	l->res->conn_fail[BCF_rejected]++;
	bench_report(l->sh, "connection %u: %s before its first echo", c->id,
		     e ? loop_errtext(e, buf, sizeof(buf)) : "closed by the server");
	loop_close(l, c);
	return true;
}

bool churn_retire(const struct loop *l, const struct bconn *c, uint64_t now)
{
	const struct bench_opts *o = l->o;

	if (!l->churn)
		return false;
	if (o->life_msgs)
		return c->issued / o->size >= o->life_msgs;
	return now - c->t_open >= o->life_ns;
}

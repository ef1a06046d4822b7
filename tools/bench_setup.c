/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench_setup.c - a load thread's life around the measured run: allocate its
 * share of the connections (connection i belongs to thread i % threads),
 * open them a bounded number at a time (so thousands of SYNs do not overflow
 * the server's accept queue at once), meet the other threads at the
 * "connected" and "go" barriers, run (bench_loop.c), clean up.
 *
 * Any failure to connect (refused, unreachable, timed out, out of
 * descriptors) ends the whole run before the load starts, with one line that
 * says why: figures from a partly connected run would mislead.  Churn
 * (--connect-rate, bench_churn.c) is the exception: it connects while the
 * load runs, and counts its failures instead, since they are what it
 * measures.
 */
#include "bench_loop.h"
#include "pattern.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#define CONNECT_BATCH  256               /* connects in progress at once */

static int setup_error(struct loop *l, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int setup_error(struct loop *l, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->th->setup_msg, sizeof(l->th->setup_msg), fmt, ap);
	va_end(ap);
	return -e;
}

int conn_start(struct loop *l, struct bconn *c, const char **step)
{
	const struct bench_opts *o = l->o;
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	int one = 1;

	/* Connection k of thread t is number t + k * threads of the run: its
	 * stream and its --bind address (so addresses take turns). */
	c->id = (uint32_t)(l->th->index + l->opened++ * o->threads);
	c->base = pattern_base(c->id);
	c->issued = c->sent = c->received = c->bad_msg = 0;
	c->want_out = c->extra_seen = false;
	*step = "socket";
	c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	c->state = C_CONNECTING;
	l->live++;
	/* Messages are sent as soon as they are issued, like a real client's. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->nbind) {
		/* The port is chosen at connect(), per destination, so one source
		 * address is not limited to one ephemeral range in all. */
		*step = "bind";
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(c->fd, (const struct sockaddr *)&o->bind[c->id % o->nbind],
			 o->addrlen) < 0)
			return -errno;
	}
	*step = "connect";
	c->t_conn = bench_now_ns();
	if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addrlen) < 0 &&
	    errno != EINPROGRESS)
		return -errno;
	*step = "epoll_ctl";
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		return -errno;
	return 0;
}

int bench_check_bind(const struct bench_opts *o, char *msg, size_t len)
{
	char addr[INET6_ADDRSTRLEN], buf[64];
	int one = 1;

	/* Churn binds as it runs and would count an address that is not here
	 * as thousands of failed connects: find it out once, before. */
	for (unsigned i = 0; i < o->nbind; i++) {
		const struct sockaddr_storage *ss = &o->bind[i];
		const void *a = ss->ss_family == AF_INET ?
				(const void *)&((const struct sockaddr_in *)ss)->sin_addr :
				(const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), e = 0;

		if (fd < 0)
			e = errno;
		else if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)),
			 bind(fd, (const struct sockaddr *)ss, o->addrlen) < 0)
			e = errno;
		if (fd >= 0)
			close(fd);
		if (e) {
			inet_ntop(ss->ss_family, a, addr, sizeof(addr));
			snprintf(msg, len, "bind to --bind %s: %s", addr,
				 loop_errtext(e, buf, sizeof(buf)));
			return -e;
		}
	}
	return 0;
}

static int start_connect(struct loop *l, struct bconn *c)
{
	const struct bench_opts *o = l->o;
	const char *step;
	struct rlimit rl;
	char buf[64];
	int e = -conn_start(l, c, &step);

	if (!e)
		return 0;
	if (!strcmp(step, "socket")) {
		getrlimit(RLIMIT_NOFILE, &rl);
		return setup_error(l, e, "cannot open connection %u of %u: %s "
				   "(descriptor limit %llu%s)", c->id + 1, o->conns,
				   loop_errtext(e, buf, sizeof(buf)),
				   (unsigned long long)rl.rlim_cur,
				   e == EMFILE ? "; raise it with ulimit -n" : "");
	}
	if (!strcmp(step, "bind"))
		return setup_error(l, e, "bind to --bind %s: %s", o->bind_text,
				   loop_errtext(e, buf, sizeof(buf)));
	return setup_error(l, e, "%s to %s: %s", step, o->addr_text,
			   loop_errtext(e, buf, sizeof(buf)));
}

/* A connect finished: either the connection is up or the run cannot start. */
static int connected(struct loop *l, struct bconn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	socklen_t len = sizeof(int);
	char buf[64];
	int e = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
		e = errno;
	if (e)
		return setup_error(l, e, "connect to %s: %s", l->o->addr_text,
				   loop_errtext(e, buf, sizeof(buf)));
	if ((e = -bench_send_proxy(l->o, c->fd)))
		return setup_error(l, e, "PROXY header to %s: %s", l->o->addr_text,
				   loop_errtext(e, buf, sizeof(buf)));
	c->state = C_OPEN;
	epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
	return 0;
}

/* Opens all of this thread's connections, a bounded number at a time. */
static int connect_all(struct loop *l)
{
	struct epoll_event ev[MAX_EVENTS];
	uint64_t deadline = bench_now_ns() + BENCH_CONNECT_NS, now;
	unsigned started = 0, up = 0;
	int r;

	while (up < l->n) {
		while (started < l->n && started - up < CONNECT_BATCH) {
			r = start_connect(l, &l->c[started++]);
			if (r < 0)
				return r;
		}
		if (atomic_load(&l->sh->abort))
			return -ECANCELED;
		now = bench_now_ns();
		if (now >= deadline)
			return setup_error(l, ETIMEDOUT, "connect to %s: timed out after "
					   "%llu s (%u of %u connections of one thread up)",
					   l->o->addr_text,
					   (unsigned long long)(BENCH_CONNECT_NS / NS_PER_S),
					   up, l->n);
		r = loop_wait(l, ev, deadline - now < NS_PER_S / 10 ?
				deadline - now : NS_PER_S / 10);
		for (int i = 0; i < r; i++) {
			struct bconn *c = ev[i].data.ptr;

			if (c->state != C_CONNECTING)
				continue;
			if ((r = connected(l, c)) < 0)
				return r;
			up++;
		}
	}
	return 0;
}

static int loop_init(struct loop *l, struct bench_thread *th)
{
	const struct bench_opts *o = th->sh->o;
	unsigned t = o->threads;

	memset(l, 0, sizeof(*l));
	l->ep = -1;
	l->th = th;
	l->sh = th->sh;
	l->o = o;
	l->res = &th->res;
	hist_init(&l->res->lat);
	hist_init(&l->res->setup);
	/* Connection i belongs to thread i % t. */
	l->n = o->conns / t + (th->index < o->conns % t);
	l->c = calloc(l->n, sizeof(*l->c));
	l->ring = calloc((size_t)l->n * o->pipeline, sizeof(*l->ring));
	l->rbuf = malloc(RBUF_SIZE);
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!l->c || !l->ring || !l->rbuf || l->ep < 0)
		return setup_error(l, ENOMEM, "out of memory or descriptors for %u "
				   "connections", l->n);
	for (unsigned i = 0; i < l->n; i++) {
		struct bconn *c = &l->c[i];

		c->fd = -1;
		c->state = C_DONE;
		c->id = th->index + i * t;
		c->base = pattern_base(c->id);
		c->t_issue = l->ring + (size_t)i * o->pipeline;
	}
	if (o->connect_rate > 0) {
		/* Connect k of thread t is due at go + (k * threads + t) / rate. */
		l->churn = true;
		l->conn_gap_ns = 1e9 * (double)t / o->connect_rate;
		l->next_conn = 0;
		prctl(PR_SET_TIMERSLACK, 1UL);
	}
	if (o->rate > 0) {
		/* This thread's share of the rate, spread evenly over its conns. */
		l->gap_ns = 1e9 * (double)o->conns / (o->rate * (double)l->n);
		prctl(PR_SET_TIMERSLACK, 1UL);   /* wake on time, not 50 us late */
	}
	return 0;
}

static void loop_free(struct loop *l)
{
	for (unsigned i = 0; l->c && i < l->n; i++)
		if (l->c[i].fd >= 0)
			close(l->c[i].fd);
	if (l->ep >= 0)
		close(l->ep);
	free(l->c);
	free(l->ring);
	free(l->rbuf);
}

void *bench_thread_main(void *arg)
{
	struct bench_thread *th = arg;
	struct loop l;
	int r;

	r = loop_init(&l, th);
	if (!r && !l.churn)             /* churn connects as it runs */
		r = connect_all(&l);
	if (r < 0 && r != -ECANCELED) {
		th->setup_err = r;
		atomic_store(&th->sh->abort, true);
	}
	pthread_barrier_wait(&th->sh->connected);
	pthread_barrier_wait(&th->sh->go);
	if (!atomic_load(&th->sh->abort))
		loop_run(&l);
	loop_free(&l);
	return NULL;
}

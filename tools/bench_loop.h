/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench_loop.h - one load thread's state, shared by its two halves:
 * bench_setup.c (allocate, connect, hand over to the clock) and
 * bench_loop.c (the measured run and the drain).  Private to those two files.
 */
#ifndef ECHOSRV_BENCH_LOOP_H
#define ECHOSRV_BENCH_LOOP_H

#include "bench.h"

#include <stddef.h>
#include <sys/epoll.h>

#define RBUF_SIZE      (128u * 1024)     /* <= PATTERN_TAIL: one memcmp per recv */
#define MAX_EVENTS     256

enum cstate {
	C_CONNECTING,   /* connect() in progress */
	C_OPEN,         /* sending and checking echoes */
	C_SHUT,         /* every echo back and our FIN sent; awaiting the server's */
	C_DONE,         /* closed (cleanly or not); fd is -1 */
};

struct bconn {
	int fd;
	uint8_t state;
	bool want_out;          /* EPOLLOUT is armed */
	bool extra_seen;
	uint32_t id;            /* global connection number */
	uint64_t base;          /* where its stream starts in the pattern */
	uint64_t issued, sent, received;   /* bytes */
	uint64_t bad_msg;       /* 1 + last message counted as mismatched */
	uint64_t *t_issue;      /* closed loop: issue time of message m at [m % K] */
	uint64_t t_conn;        /* when connect() was called */
	uint64_t t_open;        /* churn: when the connection came up */
};

struct loop {
	struct bench_thread *th;
	struct bench_shared *sh;
	const struct bench_opts *o;
	struct bench_result *res;
	int ep;
	unsigned n;             /* connections of this thread */
	unsigned live;          /* connections not yet C_DONE */
	struct bconn *c;
	uint64_t *ring;
	uint8_t *rbuf;
	bool measuring, draining;
	uint64_t cpu0, user0;
	uint64_t last_rx;       /* while draining: when something last came back */
	double gap_ns;          /* open loop: between two of this thread's messages */
	uint64_t next_k;        /* open loop: next message is k / n on conn k % n */
	uint64_t opened;        /* connects this thread started */
	bool churn;             /* --connect-rate */
	double conn_gap_ns;     /* churn: between two of this thread's connects */
	uint64_t next_conn;     /* churn: connects due so far */
	unsigned cursor;        /* churn: where the search for a free slot starts */
};

/* The measured run, from the go barrier to the end of the drain. */
void loop_run(struct loop *l);
int loop_wait(struct loop *l, struct epoll_event *ev, uint64_t timeout_ns);
const char *loop_errtext(int e, char *buf, size_t len);
void loop_close(struct loop *l, struct bconn *c);
void loop_flush(struct loop *l, struct bconn *c);

/* bench_setup.c: socket, bind (--bind), non-blocking connect, epoll; -errno,
 * with *step naming the call that failed. */
int conn_start(struct loop *l, struct bconn *c, const char **step);

/* bench_churn.c (--connect-rate) */
uint64_t churn_due(struct loop *l, uint64_t now);      /* the next due time */
void churn_connected(struct loop *l, struct bconn *c, uint64_t now);
/* Closed by the server: true when that was a rejection (nothing echoed). */
bool churn_rejected(struct loop *l, struct bconn *c, int e);
bool churn_retire(const struct loop *l, const struct bconn *c, uint64_t now);

#endif

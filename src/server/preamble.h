/* SPDX-License-Identifier: GPL-2.0-only */
/* Connections waiting for their PROXY header (core/proxy.h), one set per
 * worker, before they are admitted.
 *
 * A connection accepted on a proxy listener is not yet anybody's: its peer
 * is the load balancer, and who the client is comes in the header.  So the
 * worker keeps it here, outside the slot table and out of every engine,
 * until the header is complete, and only then admits it (ACL, per-address
 * limit, slot) with the client's address and hands it to the engine.
 *
 * The set reads with plain non-blocking recv() from the worker's own
 * thread: its sockets sit in one epoll descriptor (epfd) which each engine
 * watches like any other descriptor and, when it is readable, calls
 * worker_preamble_ready().  Each read takes what the socket has, up to a
 * scratch buffer's worth, and gives it to the parser: one system call for
 * a header that arrives alone, as a balancer's does.  What the client sent
 * in the same read after the header (at most the scratch buffer or the
 * connection's --conn-buffer, less the header) is left in the scratch
 * buffer, named by e->extra, and the worker echoes it before the engine
 * takes the socket (worker.c), so every engine starts from a socket whose
 * next byte is the next one to echo.
 *
 * Every entry has one deadline (the accept time plus --proxy-timeout, or
 * the idle timeout if shorter) and they are kept in deadline order (arrival
 * order, unless a reload shortened a timeout): the worker looks at the
 * first only. */
#ifndef ECHOSRV_PREAMBLE_H
#define ECHOSRV_PREAMBLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/proxy.h"

enum preamble_state {
	PRE_WAIT,	/* the header is not complete yet */
	PRE_DONE,	/* complete: parser.hdr holds it */
	PRE_BAD,	/* not a valid header: parser.reason */
	PRE_GONE,	/* the peer closed or reset before the header ended */
};

struct preamble {
	struct preamble *prev, *next;	/* arrival order */
	int fd;
	uint8_t state;			/* enum preamble_state */
	uint64_t accepted;		/* ns, monotonic */
	uint64_t deadline;		/* ns */
	struct sockaddr_storage via;	/* the balancer: the connection's peer */
	struct proxy_parser parser;
	/* After PRE_DONE: client bytes read with the header's end; they
	 * point into the set's scratch buffer and are valid only in done()
	 * (or right after preamble_add() returned the entry). */
	const uint8_t *extra;
	uint32_t n_extra;
};

#define PREAMBLE_SCRATCH 2048
#define PREAMBLE_READ_MIN 1024	/* the smallest read_max: --conn-buffer's minimum */

struct preamble_set {
	int epfd;		/* -1: no proxy listener, the set is unused */
	struct preamble head;	/* sentinel: head.next has the earliest deadline */
	unsigned n;
	/* preamble_ready() stopped at its bound with epoll still full: call
	 * it again at once.  An engine that polls epfd for an edge (io_uring's
	 * multishot poll) gets no second wake-up for what is still ready. */
	bool more;
	uint8_t scratch[PREAMBLE_SCRATCH];	/* each read lands here */
};

/* on: this worker has proxy listeners (else epfd stays -1).  0 or -errno. */
int preamble_set_init(struct preamble_set *s, bool on);
/* Close every waiting socket and the set (worker exit). */
void preamble_set_fini(struct preamble_set *s);

/* Wait for fd's header, from peer via, until deadline.  Reads what is
 * there already; if that completes the header (or refuses it) the entry is
 * returned at once, already off the set, else NULL and the set has it.
 * On error (-errno in *err, no memory) fd is left to the caller.
 * read_max (PREAMBLE_READ_MIN to PREAMBLE_SCRATCH) bounds each read here
 * and in preamble_ready(), so that what comes with a header's end is never
 * more than the --conn-buffer of the connection it becomes. */
struct preamble *preamble_add(struct preamble_set *s, int fd, const struct sockaddr *via,
			      uint64_t now, uint64_t deadline, uint32_t read_max, int *err);

/* Read the sockets epoll says are readable; each entry whose state is no
 * longer PRE_WAIT is taken off the set and given to done(), which owns it
 * and its fd from then on (done may not touch the set).  Bounded: s->more
 * says whether it left some unread. */
void preamble_ready(struct preamble_set *s, uint32_t read_max,
		    void (*done)(struct preamble *e, void *arg), void *arg);

/* The first entry (earliest deadline) if that is past (taken off the set), else NULL. */
struct preamble *preamble_expired(struct preamble_set *s, uint64_t now);

/* The earliest deadline; UINT64_MAX when none waits. */
uint64_t preamble_next_deadline(const struct preamble_set *s);

/* Take e off the set (if on it) and free it; its fd is the caller's. */
void preamble_free(struct preamble *e);

#endif

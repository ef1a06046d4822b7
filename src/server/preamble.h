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
 * worker_preamble_ready().  Each read first peeks, gives the parser what it
 * saw and then takes from the socket exactly the bytes the parser took, so
 * not one byte after the header leaves the socket: what the client sent
 * with or after it is read by the engine from the socket as if it had just
 * arrived, in every engine alike (sockmap included, which then moves it in
 * the kernel), and no engine needs a "bytes already read" path.
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
};

struct preamble_set {
	int epfd;		/* -1: no proxy listener, the set is unused */
	struct preamble head;	/* sentinel: head.next has the earliest deadline */
	unsigned n;
};

/* on: this worker has proxy listeners (else epfd stays -1).  0 or -errno. */
int preamble_set_init(struct preamble_set *s, bool on);
/* Close every waiting socket and the set (worker exit). */
void preamble_set_fini(struct preamble_set *s);

/* Wait for fd's header, from peer via, until deadline.  Reads what is
 * there already; if that completes the header (or refuses it) the entry is
 * returned at once, already off the set, else NULL and the set has it.
 * On error (-errno in *err, no memory) fd is left to the caller. */
struct preamble *preamble_add(struct preamble_set *s, int fd, const struct sockaddr *via,
			      uint64_t now, uint64_t deadline, int *err);

/* Read the sockets epoll says are readable; each entry whose state is no
 * longer PRE_WAIT is taken off the set and given to done(), which owns it
 * and its fd from then on (done may not touch the set). */
void preamble_ready(struct preamble_set *s, void (*done)(struct preamble *e, void *arg),
		    void *arg);

/* The first entry (earliest deadline) if that is past (taken off the set), else NULL. */
struct preamble *preamble_expired(struct preamble_set *s, uint64_t now);

/* The earliest deadline; UINT64_MAX when none waits. */
uint64_t preamble_next_deadline(const struct preamble_set *s);

/* Take e off the set (if on it) and free it; its fd is the caller's. */
void preamble_free(struct preamble *e);

#endif

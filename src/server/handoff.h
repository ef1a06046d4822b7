/* SPDX-License-Identifier: GPL-2.0-only */
/* Socket activation's hand-off: connections one worker accepted for
 * another.
 *
 * systemd passes one socket per address, not one per worker, so the kernel
 * cannot spread connections over the workers by SO_REUSEPORT.  Every worker
 * holds a dup of the passed socket, and whichever accepts a connection
 * deals it round-robin: its own share it serves, the others' go into the
 * chosen worker's queue here, plain descriptors not yet admitted, and a
 * wake-up.  That worker admits and serves them as if it had accepted them,
 * so a connection still lives on one worker for its whole life and the
 * data path stays unshared.  Needed because some engines never spread a
 * shared socket by themselves: io_uring's multishot accepts all land on the
 * first ring armed.
 *
 * The queue is bounded and locked (once per connection, never on the data
 * path).  When it is full, or its worker has ended, the sender serves the
 * connection itself: nothing is lost, only the share is off for a moment. */
#ifndef ECHOSRV_HANDOFF_H
#define ECHOSRV_HANDOFF_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define HANDOFF_MAX 256

struct handoff {
	pthread_mutex_t lock;
	_Atomic bool pending;	/* something is queued: the owner's one relaxed load */
	bool closed;		/* the owner has ended: refuse, keep nothing */
	unsigned n;
	int fds[HANDOFF_MAX];
};

int handoff_init(struct handoff *h);
/* Release; descriptors still queued are closed. */
void handoff_fini(struct handoff *h);

/* From another worker: queue fd.  0, or -EAGAIN (full) or -EPIPE (closed),
 * and then the caller still owns fd. */
int handoff_push(struct handoff *h, int fd);

/* The owner: move up to max queued descriptors into out, oldest first;
 * their number. */
unsigned handoff_take(struct handoff *h, int *out, unsigned max);

/* The owner's drain has no connection left: refuse from now on and return
 * true, but only if nothing is queued; false means a dealer got one in
 * first, and the owner must serve it before it may end (a connection that
 * was accepted is never dropped at a drain). */
bool handoff_seal(struct handoff *h);

/* The owner is ending: refuse from now on and close what is queued. */
void handoff_close(struct handoff *h);

#endif

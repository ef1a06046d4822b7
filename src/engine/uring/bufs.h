/* SPDX-License-Identifier: GPL-2.0-only */
/* The io_uring engine's provided-buffer ring: one pool per worker.
 *
 * The kernel picks a buffer from the ring when data arrives on a
 * connection (multishot receive with buffer select), so a connection holds
 * no receive buffer while it is idle, and memory for receiving is one pool
 * per worker however many connections there are.  A buffer comes back once
 * its bytes have been echoed (or copied aside).
 *
 * The ring is FIFO: posting every free buffer would make the kernel cycle
 * through the whole pool (megabytes) and every receive would land in memory
 * that left the cache long ago.  So only `depth` buffers are posted at a
 * time; returned buffers go on a LIFO stack and the most recently used are
 * posted first.  depth doubles whenever a receive finds the ring empty
 * (ENOBUFS) and halves after a second in which it was never nearly used,
 * so a busy worker gets the buffers it needs and a quiet one keeps a small
 * hot set (and touches few pages: the pool is mapped, not allocated).
 *
 * Pages go back to the kernel once idle: a buffer that stayed on the stack
 * (neither posted nor holding data) for a whole release period,
 * BUFS_RELEASE_NS, is dropped with madvise(MADV_DONTNEED) -- the
 * stack's bottom below the lowest it reached in the period is exactly the
 * buffers nobody touched, and the mapping stays, so reuse just faults in
 * fresh pages.  Runs of idle buffers are dropped by the whole pages they
 * cover, so buffers smaller than a page go back too once their neighbours
 * are idle.  Buffers in the ring (posted, up to the depth a burst grew
 * to) are dropped only after a whole period in which the kernel filled
 * none and no connection held one: then the whole pool goes at once.  That
 * is safe because the kernel writes a provided buffer only while this
 * worker is inside io_uring_enter (task work runs in the submitting thread;
 * receives are never sent to io-wq), and what a posted buffer holds before
 * a completion names it is nothing anyone reads.
 *
 * The ring is registered with IORING_REGISTER_PBUF_RING on memory we map
 * ourselves (liburing 2.3 has no io_uring_setup_buf_ring()). */
#ifndef ECHOSRV_URING_BUFS_H
#define ECHOSRV_URING_BUFS_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#define BUFS_NONE UINT16_MAX	/* "no buffer" in queue links */
#define BUFS_MAX 32768u		/* the kernel's limit on ring entries */
#define BUFS_MIN_DEPTH 2u

struct uring_bufs {
	struct io_uring_buf_ring *br;
	uint8_t *mem;		/* count * size bytes */
	uint32_t size;		/* bytes per buffer (their stride in mem) */
	uint32_t lead;		/* bytes at each one's start that are not posted */
	uint32_t count;		/* power of two, <= BUFS_MAX */
	uint32_t posted;	/* in the ring, not yet named by a completion */
	uint32_t depth;		/* how many to keep posted */
	uint32_t low;		/* fewest posted seen since the last adjustment */
	uint64_t adjusted;	/* ns of the last depth decay */
	bool grown;		/* depth doubled since the last refill */
	uint16_t bgid;
	uint16_t *stack;	/* free buffers not posted; top = most recent */
	uint32_t n_stack;
	uint16_t *next;		/* per buffer: send-queue link (engine use) */
	uint32_t *len;		/* per buffer: bytes of data in it (engine use) */
	size_t ring_bytes, mem_bytes;
	/* Releasing idle pages: stack[0, clean) were dropped and not taken
	 * since; stack[0, stack_low) were not taken this period. */
	uint32_t clean, stack_low;
	uint32_t taken;		/* buffers filled this period */
	bool all_clean;		/* the whole pool dropped, none taken since */
	uint64_t released;	/* ns of the last release */
	uint8_t *idle_map;	/* scratch: one bit per buffer */
};

#define BUFS_RELEASE_NS 5000000000ull	/* 5 s */

/* Map and register count buffers of size bytes as group bgid on ring.
 * count is rounded up to a power of two.  The first lead bytes of each
 * are left out of what the kernel gets (the UDP ring, uring/dgram.c: so
 * that a datagram's payload, behind the recvmsg header, starts on a
 * page); 0 for the TCP one.  0 or -errno. */
int uring_bufs_init(struct uring_bufs *b, struct io_uring *ring, uint16_t bgid, uint32_t count,
		    uint32_t size, uint32_t lead);
void uring_bufs_fini(struct uring_bufs *b, struct io_uring *ring);

/* Post free buffers until depth are in the ring; decay depth, and drop
 * the pages of buffers idle for a release period (now: ns). */
void uring_bufs_refill(struct uring_bufs *b, uint64_t now);
/* ns until idle pages are next due to be dropped; UINT64_MAX: none left. */
uint64_t uring_bufs_release_due(const struct uring_bufs *b, uint64_t now);
/* A receive found the ring empty: post more from now on. */
void uring_bufs_grow(struct uring_bufs *b);

static inline uint8_t *uring_buf(const struct uring_bufs *b, uint16_t bid)
{
	return b->mem + (size_t)bid * b->size + b->lead;
}

/* The kernel filled buffer bid (a completion named it). */
static inline void uring_buf_taken(struct uring_bufs *b, uint16_t bid)
{
	b->posted--;
	b->taken++;
	b->next[bid] = BUFS_NONE;
}

/* Buffer bid is free again; it is posted at the next refill. */
static inline void uring_buf_put(struct uring_bufs *b, uint16_t bid)
{
	b->stack[b->n_stack++] = bid;
}

/* Buffers the kernel can fill right now. */
static inline uint32_t uring_bufs_posted(const struct uring_bufs *b)
{
	return b->posted;
}

#endif

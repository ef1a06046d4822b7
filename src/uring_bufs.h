/* The io_uring engine's provided-buffer ring: one per worker.
 *
 * The kernel picks a buffer from this ring when data arrives on a
 * connection (multishot receive with buffer select), so a connection holds
 * no receive buffer while it is idle, and memory for receiving is one
 * fixed pool per worker however many connections there are.  A buffer goes
 * back to the ring once its bytes have been echoed (or copied aside).
 *
 * The ring is registered with IORING_REGISTER_PBUF_RING on memory we map
 * ourselves (liburing 2.3 has no io_uring_setup_buf_ring()). */
#ifndef ECHOSRV_URING_BUFS_H
#define ECHOSRV_URING_BUFS_H

#include <liburing.h>
#include <stdint.h>

#define BUFS_NONE UINT16_MAX	/* "no buffer" in queue links */
#define BUFS_MAX 32768u		/* the kernel's limit on ring entries */

struct uring_bufs {
	struct io_uring_buf_ring *br;
	uint8_t *mem;		/* count * size bytes */
	uint32_t size;		/* bytes per buffer */
	uint32_t count;		/* power of two, <= BUFS_MAX */
	uint32_t out;		/* buffers the kernel handed us, not yet returned */
	uint16_t bgid;
	uint16_t *next;		/* per buffer: send-queue link (engine use) */
	uint32_t *len;		/* per buffer: bytes of data in it (engine use) */
	size_t ring_bytes, mem_bytes;
};

/* Map and register count buffers of size bytes as group bgid on ring.
 * count is rounded up to a power of two.  0 or -errno. */
int uring_bufs_init(struct uring_bufs *b, struct io_uring *ring, uint16_t bgid, uint32_t count,
		    uint32_t size);
void uring_bufs_fini(struct uring_bufs *b, struct io_uring *ring);

static inline uint8_t *uring_buf(const struct uring_bufs *b, uint16_t bid)
{
	return b->mem + (size_t)bid * b->size;
}

/* The kernel filled buffer bid (a completion named it). */
static inline void uring_buf_taken(struct uring_bufs *b, uint16_t bid)
{
	b->out++;
	b->next[bid] = BUFS_NONE;
}

/* Give buffer bid back to the kernel. */
static inline void uring_buf_put(struct uring_bufs *b, uint16_t bid)
{
	io_uring_buf_ring_add(b->br, uring_buf(b, bid), b->size, bid,
			      io_uring_buf_ring_mask(b->count), 0);
	io_uring_buf_ring_advance(b->br, 1);
	b->out--;
}

static inline uint32_t uring_bufs_free(const struct uring_bufs *b)
{
	return b->count - b->out;
}

#endif

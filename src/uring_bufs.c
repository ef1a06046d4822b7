/* Provided-buffer ring: setup, posting and depth; see uring_bufs.h. */
#include "uring_bufs.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

#define DECAY_NS NSEC_PER_SEC

static uint32_t pow2_at_least(uint32_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int uring_bufs_init(struct uring_bufs *b, struct io_uring *ring, uint16_t bgid, uint32_t count,
		    uint32_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int r;

	memset(b, 0, sizeof(*b));
	b->count = MIN(pow2_at_least(MAX(count, 1u)), BUFS_MAX);
	b->size = size;
	b->bgid = bgid;
	b->depth = MIN(BUFS_MIN_DEPTH, b->count);
	b->ring_bytes = (b->count * sizeof(struct io_uring_buf) + page - 1) & ~(page - 1);
	b->mem_bytes = (size_t)b->count * size;
	b->br = map(b->ring_bytes);
	b->mem = map(b->mem_bytes);
	b->stack = calloc(b->count, sizeof(*b->stack));
	b->next = calloc(b->count, sizeof(*b->next));
	b->len = calloc(b->count, sizeof(*b->len));
	if (!b->br || !b->mem || !b->stack || !b->next || !b->len) {
		r = -ENOMEM;
		goto fail;
	}
	io_uring_buf_ring_init(b->br);
	struct io_uring_buf_reg reg = {
		.ring_addr = (uint64_t)(uintptr_t)b->br,
		.ring_entries = b->count,
		.bgid = bgid,
	};
	if ((r = io_uring_register_buf_ring(ring, &reg, 0)))
		goto fail;
	/* Lowest ids on top of the stack, so the first posted are 0, 1, ... */
	for (uint32_t i = b->count; i-- > 0;)
		b->stack[b->n_stack++] = (uint16_t)i;
	uring_bufs_refill(b, 0);
	return 0;
fail:
	uring_bufs_fini(b, NULL);
	return r;
}

void uring_bufs_fini(struct uring_bufs *b, struct io_uring *ring)
{
	if (ring && b->br)
		io_uring_unregister_buf_ring(ring, b->bgid);
	if (b->br)
		munmap(b->br, b->ring_bytes);
	if (b->mem)
		munmap(b->mem, b->mem_bytes);
	free(b->stack);
	free(b->next);
	free(b->len);
	memset(b, 0, sizeof(*b));
}

void uring_bufs_grow(struct uring_bufs *b)
{
	if (b->grown)	/* once per batch of completions, not per receive */
		return;
	b->grown = true;
	b->depth = MIN(b->depth * 2, b->count);
	b->low = 0;
}

void uring_bufs_refill(struct uring_bufs *b, uint64_t now)
{
	int n = 0;

	b->grown = false;
	b->low = MIN(b->low, b->posted);
	if (now - b->adjusted >= DECAY_NS) {
		/* A whole second with at least 3/4 of the ring never used. */
		if (b->low > b->depth / 4 * 3 && b->depth > BUFS_MIN_DEPTH)
			b->depth /= 2;
		b->adjusted = now;
		b->low = b->depth;
	}
	while (b->posted < b->depth && b->n_stack) {
		uint16_t bid = b->stack[--b->n_stack];
		io_uring_buf_ring_add(b->br, uring_buf(b, bid), b->size, bid,
				      io_uring_buf_ring_mask(b->count), n++);
		b->posted++;
	}
	if (n)
		io_uring_buf_ring_advance(b->br, n);
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* Provided-buffer ring: setup, posting and depth; see bufs.h. */
#include "engine/uring/bufs.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/util.h"

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
		    uint32_t size, uint32_t lead)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int r;

	memset(b, 0, sizeof(*b));
	b->count = MIN(pow2_at_least(MAX(count, 1u)), BUFS_MAX);
	b->size = size;
	b->lead = lead < size ? lead : 0;
	b->bgid = bgid;
	b->depth = MIN(BUFS_MIN_DEPTH, b->count);
	b->ring_bytes = (b->count * sizeof(struct io_uring_buf) + page - 1) & ~(page - 1);
	b->mem_bytes = (size_t)b->count * size;
	b->br = map(b->ring_bytes);
	b->mem = map(b->mem_bytes);
	b->stack = calloc(b->count, sizeof(*b->stack));
	b->next = calloc(b->count, sizeof(*b->next));
	b->len = calloc(b->count, sizeof(*b->len));
	b->idle_map = calloc(b->count / 8 + 1, 1);
	if (!b->br || !b->mem || !b->stack || !b->next || !b->len || !b->idle_map) {
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
	b->clean = b->stack_low = b->n_stack;	/* never touched yet */
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
	free(b->idle_map);
	memset(b, 0, sizeof(*b));
}

/* Drop the whole pages of buffers [from, to) (ids, contiguous in memory). */
static void drop_run(struct uring_bufs *b, uint32_t from, uint32_t to, uintptr_t page)
{
	uintptr_t start = ((uintptr_t)b->mem + (size_t)from * b->size + page - 1) & ~(page - 1);
	uintptr_t end = ((uintptr_t)b->mem + (size_t)to * b->size) & ~(page - 1);

	if (end > start)
		madvise((void *)start, end - start, MADV_DONTNEED);
}

/* Buffers stack[clean, stack_low) sat on the stack for a whole period:
 * drop their pages, in runs of idle neighbours (those dropped before
 * count as idle too, so that a page shared with one of them goes). */
static void release_idle(struct uring_bufs *b, uint64_t now)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);

	b->released = now;
	if (!b->taken && b->n_stack + b->posted == b->count) {
		if (!b->all_clean)
			madvise(b->mem, b->mem_bytes, MADV_DONTNEED);
		b->all_clean = true;
		b->clean = b->stack_low = b->n_stack;
		return;
	}
	b->all_clean = false;
	b->taken = 0;
	if (b->clean < b->stack_low) {
		for (uint32_t i = 0; i < b->stack_low; i++)
			b->idle_map[b->stack[i] / 8] |= (uint8_t)(1u << (b->stack[i] % 8));
		for (uint32_t id = 0; id < b->count;) {
			if (!(b->idle_map[id / 8] & (1u << (id % 8)))) {
				id++;
				continue;
			}
			uint32_t end = id;
			while (end < b->count && (b->idle_map[end / 8] & (1u << (end % 8))))
				end++;
			drop_run(b, id, end, page);
			id = end;
		}
		memset(b->idle_map, 0, b->count / 8 + 1);
		b->clean = b->stack_low;
	}
	b->stack_low = b->n_stack;
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
	if (now - b->released >= BUFS_RELEASE_NS)
		release_idle(b, now);
	while (b->posted < b->depth && b->n_stack) {
		uint16_t bid = b->stack[--b->n_stack];
		io_uring_buf_ring_add(b->br, uring_buf(b, bid), b->size - b->lead, bid,
				      io_uring_buf_ring_mask(b->count), n++);
		b->posted++;
	}
	if (n)
		io_uring_buf_ring_advance(b->br, n);
	b->stack_low = MIN(b->stack_low, b->n_stack);
	b->clean = MIN(b->clean, b->n_stack);
}

uint64_t uring_bufs_release_due(const struct uring_bufs *b, uint64_t now)
{
	if (b->all_clean && !b->taken)
		return UINT64_MAX;	/* nothing left to drop */
	return b->released + BUFS_RELEASE_NS <= now ? 0 : b->released + BUFS_RELEASE_NS - now;
}

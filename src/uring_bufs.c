/* Provided-buffer ring setup; see uring_bufs.h. */
#include "uring_bufs.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

static uint32_t pow2_at_least(uint32_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
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
	b->ring_bytes = (b->count * sizeof(struct io_uring_buf) + page - 1) & ~(page - 1);
	b->mem_bytes = (size_t)b->count * size;
	/* Mapped, not malloc'd: the pages are only backed once data lands in
	 * them, so an idle server does not pay for its receive pool. */
	b->br = mmap(NULL, b->ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->br == MAP_FAILED) {
		b->br = NULL;
		return ERR();
	}
	b->mem = mmap(NULL, b->mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->mem == MAP_FAILED) {
		b->mem = NULL;
		r = ERR();
		goto fail;
	}
	b->next = calloc(b->count, sizeof(*b->next));
	b->len = calloc(b->count, sizeof(*b->len));
	if (!b->next || !b->len) {
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
	for (uint32_t i = 0; i < b->count; i++)
		io_uring_buf_ring_add(b->br, uring_buf(b, (uint16_t)i), size, (uint16_t)i,
				      io_uring_buf_ring_mask(b->count), (int)i);
	io_uring_buf_ring_advance(b->br, (int)b->count);
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
	free(b->next);
	free(b->len);
	memset(b, 0, sizeof(*b));
}

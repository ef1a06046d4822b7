/* SPDX-License-Identifier: GPL-2.0-only */
/* The io_uring engine: what one connection holds, and giving it back.
 *
 * Its slot of engine state (struct uconn, beside the conn table), the ring
 * buffers queued for sending, its place on the starved list, and while it
 * moves bulk data its entry in the bulk table and its pipe.  These are the
 * bottom of the engine: data.c, bulk.c, ring.c and the loop all change
 * them, and nothing here calls back into any of those files. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/uring/uring.h"
#include "core/util.h"

int uring_attach(struct uring_engine *u, struct conn *c)
{
	uint32_t chunk = c->idx / CONN_CHUNK;

	if (chunk >= u->n_uc_chunks)
		return -ENOSPC;
	if (!u->uc[chunk] && !(u->uc[chunk] = calloc(CONN_CHUNK, sizeof(struct uconn))))
		return -ENOMEM;
	struct uconn *uc = uconn_of(u, c);
	memset(uc, 0, sizeof(*uc));
	uc->c = c;
	uc->q_head = uc->q_tail = BUFS_NONE;
	return 0;
}

/* Bytes the connection holds: received, not yet sent back. */
uint32_t uring_held(const struct conn *c, const struct uconn *uc)
{
	return c->len + uc->spill_len + uc->q_bytes + uc->pipe_bytes;
}

/* --- the starved list: waiting for ring buffers ------------------------- */

void uring_starve(struct uring_engine *u, struct uconn *uc)
{
	uc->flags |= UC_STARVED;
	uc->snext = &u->starved;
	uc->sprev = u->starved.sprev;
	u->starved.sprev->snext = uc;
	u->starved.sprev = uc;
}

void uring_unstarve(struct uconn *uc)
{
	uc->sprev->snext = uc->snext;
	uc->snext->sprev = uc->sprev;
	uc->flags &= (uint16_t)~UC_STARVED;
}

/* --- the queue of ring buffers waiting to be sent ----------------------- */

void uring_queue_consume(struct uring_engine *u, struct uconn *uc, uint32_t n)
{
	struct uring_bufs *b = &u->bufs;

	while (n) {
		uint16_t bid = uc->q_head;
		uint32_t k = MIN(n, b->len[bid] - uc->q_off);
		uc->q_off += k;
		uc->q_bytes -= k;
		n -= k;
		if (uc->q_off == b->len[bid]) {
			uc->q_head = b->next[bid];
			uc->q_off = 0;
			uring_buf_put(b, bid);
		}
	}
	if (uc->q_head == BUFS_NONE)
		uc->q_tail = BUFS_NONE;
}

/* --- the bulk table and pipe (bulk.c) ------------------------------------ */

bool uring_bulk_take(struct uring_engine *u, struct conn *c, struct uconn *uc)
{
	if (u->n_bulk >= BULK_MAX)
		return false;
	uc->bulk_slot = u->n_bulk;
	u->bulk[u->n_bulk++] = c;
	return true;
}

void uring_bulk_drop(struct uring_engine *u, struct uconn *uc)
{
	struct conn *last = u->bulk[--u->n_bulk];

	u->bulk[uc->bulk_slot] = last;
	uconn_of(u, last)->bulk_slot = uc->bulk_slot;
	if (uc->flags & UC_AGAIN)
		u->n_again--;
	uc->flags &= (uint16_t)~UC_BULK_ALL;
	uc->full_recvs = 0;
	uc->urgent = false;
}

void uring_pipe_close(struct uconn *uc)
{
	close(uc->pipe_r);
	close(uc->pipe_w);
	if (uc->flags & UC_BULK_FD)
		close(uc->bulk_fd);
	uc->pipe_bytes = 0;
}

/* The connection is being released: give its pipe and descriptor back. */
static void release_bulk(struct uring_engine *u, struct uconn *uc)
{
	if (!(uc->flags & (UC_BULK_WANT | UC_BULK)))
		return;
	if (uc->flags & UC_BULK)
		uring_pipe_close(uc);
	uring_bulk_drop(u, uc);
}

/* The connection is going away: drop it from the starved list, give back
 * every ring buffer it still holds, its spill, and its pipe. */
void uconn_release(struct uring_engine *u, struct conn *c)
{
	struct uconn *uc = uconn_of(u, c);

	if (uc->flags & UC_STARVED)
		uring_unstarve(uc);
	if (uc->q_head != BUFS_NONE)
		uring_queue_consume(u, uc, uc->q_bytes);
	free(uc->spill);
	uc->spill = NULL;
	uc->spill_len = uc->spill_cap = 0;
	release_bulk(u, uc);
}

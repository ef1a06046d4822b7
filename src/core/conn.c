/* SPDX-License-Identifier: GPL-2.0-only */
/* Connection state, buffers and slot table; see conn.h. */
#include "core/conn.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static const char *const reason_names[] = {
	[CLOSE_NONE] = "none",
	[CLOSE_PEER] = "peer-closed",
	[CLOSE_IDLE] = "idle-timeout",
	[CLOSE_RESET] = "reset",
	[CLOSE_ERROR] = "error",
	[CLOSE_LIMIT] = "limit",
	[CLOSE_ACL] = "acl",
	[CLOSE_DRAIN] = "drain",
	[CLOSE_PROXY_BAD] = "proxy-bad",
	[CLOSE_PROXY_UNTRUSTED] = "proxy-untrusted",
	[CLOSE_PROXY_TIMEOUT] = "proxy-timeout",
	[CLOSE_ADMIN] = "admin",
};

const char *close_reason_name(enum close_reason r)
{
	return r < ARRAY_SIZE(reason_names) ? reason_names[r] : "?";
}

/* Allowed transitions; anything else is a bug in an engine. */
static bool transition_ok(enum conn_state from, enum conn_state to)
{
	switch (to) {
	case CONN_OPEN:     return from == CONN_FREE;
	case CONN_FLUSHING: return from == CONN_OPEN;
	case CONN_CLOSING:  return from == CONN_OPEN || from == CONN_FLUSHING;
	case CONN_FREE:     return from == CONN_CLOSING;
	}
	return false;
}

void conn_set_state(struct conn *c, enum conn_state to)
{
	assert(transition_ok(c->state, to));
	c->state = (uint8_t)to;
}

int conn_hold(struct conn *c, const void *data, uint32_t n, uint32_t cap)
{
	if (!c->buf) {
		c->buf = malloc(cap);
		if (!c->buf)
			return -ENOMEM;
		c->off = c->len = 0;
	} else if (c->off + c->len + n > cap) {
		memmove(c->buf, c->buf + c->off, c->len);
		c->off = 0;
	}
	assert(c->off + c->len + n <= cap);
	memcpy(c->buf + c->off + c->len, data, n);
	c->len += n;
	conn_note_held(c, c->len);
	return 0;
}

void conn_sent(struct conn *c, uint32_t n)
{
	assert(n <= c->len);
	c->off += n;
	c->len -= n;
	if (c->len == 0)
		conn_drop_buffer(c);
}

void conn_drop_buffer(struct conn *c)
{
	free(c->buf);
	c->buf = NULL;
	c->off = c->len = 0;
}

int conn_table_init(struct conn_table *t, uint32_t max_conns)
{
	memset(t, 0, sizeof(*t));
	t->max_chunks = max_conns / CONN_CHUNK + 1;
	t->chunks = calloc(t->max_chunks, sizeof(*t->chunks));
	t->free_head = UINT32_MAX;
	return t->chunks ? 0 : -ENOMEM;
}

void conn_table_free(struct conn_table *t)
{
	for (uint32_t i = 0; i < t->n_chunks; i++) {
		for (uint32_t k = 0; k < CONN_CHUNK; k++)
			free(t->chunks[i][k].buf);
		free(t->chunks[i]);
	}
	free(t->chunks);
	memset(t, 0, sizeof(*t));
}

static struct conn *slot(struct conn_table *t, uint32_t idx)
{
	return &t->chunks[idx / CONN_CHUNK][idx % CONN_CHUNK];
}

/* Add a chunk of free slots; they go on the free list lowest index first. */
static int grow(struct conn_table *t)
{
	if (t->n_chunks == t->max_chunks)
		return -ENOSPC;
	struct conn *chunk = calloc(CONN_CHUNK, sizeof(*chunk));
	if (!chunk)
		return -ENOMEM;
	uint32_t base = t->n_chunks * CONN_CHUNK;
	t->chunks[t->n_chunks++] = chunk;
	for (uint32_t k = CONN_CHUNK; k-- > 0;) {
		chunk[k].idx = base + k;
		chunk[k].fd = -1;
		chunk[k].next_free = t->free_head;
		t->free_head = base + k;
	}
	return 0;
}

struct conn *conn_alloc(struct conn_table *t)
{
	if (t->free_head == UINT32_MAX && grow(t))
		return NULL;
	struct conn *c = slot(t, t->free_head);
	t->free_head = c->next_free;
	uint32_t gen = c->gen + 1;
	uint32_t idx = c->idx;
	memset(c, 0, sizeof(*c));
	c->idx = idx;
	c->gen = gen ? gen : 1;	/* generation 0 marks non-connection tags */
	c->fd = -1;
	idle_node_init(&c->idle);
	conn_set_state(c, CONN_OPEN);
	t->active++;
	return c;
}

void conn_release(struct conn_table *t, struct conn *c)
{
	conn_drop_buffer(c);
	conn_set_state(c, CONN_FREE);
	c->fd = -1;
	c->next_free = t->free_head;
	t->free_head = c->idx;
	t->active--;
}

struct conn *conn_lookup(struct conn_table *t, uint64_t id)
{
	uint32_t idx = (uint32_t)id, gen = (uint32_t)(id >> 32);

	if (idx >= t->n_chunks * CONN_CHUNK)
		return NULL;
	struct conn *c = slot(t, idx);
	return (c->gen == gen && c->state != CONN_FREE) ? c : NULL;
}

void conn_table_each(struct conn_table *t, void (*fn)(struct conn *c, void *arg), void *arg)
{
	for (uint32_t i = 0; i < t->n_chunks * CONN_CHUNK; i++) {
		struct conn *c = slot(t, i);
		if (c->state != CONN_FREE)
			fn(c, arg);
	}
}

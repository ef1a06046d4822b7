/* SPDX-License-Identifier: GPL-2.0-only */
/* Connections: state, buffer accounting and the per-worker slot table.
 * Nothing here depends on the engine.
 *
 * A connection holds a buffer only while echoed data waits to be sent (the
 * peer is not reading fast enough); an idle or keeping-up connection is just
 * this struct.  The buffer never exceeds --conn-buffer, and while it is full
 * the engine stops receiving, so TCP flow control throttles the peer instead
 * of server memory growing.
 *
 * Engines name a connection by slot index plus generation (conn_id), never by
 * descriptor, so a late event for a closed and reused slot is recognised. */
#ifndef ECHOSRV_CONN_H
#define ECHOSRV_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/idle.h"

enum conn_state {
	CONN_FREE,	/* slot unused, on the free list */
	CONN_OPEN,	/* echoing in both directions */
	CONN_FLUSHING,	/* peer sent FIN: send what is left, then FIN back */
	CONN_CLOSING,	/* torn down; waiting for the engine's last completion */
};

enum close_reason {
	CLOSE_NONE,
	CLOSE_PEER,	/* peer-closed: FIN, everything echoed, FIN sent */
	CLOSE_IDLE,	/* idle-timeout */
	CLOSE_RESET,	/* reset by the peer */
	CLOSE_ERROR,	/* send/receive error */
	CLOSE_LIMIT,	/* rejected: --max-conns or --max-conns-per-ip */
	CLOSE_ACL,	/* rejected: --allow/--deny */
	CLOSE_DRAIN,	/* cut at the end of the drain timeout */
	CLOSE_PROXY_BAD,	/* PROXY header malformed, or the peer left before it */
	CLOSE_PROXY_UNTRUSTED,	/* PROXY listener, peer not in --proxy-from */
	CLOSE_PROXY_TIMEOUT,	/* PROXY header not complete in --proxy-timeout */
	CLOSE_ADMIN,	/* closed by the operator: echosrvctl kill */
};

const char *close_reason_name(enum close_reason r);

struct conn {
	struct idle_node idle;	/* first: the idle timer links through here */
	int fd;
	uint32_t idx;
	uint32_t gen;
	uint8_t state;		/* enum conn_state */
	uint8_t reason;		/* enum close_reason, once closing */
	uint16_t port;		/* peer port, host order */
	struct ipaddr peer;	/* the client (from a PROXY header, if any) */
	struct ipaddr via;	/* the load balancer that sent the PROXY
				 * header; family 0: a direct connection */
	uint16_t via_port;
	uint32_t pre_read;	/* bytes read before the engine adopted it (the
				 * PROXY header): not part of the echoed stream */
	uint64_t started;	/* ns, monotonic */
	uint64_t bytes_in, bytes_out;
	/* Unsent data (epoll engine): buf[off, off+len) waits to be sent. */
	uint8_t *buf;
	uint32_t off, len;
	uint32_t engine_ref;	/* engine-private: e.g. completions in flight */
	uint32_t next_free;	/* free-list link while CONN_FREE */
	/* Most unsent bytes this connection held in user space at once (the
	 * engine's whole count, not just buf): shown by `echosrvctl conns`,
	 * so the --conn-buffer bound can be checked from outside. */
	uint32_t held_max;
	uint32_t cap;		/* --conn-buffer when it was admitted (a reload
				 * changes it for new connections only) */
	bool ip_counted;	/* in the per-address table (limits_take_with()) */
};

static inline void conn_note_held(struct conn *c, uint32_t held)
{
	if (held > c->held_max)
		c->held_max = held;
}

static inline uint64_t conn_id(const struct conn *c)
{
	return (uint64_t)c->gen << 32 | c->idx;
}

void conn_set_state(struct conn *c, enum conn_state to);

/* Keep n bytes that could not be sent yet; the caller guarantees that
 * c->len + n <= cap (it receives at most cap - c->len).  0 or -ENOMEM. */
int conn_hold(struct conn *c, const void *data, uint32_t n, uint32_t cap);
/* n bytes of the held data were sent; frees the buffer once it is empty. */
void conn_sent(struct conn *c, uint32_t n);
void conn_drop_buffer(struct conn *c);

/* The per-worker slot table: chunks of fixed size, so a struct conn never
 * moves and a pointer to it stays valid while the slot is in use. */
#define CONN_CHUNK 1024

struct conn_table {
	struct conn **chunks;
	uint32_t n_chunks, max_chunks;
	uint32_t free_head;	/* UINT32_MAX: none free */
	uint32_t active;
};

int conn_table_init(struct conn_table *t, uint32_t max_conns);
void conn_table_free(struct conn_table *t);
/* A fresh slot in CONN_OPEN state, or NULL when out of memory or slots. */
struct conn *conn_alloc(struct conn_table *t);
void conn_release(struct conn_table *t, struct conn *c);
/* The live connection id names, or NULL if it was closed meanwhile. */
struct conn *conn_lookup(struct conn_table *t, uint64_t id);

/* Call fn for every slot in use (drain, listing). fn may release c. */
void conn_table_each(struct conn_table *t, void (*fn)(struct conn *c, void *arg), void *arg);

#endif

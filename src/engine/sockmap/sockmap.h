/* SPDX-License-Identifier: GPL-2.0-only */
/* What the parts of the sockmap engine share: loop.c (the loop, insertion,
 * accept, the idle timeout's decision), conn.c (one connection seen from
 * user space once it is in the map: counters from TCP_INFO, epoll interest,
 * half-close, the user-mode echo, and its close), idle.c (the idle
 * deadlines) and bpf.c (loading the program).  loop.c calls conn.c and
 * idle.c, conn.c calls idle.c, and none calls back.  Private to them. */
#ifndef ECHOSRV_SOCKMAP_ENGINE_H
#define ECHOSRV_SOCKMAP_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "engine/sockmap/bpf.h"
#include "core/util.h"
#include "server/worker.h"

#define EP_BATCH 256

/* Engine state of one connection, beside struct conn (same index). */
struct smc {
	uint64_t cookie;
	uint64_t consumed;	/* bytes read in user mode, ever */
	uint64_t asked_at;	/* consumed when we last asked for the kernel back */
	bool user;		/* SM_USER: user space echoes */
	bool in_map;		/* in the SOCKHASH (else user mode for good) */
	bool eof;		/* user mode read the end of the stream */
	bool flush_listed;
	uint64_t flush_since;	/* ns: peer FIN seen */
	uint64_t flush_next;	/* ns: look again then */
	uint64_t idle_due;	/* ns: look at TCP's last receive then */
	uint32_t heap_pos;	/* 1 + index in sm.heap; 0: not in it */
};

/* One worker's engine. */
struct sm {
	struct sm_bpf bpf;
	struct ring_buffer *ring;
	int epfd;
	bool shared;
	uint8_t *scratch;
	uint32_t scratch_len;
	struct smc *per;	/* per[c->idx] */
	uint32_t n_per;
	uint64_t *flush;	/* ids of half-closed connections still sending */
	uint32_t n_flush, cap_flush;
	uint64_t flush_wake;	/* ns: the earliest flush_next */
	uint64_t next_sync;
	uint64_t idle_ns;	/* --idle-timeout (the worker's own list is unused) */
	struct conn **heap;	/* idle deadlines, earliest first (engine/sockmap/idle.c) */
	uint32_t n_heap, cap_heap;
	struct epoll_event events[EP_BATCH];
};

static inline struct smc *smc_of(struct worker *w, const struct conn *c)
{
	return &((struct sm *)w->eng)->per[c->idx];
}

static inline int sm_ep_ctl(struct sm *s, int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(s->epfd, op, fd, &ev) ? ERR() : 0;
}

static inline enum close_reason errno_reason(int err)
{
	return (err == ECONNRESET || err == EPIPE) ? CLOSE_RESET : CLOSE_ERROR;
}

struct tcp_bytes {
	uint64_t in;		/* received from the peer, in order */
	uint64_t out;		/* written to TCP by the echo (sent or queued) */
	uint32_t last_rx_ms;	/* since the last data was received */
};

/* conn.c: one inserted connection, and its close. */
void sm_close(struct worker *w, struct conn *c, enum close_reason why);
/* TCP's counts for c, less the bytes read before it was adopted
 * (c->pre_read: a PROXY header), which are no part of the echo. */
int sm_tcp_bytes(const struct conn *c, struct tcp_bytes *b);
void sm_sync_bytes(struct worker *w, struct conn *c, const struct tcp_bytes *b);
uint32_t sm_interest(struct worker *w, const struct conn *c);
void sm_peer_fin(struct worker *w, struct conn *c);
void sm_poll_flushing(struct worker *w);
void sm_user_read(struct worker *w, struct conn *c);
void sm_user_write(struct worker *w, struct conn *c);
int sm_on_ring_event(void *ctx, void *data, size_t size);
void sm_sweep_one(struct conn *c, void *arg);
void sm_count_one(struct conn *c, void *arg);

/* idle.c: the idle deadlines (a min-heap); the loop closes or defers. */
int sm_idle_add(struct worker *w, struct conn *c);
void sm_idle_remove(struct worker *w, struct conn *c);
struct conn *sm_idle_due(struct worker *w);
void sm_idle_defer(struct worker *w, uint64_t due);
int sm_idle_timeout_ms(const struct worker *w);
void sm_idle_set(struct worker *w, uint64_t ns);

#endif

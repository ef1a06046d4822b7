/* SPDX-License-Identifier: GPL-2.0-only */
/* Internals shared by the io_uring engine's files (loop.c: the loop,
 * dispatch, accept and teardown; data.c: the echo path on ring buffers;
 * bulk.c: bulk connections by splice; ring.c: the primitives they all call;
 * uconn.c: what a connection holds; bufs.c: the buffer ring; dgram.c: UDP
 * by multishot recvmsg; probe.c: can io_uring run here; env.c: the
 * environment knobs).  Not an interface for
 * anyone else.
 *
 * Every submission carries user_data = op << 56 | generation << 24 | slot
 * index (--max-conns keeps indexes below 2^24; for accepts the index is
 * the listener address), never a descriptor or pointer, so a completion
 * that arrives after its connection was closed and its slot reused is
 * recognised and dropped. */
#ifndef ECHOSRV_URING_H
#define ECHOSRV_URING_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/conn.h"
#include "engine/uring/bufs.h"

struct worker;
struct config;

enum uop {
	UOP_ACCEPT = 1,	/* index = listener address; generation 0: its
			 * multishot accept, k > 0: proxy_accept slot k - 1 */
	UOP_WAKE,	/* multishot poll on the worker's wake eventfd */
	UOP_RECV,	/* receive into the buffer ring: multishot with a byte
			 * limit (6.17), else single-shot sized to the room */
	UOP_SEND,	/* the one send in flight of a connection */
	UOP_CANCEL,	/* a cancel request; its own result is ignored */
	UOP_POLLIN,	/* bulk mode: multishot poll for input */
	UOP_POLLOUT,	/* bulk mode: one-shot poll for room to send */
	UOP_INSTALL,	/* bulk mode: a plain descriptor for a registered socket */
	UOP_PREAMBLE,	/* multishot poll on w->pre.epfd: PROXY headers readable */
	UOP_UDP,	/* one-shot poll on the worker's UDP set (engine/udp.h),
			 * where multishot recvmsg is not there */
	UOP_UDP_RECV,	/* multishot recvmsg on a UDP socket (dgram.c); index =
			 * the UDP address */
};

#define UD_IDX_BITS 24

static inline uint64_t ud_make(enum uop op, uint32_t gen, uint32_t idx)
{
	return (uint64_t)op << 56 | (uint64_t)gen << UD_IDX_BITS | idx;
}

static inline enum uop ud_op(uint64_t ud) { return (enum uop)(ud >> 56); }
static inline uint32_t ud_idx(uint64_t ud) { return (uint32_t)ud & ((1u << UD_IDX_BITS) - 1); }
/* The conn_id() the completion names. */
static inline uint64_t ud_conn_id(uint64_t ud)
{
	return (uint64_t)(uint32_t)(ud >> UD_IDX_BITS) << 32 | ud_idx(ud);
}

/* Per-connection engine state, kept beside the slot table (same index) so
 * that struct conn stays engine-independent.  Unsent data is a queue of
 * ring buffers linked through bufs.next (the peer keeps up), or (slow mode)
 * the private copy c->buf[off, off+len) followed by the spill, or (bulk
 * mode, bulk.c) what the pipe holds. */
struct uconn {
	struct conn *c;
	struct uconn *sprev, *snext;	/* starved list: waiting for buffers */
	uint32_t q_bytes;	/* unsent bytes in queued ring buffers */
	uint32_t q_off;		/* bytes of the head buffer already gone */
	uint32_t send_len;	/* bytes of the send in flight */
	uint8_t *spill;		/* slow mode: bytes behind the full private copy */
	uint32_t spill_len, spill_cap;
	uint16_t q_head, q_tail;
	uint16_t flags;
	/* Bulk mode (bulk.c): socket -> pipe -> socket by splice. */
	uint8_t full_recvs;	/* receives in a row that filled a whole ring buffer */
	bool urgent;		/* bulk: the input poll saw urgent data (POLLPRI) */
	int bulk_fd;		/* plain descriptor of the socket while bulk */
	int pipe_r, pipe_w;
	uint32_t pipe_bytes;	/* spliced in, not yet out: unsent data */
	uint32_t bulk_slot;	/* index in uring_engine.bulk */
};

#define UC_RECV		0x01	/* a receive is armed */
#define UC_RECV_CANCEL	0x02	/* ... and its cancel was submitted */
#define UC_PAUSED	0x04	/* receive stopped: --conn-buffer reached */
#define UC_SEND		0x08	/* a send is in flight */
#define UC_SEND_PRIV	0x10	/* ... from the private copy */
#define UC_STARVED	0x20	/* on the starved list */
#define UC_DIRECT	0x40	/* socket lives in the ring's file table at c->idx */
#define UC_BULK_WANT	0x80	/* switching to bulk mode once quiet */
#define UC_BULK		0x100	/* in bulk mode: pipe and bulk_fd valid */
#define UC_BULK_FD	0x200	/* ... and bulk_fd was installed for it */
#define UC_INSTALL	0x400	/* descriptor install in flight */
#define UC_POLLIN	0x800	/* multishot input poll armed */
#define UC_POLLOUT	0x1000	/* output poll armed */
#define UC_LEAVE	0x2000	/* leaving bulk mode: input poll cancelled */
#define UC_MOVED	0x4000	/* bulk: bytes moved since the last idle sweep */
#define UC_AGAIN	0x8000	/* bulk: stopped early with input maybe left */

#define BULK_MAX 16		/* bulk connections per worker */

struct uring_udp;

/* Single-shot accepts in flight per proxy listener, each with its slot. */
#define PROXY_ACCEPTS 8

/* A proxy listener's accept and the peer address it is given.  The trust
 * check needs the balancer's address, and getpeername() fails once the
 * peer has reset: a haproxy health check sends its header and resets at
 * once, and would never be counted.  A multishot accept has one address
 * buffer for every connection it takes, so plain listeners keep it and
 * ask getpeername(); a connection reset that early was never served. */
struct accept_slot {
	struct sockaddr_storage ss;
	socklen_t len;
	bool armed;
};

struct uring_engine {
	struct io_uring ring;
	struct uring_bufs bufs;
	struct uring_udp *udp;		/* multishot UDP receive (dgram.c); NULL: none,
					 * or UDP by readiness (UOP_UDP) */
	struct uconn **uc;		/* chunks of CONN_CHUNK, like the conn table */
	uint32_t n_uc_chunks;
	struct uconn starved;		/* sentinel of the starved list */
	uint32_t cap;			/* --conn-buffer at start (sizes the ring buffers); a connection has its own, conn.cap */
	uint32_t n_files;		/* registered file table slots; 0: none */
	bool accepting;
	bool accept_armed[CONFIG_MAX_LISTEN];	/* a plain listener's multishot accept */
	struct accept_slot proxy_accept[CONFIG_MAX_LISTEN][PROXY_ACCEPTS];
	bool wake_armed;
	bool pre_armed;			/* UOP_PREAMBLE is in flight */
	bool ring_ok;
	bool bulk_ok;			/* splice path enabled */
	bool install_ok;		/* kernel has IORING_OP_FIXED_FD_INSTALL */
	uint32_t n_bulk;		/* used entries of bulk[] */
	uint32_t n_again;		/* bulk connections with UC_AGAIN */
	uint64_t bulk_sweep;		/* ns of the last idle sweep */
	uint64_t bulk_moved;		/* ns of the last turn that moved bulk bytes */
	uint64_t bulk_spin_ns;		/* poll, not sleep, this long after that */
	struct conn *bulk[BULK_MAX];	/* bulk (or switching) connections */
	int fatal;			/* -errno that ends the loop */
	uint64_t freed_at;		/* ns of the last free of a connection's
					 * buffer or spill; 0: trimmed since */
};

/* A connection's private copy or spill went back to malloc: once none has
 * for a while, the heap is trimmed (loop.c). */
static inline void uring_freed(struct uring_engine *u, uint64_t now)
{
	u->freed_at = now ? now : 1;
}

static inline struct uconn *uconn_of(struct uring_engine *u, const struct conn *c)
{
	return &u->uc[c->idx / CONN_CHUNK][c->idx % CONN_CHUNK];
}

/* Point sqe at c's socket: its registered slot (no descriptor lookup per
 * request, and no descriptor held), or its plain descriptor. */
static inline void uring_target(struct io_uring_sqe *sqe, const struct conn *c,
				const struct uconn *uc)
{
	if (uc->flags & UC_DIRECT) {
		sqe->fd = (int)c->idx;
		sqe->flags |= IOSQE_FIXED_FILE;
	} else {
		sqe->fd = c->fd;
	}
}

/* Every flag a bulk connection may carry (uring_bulk_drop clears them). */
#define UC_BULK_ALL (UC_BULK_WANT | UC_BULK | UC_BULK_FD | UC_INSTALL | UC_POLLIN | \
		     UC_POLLOUT | UC_LEAVE | UC_MOVED | UC_AGAIN)

/* The files call downwards only: loop.c -> data.c, bulk.c -> ring.c ->
 * uconn.c, and loop.c -> dgram.c -> engine/udp.c (and bufs.c, probe.c,
 * env.c below them all). */

/* uconn.c: what one connection holds, and giving it back. */
int uring_attach(struct uring_engine *u, struct conn *c);
uint32_t uring_held(const struct conn *c, const struct uconn *uc);
void uring_starve(struct uring_engine *u, struct uconn *uc);
void uring_unstarve(struct uconn *uc);
/* n bytes from the head of the ring queue are gone (sent or copied). */
void uring_queue_consume(struct uring_engine *u, struct uconn *uc, uint32_t n);
bool uring_bulk_take(struct uring_engine *u, struct conn *c, struct uconn *uc);
void uring_bulk_drop(struct uring_engine *u, struct uconn *uc);
void uring_pipe_close(struct uconn *uc);
void uconn_release(struct uring_engine *u, struct conn *c);

/* ring.c: the primitives.  A submission slot, flushing the queue when it
 * is full; NULL (and fatal set) only when the kernel refuses submissions
 * altogether. */
struct io_uring_sqe *uring_sqe(struct uring_engine *u);
void uring_arm_recv(struct worker *w, struct conn *c);
void uring_stop_recv(struct worker *w, struct conn *c, struct uconn *uc);
void uring_consider_bulk(struct worker *w, struct conn *c, struct uconn *uc, uint32_t n);
void uring_maybe_finish(struct worker *w, struct conn *c, struct uconn *uc);
void uring_close(struct worker *w, struct conn *c, enum close_reason why);
void uring_release_if_done(struct worker *w, struct conn *c);

/* data.c: the echo path of one connection on ring buffers. */
void udata_on_recv(struct worker *w, struct conn *c, const struct io_uring_cqe *cqe);
void udata_on_send(struct worker *w, struct conn *c, const struct io_uring_cqe *cqe);
void udata_feed_starved(struct worker *w);
bool udata_begin_with(struct worker *w, struct conn *c, const uint8_t *data, uint32_t n);

/* bulk.c: bulk mode, see there. */
void ubulk_init(struct uring_engine *u, struct io_uring *ring);
void ubulk_maybe_enter(struct worker *w, struct conn *c, struct uconn *uc);
void ubulk_on_cqe(struct worker *w, struct conn *c, const struct io_uring_cqe *cqe, enum uop op);
void ubulk_turn(struct worker *w);
bool ubulk_spinning(const struct worker *w);
int ubulk_timeout_ms(const struct worker *w, int ms);
void ubulk_fini(struct worker *w);

/* dgram.c: UDP by multishot recvmsg into a buffer ring of its own.
 * uudp_init() returns 0 with u->udp left NULL when this worker has no UDP
 * or the kernel no multishot recvmsg (the caller then polls, UOP_UDP). */
int uudp_init(struct worker *w);
void uudp_on_cqe(struct worker *w, const struct io_uring_cqe *cqe, unsigned a);
void uudp_flush(struct worker *w);
void uudp_turn(struct worker *w);
uint64_t uudp_release_due(const struct worker *w);
void uudp_stop(struct worker *w);
/* A reload: slot a's socket is about to close (uudp_forget), or is new
 * in the row (uudp_serve, 0 or -errno). */
void uudp_forget(struct worker *w, unsigned a);
int uudp_serve(struct worker *w, unsigned a);
void uudp_fini(struct worker *w);

/* env.c: the environment knobs, parsed by uring_env_load() (see
 * engine.h) before any worker starts; read-only after. */
struct uring_env {
	uint32_t splice;	/* ECHOSRV_URING_SPLICE: bulk mode on */
	uint32_t spin_us;	/* ECHOSRV_URING_SPIN_US: poll after bulk bytes */
	uint32_t bufs_count;	/* ECHOSRV_URING_BUFS=COUNT[xSIZE]; 0: default */
	uint32_t bufs_size;	/* ... SIZE; 0: default */
	uint32_t direct;	/* ECHOSRV_URING_DIRECT: registered file table */
	uint32_t no_limit;	/* ECHOSRV_URING_NO_LIMIT: act as before 6.17 */
	uint32_t udp_mshot;	/* ECHOSRV_URING_UDP_MSHOT=0: UDP by readiness, as
				 * without multishot recvmsg */
};
extern struct uring_env uring_env;

/* probe.c; these are set before any worker starts.  uring_udp_why: why
 * not uring_udp_mshot, in words. */
extern bool uring_mshot_limit;
extern bool uring_udp_mshot;
extern char uring_udp_why[96];
int uring_ring_create(struct io_uring *ring, unsigned entries, unsigned cq_entries);
int uring_probe(const struct config *cfg, char *why, size_t len);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* The sockmap engine, one connection seen from user space once it is in
 * the SOCKHASH (loop.c puts it there; its close is here):
 * - counters: bytes in and out from TCP_INFO and SIOCOUTQ, since the bytes
 *   never pass through this process while the kernel echoes;
 * - epoll interest, which follows from the state: only EPOLLRDHUP while
 *   the kernel echoes (a redirected skb still wakes readers, and EPOLLIN
 *   would wake this thread for every message);
 * - half-close: the FIN goes back only once TCP_INFO shows every received
 *   byte written, polled with a backoff since no event says so;
 * - user mode: when the verdict program passes a connection up (its peer
 *   stopped reading), this file echoes it like the epoll engine, with
 *   --conn-buffer backpressure, and offers it back to the kernel once it
 *   holds nothing and has read everything passed up;
 * - the once-a-second sweep from TCP_INFO (the idle timeout is in
 *   idle.c and loop.c);
 * - the close: out of the maps, counters checked against what the program
 *   saw, slot freed. */
#include <bpf/bpf.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/sockmap/abi.h"
#include "engine/sockmap/sockmap.h"

#define READ_BUDGET 4			/* user-mode reads per event, for fairness */
/* Half-closed connections are looked at again after 1/8 of the time they
 * have been waiting, between these bounds: quick for the usual case of a
 * few microseconds, cheap for a peer that does not read its echo. */
#define FLUSH_MIN_NS (NSEC_PER_MSEC / 2)
#define FLUSH_MAX_NS (100 * NSEC_PER_MSEC)

/* --- TCP counters ---------------------------------------------------------- */

int sm_tcp_bytes(const struct conn *c, struct tcp_bytes *b)
{
	int fd = c->fd;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int outq = 0;

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || ioctl(fd, SIOCOUTQ, &outq))
		return ERR();
	b->in = ti.tcpi_bytes_received;
	b->out = ti.tcpi_bytes_acked + (uint64_t)outq;
	/* The peer's FIN takes one sequence number and TCP counts it as a
	 * received byte; it is not data. */
	switch (ti.tcpi_state) {
	case BPF_TCP_CLOSE_WAIT: case BPF_TCP_LAST_ACK: case BPF_TCP_CLOSING:
	case BPF_TCP_TIME_WAIT:
		b->in -= b->in > 0;
		break;
	}
	b->in -= MIN(b->in, c->pre_read);
	b->last_rx_ms = ti.tcpi_last_data_recv;
	return 0;
}

/* Bring c->bytes_in/out and the worker's statistics up to date. */
void sm_sync_bytes(struct worker *w, struct conn *c, const struct tcp_bytes *b)
{
	if (b->in > c->bytes_in)
		worker_recv(w, c, (uint32_t)MIN(b->in - c->bytes_in, UINT32_MAX));
	if (b->out > c->bytes_out)
		worker_sent(w, c, (uint32_t)MIN(b->out - c->bytes_out, UINT32_MAX));
}

/* --- epoll interest ---------------------------------------------------------- */

/* What to watch follows from the state: peer FIN while open; in user mode,
 * room to send while holding data, else more data until the end. */
uint32_t sm_interest(struct worker *w, const struct conn *c)
{
	const struct smc *m = smc_of(w, c);
	uint32_t ev = c->state == CONN_OPEN ? EPOLLRDHUP : 0;

	if (m->user)
		ev |= c->len ? EPOLLOUT : (m->eof ? 0 : EPOLLIN);
	return ev;
}

static void sm_watch(struct worker *w, struct conn *c)
{
	uint32_t ev = sm_interest(w, c);

	if (c->engine_ref == ev)
		return;
	c->engine_ref = ev;
	if (sm_ep_ctl(w->eng, EPOLL_CTL_MOD, c->fd, ev, conn_id(c)))
		sm_close(w, c, CLOSE_ERROR);
}

/* --- half-close ---------------------------------------------------------- */

static void flush_list_add(struct worker *w, struct conn *c)
{
	struct sm *s = w->eng;
	struct smc *m = smc_of(w, c);

	if (m->flush_listed)
		return;
	if (s->n_flush == s->cap_flush) {
		uint32_t cap = s->cap_flush ? 2 * s->cap_flush : 64;
		uint64_t *p = realloc(s->flush, cap * sizeof(*p));
		if (!p) {
			sm_close(w, c, CLOSE_ERROR);
			return;
		}
		s->flush = p;
		s->cap_flush = cap;
	}
	s->flush[s->n_flush++] = conn_id(c);
	m->flush_listed = true;
	m->flush_since = m->flush_next = w->now;
	s->flush_wake = w->now;
}

/* FIN back once everything received has been written, then close. */
static void try_finish(struct worker *w, struct conn *c)
{
	struct smc *m = smc_of(w, c);
	struct tcp_bytes b;

	if (c->state != CONN_FLUSHING || c->len)
		return;
	if (sm_tcp_bytes(c, &b)) {
		sm_close(w, c, CLOSE_ERROR);
		return;
	}
	if (b.out < b.in) {
		/* The kernel is still writing, or in user mode still passing
		 * data up: recv() reports the end of the stream as soon as
		 * nothing is readable yet, so EOF alone proves nothing. */
		if (m->user)
			sm_user_read(w, c);
		return;
	}
	sm_sync_bytes(w, c, &b);
	shutdown(c->fd, SHUT_WR);
	sm_close(w, c, CLOSE_PEER);
}

void sm_peer_fin(struct worker *w, struct conn *c)
{
	if (c->state == CONN_OPEN)
		conn_set_state(c, CONN_FLUSHING);
	sm_watch(w, c);			/* no more EPOLLRDHUP: it stays raised */
	if (c->state == CONN_FLUSHING)
		flush_list_add(w, c);
	if (c->state == CONN_FLUSHING)
		try_finish(w, c);
}

void sm_poll_flushing(struct worker *w)
{
	struct sm *s = w->eng;
	uint32_t keep = 0;

	s->flush_wake = UINT64_MAX;
	for (uint32_t i = 0; i < s->n_flush; i++) {
		struct conn *c = conn_lookup(&w->conns, s->flush[i]);
		if (!c || c->state != CONN_FLUSHING)
			continue;
		struct smc *m = smc_of(w, c);
		if (m->flush_next <= w->now) {
			try_finish(w, c);
			if (c->state != CONN_FLUSHING)
				continue;
			uint64_t wait = (w->now - m->flush_since) / 8;
			m->flush_next = w->now + MIN(MAX(wait, FLUSH_MIN_NS), FLUSH_MAX_NS);
		}
		s->flush_wake = MIN(s->flush_wake, m->flush_next);
		s->flush[keep++] = s->flush[i];
	}
	s->n_flush = keep;
}

/* --- user mode: the peer stopped reading, this file echoes ------------------ */

/* Everything passed up has been read and sent: offer the connection back
 * to the kernel, which takes it with the verdict of the next skb. */
static void ask_kernel_back(struct worker *w, struct conn *c)
{
	struct sm *s = w->eng;
	struct smc *m = smc_of(w, c);
	struct sm_ctl ctl = { .consumed = m->consumed, .want_kernel = 1 };

	if (!m->in_map || m->asked_at == m->consumed + 1)
		return;
	if (bpf_map_update_elem(s->bpf.ctl_fd, &m->cookie, &ctl, BPF_ANY))
		return;		/* stays in user mode: correct, just slower */
	m->asked_at = m->consumed + 1;
}

/* Send data back; keep what the kernel does not take and wait for room. */
static bool user_echo(struct worker *w, struct conn *c, const uint8_t *data, uint32_t n)
{
	ssize_t r = send(c->fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			sm_close(w, c, errno_reason(errno));
			return false;
		}
		r = 0;
	}
	if ((uint32_t)r == n)
		return true;
	if (conn_hold(c, data + r, n - (uint32_t)r, c->cap)) {
		sm_close(w, c, CLOSE_ERROR);
		return false;
	}
	sm_watch(w, c);
	return false;
}

void sm_user_read(struct worker *w, struct conn *c)
{
	struct sm *s = w->eng;
	struct smc *m = smc_of(w, c);

	for (int i = 0; i < READ_BUDGET; i++) {
		/* Within c->cap: the scratch buffer keeps its size from the
		 * start when a reload lowers --conn-buffer (epoll.c too). */
		ssize_t n = recv(c->fd, s->scratch, MIN(s->scratch_len, c->cap), MSG_DONTWAIT);

		if (n > 0) {
			m->consumed += (uint64_t)n;
			if (!user_echo(w, c, s->scratch, (uint32_t)n))
				return;		/* holding data, or closed */
			continue;
		}
		if (n == 0) {
			if (!m->eof) {	/* once: sm_peer_fin() may read again */
				m->eof = true;
				sm_peer_fin(w, c);
			}
		} else if (errno == EAGAIN || errno == EINTR) {
			ask_kernel_back(w, c);
		} else {
			sm_close(w, c, errno_reason(errno));
		}
		return;
	}
}

void sm_user_write(struct worker *w, struct conn *c)
{
	ssize_t r = send(c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR)
			sm_close(w, c, errno_reason(errno));
		return;
	}
	conn_sent(c, (uint32_t)r);
	if (c->len)
		return;
	sm_watch(w, c);
	if (c->state == CONN_FLUSHING)
		try_finish(w, c);
}

static void sm_set_user(struct worker *w, struct conn *c, bool user)
{
	struct smc *m = smc_of(w, c);

	if (m->user == user)
		return;
	m->user = user;
	m->eof = false;
	TRACE(TR_DATA, "conn=%llx worker=%u: %s", (unsigned long long)conn_id(c), w->id,
	      user ? "peer not reading, echoing in user space" : "echoing in the kernel again");
	sm_watch(w, c);
}

/* The program could not cut a retransmitted overlap off an skb (see
 * bpf/echo.bpf.c): echoing on would repeat bytes, so reset the peer. */
static void sm_broken(struct worker *w, struct conn *c)
{
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	TRACE(TR_ERROR, "worker %u: conn=%llx: a retransmitted segment could not be trimmed; "
	      "resetting the connection", w->id, (unsigned long long)conn_id(c));
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	sm_close(w, c, CLOSE_ERROR);
}

int sm_on_ring_event(void *ctx, void *data, size_t size)
{
	struct worker *w = ctx;
	const struct sm_event *ev = data;
	struct conn *c;

	if (size < sizeof(*ev))
		return 0;
	c = conn_lookup(&w->conns, ev->conn_id);
	if (!c || c->state == CONN_CLOSING)
		return 0;
	if (ev->kind == SM_EV_BROKEN)
		sm_broken(w, c);
	else
		sm_set_user(w, c, ev->kind == SM_EV_TO_USER);
	return 0;
}

/* For a report: the byte counters only, from TCP_INFO. */
void sm_count_one(struct conn *c, void *arg)
{
	struct tcp_bytes b;

	if (c->state != CONN_CLOSING && !sm_tcp_bytes(c, &b))
		sm_sync_bytes(arg, c, &b);
}

/* Once a second: statistics from TCP_INFO, and a look at the mode in case
 * an event was lost to a full ring. */
void sm_sweep_one(struct conn *c, void *arg)
{
	struct worker *w = arg;
	struct sm *s = w->eng;
	struct smc *m = smc_of(w, c);
	struct sm_state st;
	struct tcp_bytes b;

	if (c->state == CONN_CLOSING)
		return;
	if (!sm_tcp_bytes(c, &b))
		sm_sync_bytes(w, c, &b);
	if (!m->in_map || bpf_map_lookup_elem(s->bpf.state_fd, &m->cookie, &st))
		return;
	if (st.broken)
		sm_broken(w, c);
	else if (!m->user && st.mode == SM_USER)
		sm_set_user(w, c, true);
}

/* --- close --------------------------------------------------------------- */

/* At close: the program cuts retransmitted overlaps off the skbs it gets
 * (bpf/echo.bpf.c), so it must never have handled more bytes than TCP
 * received; if it did, some were echoed twice.  Say so, and say how much
 * it cut (DATA trace), which shows the overlaps happen. */
static void check_seen(struct worker *w, struct conn *c, const struct smc *m)
{
	struct sm *s = w->eng;
	struct sm_state st;

	if (!m->in_map || bpf_map_lookup_elem(s->bpf.state_fd, &m->cookie, &st))
		return;
	if (st.trimmed)
		TRACE(TR_DATA, "conn=%llx worker=%u: cut %llu retransmitted bytes it already had",
		      (unsigned long long)conn_id(c), w->id, (unsigned long long)st.trimmed);
	if (st.seen <= c->bytes_in)
		return;
	TRACE(TR_ERROR, "worker %u: conn=%llx: the kernel delivered %llu bytes more than TCP "
	      "received to the echo program (overlapping retransmission)", w->id,
	      (unsigned long long)conn_id(c), (unsigned long long)(st.seen - c->bytes_in));
}

void sm_close(struct worker *w, struct conn *c, enum close_reason why)
{
	struct sm *s = w->eng;
	struct tcp_bytes b;

	worker_closing(w, c, why);
	sm_idle_remove(w, c);
	/* After our own FIN (CLOSE_PEER) the counters were taken just before
	 * it: the FIN would count as a byte sent. */
	if (why != CLOSE_PEER && !sm_tcp_bytes(c, &b))
		sm_sync_bytes(w, c, &b);
	if (c->idx < s->n_per && s->per[c->idx].cookie)
		check_seen(w, c, &s->per[c->idx]);
	close(c->fd);	/* also leaves the SOCKHASH and the epoll set */
	if (c->idx < s->n_per && s->per[c->idx].cookie) {
		bpf_map_delete_elem(s->bpf.state_fd, &s->per[c->idx].cookie);
		bpf_map_delete_elem(s->bpf.ctl_fd, &s->per[c->idx].cookie);
		s->per[c->idx].cookie = 0;
	}
	conn_drop_buffer(c);
	worker_closed(w, c);
}

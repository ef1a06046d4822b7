/* The sockmap engine: bytes are echoed inside the kernel by an sk_skb
 * verdict program (bpf/echo.bpf.c) that redirects each received skb to the
 * egress of the same socket; user space only accepts, applies policy and
 * watches.  Needs root or CAP_BPF + CAP_NET_ADMIN; `auto` never picks it.
 *
 * Techniques and why:
 * - Insertion after accept, then a kick.  User space accepts, admits (ACL,
 *   limits: a refused peer is never inserted, so nothing is ever echoed to
 *   it), puts the socket in the SOCKHASH and then sets SO_RCVLOWAT, which
 *   makes TCP call the socket's data_ready once more.  Bytes that arrived
 *   before the insertion (or before accept: the kernel does not run the
 *   verdict on a socket without a struct socket) wait in the receive queue,
 *   and the verdict always consumes that queue from its head, so the kick
 *   gets them echoed first and in order.  No cgroup attachment is needed.
 * - Bounded memory: the program stops redirecting when the send side is
 *   full and passes the connection up (SM_USER); it arrives as a ring-buffer
 *   event, and from then on this file echoes it like the epoll engine does,
 *   with --conn-buffer backpressure, until the program takes it back.
 * - Epoll interest is EPOLLRDHUP only while the kernel echoes: a redirected
 *   skb still wakes the socket's readers, and EPOLLIN interest would wake
 *   this thread for every message.
 * - Counters come from TCP_INFO: bytes in = tcpi_bytes_received, bytes out
 *   = acked + still queued (SIOCOUTQ).  They feed the statistics at close
 *   and once a second, the half-close check (FIN back only once everything
 *   received has been written), and the idle timeout (tcpi_last_data_recv).
 * - Teardown: close(2) removes the socket from the SOCKHASH; the maps and
 *   the program are descriptors of this process only (sockmap_bpf.h). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "sockmap_abi.h"
#include "sockmap_bpf.h"
#include "util.h"
#include "worker.h"

#define EP_BATCH 256
#define SCRATCH_MAX (256u << 10)
#define READ_BUDGET 4			/* user-mode reads per event, for fairness */
#define TAG_WAKE UINT32_MAX
#define TAG_RING (UINT32_MAX - 1)
/* Half-closed connections are looked at again after 1/8 of the time they
 * have been waiting, between these bounds: quick for the usual case of a
 * few microseconds, cheap for a peer that does not read its echo. */
#define FLUSH_MIN_NS (NSEC_PER_MSEC / 2)
#define FLUSH_MAX_NS (100 * NSEC_PER_MSEC)
#define SYNC_NS NSEC_PER_SEC		/* byte counters into the statistics */

/* Engine state of one connection, beside struct conn (same index). */
struct smc {
	uint64_t cookie;
	uint64_t consumed;	/* bytes read in user mode, ever */
	uint64_t asked_at;	/* consumed when we last asked for the kernel back */
	bool user;		/* SM_USER: this file echoes */
	bool in_map;		/* in the SOCKHASH (else user mode for good) */
	bool eof;		/* user mode read the end of the stream */
	bool flush_listed;
	uint64_t flush_since;	/* ns: peer FIN seen */
	uint64_t flush_next;	/* ns: look again then */
};

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
	struct epoll_event events[EP_BATCH];
};

static void sm_close(struct worker *w, struct conn *c, enum close_reason why);

static int sm_probe(const struct config *cfg, char *why, size_t len)
{
	struct sm_bpf b;
	int r = sm_bpf_open(&b, 1, why, len);

	sm_bpf_close(&b);
	return r;
}

static int ep_ctl(struct sm *s, int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(s->epfd, op, fd, &ev) ? ERR() : 0;
}

static inline struct smc *smc_of(struct worker *w, const struct conn *c)
{
	return &((struct sm *)w->eng)->per[c->idx];
}

/* --- TCP counters ---------------------------------------------------------- */

struct tcp_bytes {
	uint64_t in;		/* received from the peer, in order */
	uint64_t out;		/* written to TCP by the echo (sent or queued) */
	uint32_t last_rx_ms;	/* since the last data was received */
};

static int tcp_bytes(int fd, struct tcp_bytes *b)
{
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
	b->last_rx_ms = ti.tcpi_last_data_recv;
	return 0;
}

/* Bring c->bytes_in/out and the worker's statistics up to date. */
static void sync_bytes(struct worker *w, struct conn *c, const struct tcp_bytes *b)
{
	if (b->in > c->bytes_in)
		worker_recv(w, c, (uint32_t)MIN(b->in - c->bytes_in, UINT32_MAX));
	if (b->out > c->bytes_out)
		worker_sent(w, c, (uint32_t)MIN(b->out - c->bytes_out, UINT32_MAX));
}

/* --- epoll interest ---------------------------------------------------------- */

/* What to watch follows from the state: peer FIN while open; in user mode,
 * room to send while holding data, else more data until the end. */
static uint32_t interest(struct worker *w, const struct conn *c)
{
	const struct smc *m = smc_of(w, c);
	uint32_t ev = c->state == CONN_OPEN ? EPOLLRDHUP : 0;

	if (m->user)
		ev |= c->len ? EPOLLOUT : (m->eof ? 0 : EPOLLIN);
	return ev;
}

static void watch(struct worker *w, struct conn *c)
{
	uint32_t ev = interest(w, c);

	if (c->engine_ref == ev)
		return;
	c->engine_ref = ev;
	if (ep_ctl(w->eng, EPOLL_CTL_MOD, c->fd, ev, conn_id(c)))
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

static void user_read(struct worker *w, struct conn *c);

/* FIN back once everything received has been written, then close. */
static void try_finish(struct worker *w, struct conn *c)
{
	struct smc *m = smc_of(w, c);
	struct tcp_bytes b;

	if (c->state != CONN_FLUSHING || c->len)
		return;
	if (tcp_bytes(c->fd, &b)) {
		sm_close(w, c, CLOSE_ERROR);
		return;
	}
	if (b.out < b.in) {
		/* The kernel is still writing, or in user mode still passing
		 * data up: recv() reports the end of the stream as soon as
		 * nothing is readable yet, so EOF alone proves nothing. */
		if (m->user)
			user_read(w, c);
		return;
	}
	sync_bytes(w, c, &b);
	shutdown(c->fd, SHUT_WR);
	sm_close(w, c, CLOSE_PEER);
}

static void peer_fin(struct worker *w, struct conn *c)
{
	if (c->state == CONN_OPEN)
		conn_set_state(c, CONN_FLUSHING);
	watch(w, c);			/* no more EPOLLRDHUP: it stays raised */
	if (c->state == CONN_FLUSHING)
		flush_list_add(w, c);
	if (c->state == CONN_FLUSHING)
		try_finish(w, c);
}

static void poll_flushing(struct worker *w)
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

static enum close_reason errno_reason(int err)
{
	return (err == ECONNRESET || err == EPIPE) ? CLOSE_RESET : CLOSE_ERROR;
}

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
	if (conn_hold(c, data + r, n - (uint32_t)r, w->srv->cfg.conn_buffer)) {
		sm_close(w, c, CLOSE_ERROR);
		return false;
	}
	watch(w, c);
	return false;
}

static void user_read(struct worker *w, struct conn *c)
{
	struct sm *s = w->eng;
	struct smc *m = smc_of(w, c);

	for (int i = 0; i < READ_BUDGET; i++) {
		ssize_t n = recv(c->fd, s->scratch, s->scratch_len, MSG_DONTWAIT);

		if (n > 0) {
			m->consumed += (uint64_t)n;
			if (!user_echo(w, c, s->scratch, (uint32_t)n))
				return;		/* holding data, or closed */
			continue;
		}
		if (n == 0) {
			if (!m->eof) {	/* once: peer_fin() may read again */
				m->eof = true;
				peer_fin(w, c);
			}
		} else if (errno == EAGAIN || errno == EINTR) {
			ask_kernel_back(w, c);
		} else {
			sm_close(w, c, errno_reason(errno));
		}
		return;
	}
}

static void user_write(struct worker *w, struct conn *c)
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
	watch(w, c);
	if (c->state == CONN_FLUSHING)
		try_finish(w, c);
}

static void set_user(struct worker *w, struct conn *c, bool user)
{
	struct smc *m = smc_of(w, c);

	if (m->user == user)
		return;
	m->user = user;
	m->eof = false;
	TRACE(TR_DATA, "conn=%llx worker=%u: %s", (unsigned long long)conn_id(c), w->id,
	      user ? "peer not reading, echoing in user space" : "echoing in the kernel again");
	watch(w, c);
}

/* The program could not cut a retransmitted overlap off an skb (see
 * bpf/echo.bpf.c): echoing on would repeat bytes, so reset the peer. */
static void broken(struct worker *w, struct conn *c)
{
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	TRACE(TR_ERROR, "worker %u: conn=%llx: a retransmitted segment could not be trimmed; "
	      "resetting the connection", w->id, (unsigned long long)conn_id(c));
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	sm_close(w, c, CLOSE_ERROR);
}

static int on_ring_event(void *ctx, void *data, size_t size)
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
		broken(w, c);
	else
		set_user(w, c, ev->kind == SM_EV_TO_USER);
	return 0;
}

/* Once a second: statistics from TCP_INFO, and a look at the mode in case
 * an event was lost to a full ring. */
static void sweep_one(struct conn *c, void *arg)
{
	struct worker *w = arg;
	struct sm *s = w->eng;
	struct smc *m = smc_of(w, c);
	struct sm_state st;
	struct tcp_bytes b;

	if (c->state == CONN_CLOSING)
		return;
	if (!tcp_bytes(c->fd, &b))
		sync_bytes(w, c, &b);
	if (!m->in_map || bpf_map_lookup_elem(s->bpf.state_fd, &m->cookie, &st))
		return;
	if (st.broken)
		broken(w, c);
	else if (!m->user && st.mode == SM_USER)
		set_user(w, c, true);
}

/* Idle connections: the list is only told about receives at each sweep, so
 * before the worker closes one, ask TCP when data last came in. */
static void refresh_idle(struct worker *w)
{
	struct idle_node *n;

	while (w->idle_ns && (n = idle_oldest(&w->idle)) && n->last_rx + w->idle_ns <= w->now) {
		struct conn *c = (struct conn *)n;
		struct tcp_bytes b;
		uint64_t ago;

		if (tcp_bytes(c->fd, &b)) {
			sm_close(w, c, CLOSE_ERROR);
			continue;
		}
		sync_bytes(w, c, &b);
		ago = (uint64_t)b.last_rx_ms * NSEC_PER_MSEC;
		if (ago >= w->idle_ns) {
			sm_close(w, c, CLOSE_IDLE);
			continue;
		}
		idle_touch(&w->idle, n, w->now - ago);
	}
}

/* --- accept and close ------------------------------------------------------ */

static int grow_per(struct sm *s, uint32_t idx)
{
	if (idx < s->n_per)
		return 0;
	uint32_t n = MAX(idx + 1, s->n_per ? 2 * s->n_per : 1024);
	struct smc *p = realloc(s->per, n * sizeof(*p));
	if (!p)
		return -ENOMEM;
	memset(p + s->n_per, 0, (n - s->n_per) * sizeof(*p));
	s->per = p;
	s->n_per = n;
	return 0;
}

/* Hand an admitted socket to the kernel's echo.  See the header comment
 * for why the SO_RCVLOWAT kick makes early bytes safe. */
static int insert(struct worker *w, struct conn *c)
{
	struct sm *s = w->eng;
	struct sm_state st = { .conn_id = conn_id(c), .mode = SM_KERNEL };
	socklen_t len = sizeof(uint64_t);
	uint64_t fd = (uint64_t)c->fd;
	struct smc *m;
	int one = 1, r;

	if ((r = grow_per(s, c->idx)))
		return r;
	m = &s->per[c->idx];
	memset(m, 0, sizeof(*m));
	if (getsockopt(c->fd, SOL_SOCKET, SO_COOKIE, &m->cookie, &len))
		return ERR();
	bpf_map_delete_elem(s->bpf.ctl_fd, &m->cookie);
	if (bpf_map_update_elem(s->bpf.state_fd, &m->cookie, &st, BPF_ANY))
		return ERR();
	if (!bpf_map_update_elem(s->bpf.socks_fd, &m->cookie, &fd, BPF_NOEXIST)) {
		m->in_map = true;
	} else if (errno == EOPNOTSUPP) {
		/* Only established sockets may join: the peer has already sent
		 * its FIN, so there is nothing left to speed up.  Echo it here. */
		bpf_map_delete_elem(s->bpf.state_fd, &m->cookie);
		m->user = true;
	} else {
		return ERR();
	}
	c->engine_ref = interest(w, c);
	if ((r = ep_ctl(s, EPOLL_CTL_ADD, c->fd, c->engine_ref, conn_id(c))))
		return r;
	if (m->in_map && setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)))
		return ERR();
	return 0;
}

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
		TRACE(TR_DATA, "conn=%llx worker=%u: cut %llu retransmitted bytes already echoed",
		      (unsigned long long)conn_id(c), w->id, (unsigned long long)st.trimmed);
	if (st.seen <= c->bytes_in)
		return;
	TRACE(TR_ERROR, "worker %u: conn=%llx: the kernel delivered %llu bytes more than TCP "
	      "received to the echo program (overlapping retransmission)", w->id,
	      (unsigned long long)conn_id(c), (unsigned long long)(st.seen - c->bytes_in));
}

static void sm_close(struct worker *w, struct conn *c, enum close_reason why)
{
	struct sm *s = w->eng;
	struct tcp_bytes b;

	worker_closing(w, c, why);
	/* After our own FIN (CLOSE_PEER) the counters were taken just before
	 * it: the FIN would count as a byte sent. */
	if (why != CLOSE_PEER && !tcp_bytes(c->fd, &b))
		sync_bytes(w, c, &b);
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

static void set_accepting(struct worker *w, bool on)
{
	struct sm *s = w->eng;
	int *row = listener_row(&w->srv->ls, w->id);

	for (unsigned a = 0; a < w->srv->ls.n_addr; a++) {
		if (row[a] < 0)
			continue;
		if (on)
			ep_ctl(s, EPOLL_CTL_ADD, row[a], EPOLLIN | (s->shared ? EPOLLEXCLUSIVE : 0), a);
		else
			ep_ctl(s, EPOLL_CTL_DEL, row[a], 0, a);
	}
}

/* Hand an admitted connection to the kernel's data path. */
static void adopt(struct worker *w, struct conn *c)
{
	int r = insert(w, c);

	if (r) {
		TRACE(TR_ERROR, "worker %u: cannot hand a connection to the kernel: %s",
		      w->id, strerror(-r));
		sm_close(w, c, CLOSE_ERROR);
	}
}

/* --- the loop ---------------------------------------------------------------- */

static void on_conn_event(struct worker *w, struct conn *c, uint32_t ev)
{
	struct smc *m = smc_of(w, c);

	if (ev & (EPOLLERR | EPOLLHUP)) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		sm_close(w, c, err ? errno_reason(err) : CLOSE_RESET);
		return;
	}
	if (m->user && (ev & EPOLLOUT))
		user_write(w, c);
	else if (m->user && (ev & EPOLLIN))
		user_read(w, c);
	if (c->state == CONN_OPEN && (ev & EPOLLRDHUP))
		peer_fin(w, c);
}

static void dispatch(struct worker *w, const struct epoll_event *ev)
{
	struct sm *s = w->eng;
	uint64_t tag = ev->data.u64;

	if ((tag >> 32) == 0) {
		uint32_t idx = (uint32_t)tag;
		uint64_t v;
		if (idx == TAG_WAKE) {
			ssize_t r = read(w->wake_fd, &v, sizeof(v));
			(void)r;	/* the phase is read in worker_tick() */
		} else if (idx == TAG_RING) {
			ring_buffer__consume(s->ring);
		} else if (!w->draining && !w->accept_resume) {
			worker_accept_batch(w, listener_row(&w->srv->ls, w->id)[idx], adopt);
		}
		return;
	}
	struct conn *c = conn_lookup(&w->conns, tag);
	if (c && c->state != CONN_CLOSING)
		on_conn_event(w, c, ev->events);
}

static int loop_timeout(struct worker *w)
{
	struct sm *s = w->eng;
	int t = worker_timeout_ms(w);
	uint64_t sync_in = s->next_sync > w->now ? s->next_sync - w->now : 0;
	int st = (int)((sync_in + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);

	if (w->srv->cfg.busy_poll)
		return 0;
	if (s->n_flush) {
		uint64_t in = s->flush_wake > w->now ? s->flush_wake - w->now : 0;
		int ft = (int)((in + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);
		if (t < 0 || t > ft)
			t = ft;
	}
	if (w->conns.active && (t < 0 || t > st))
		t = st;
	return t;
}

static int sm_run(struct worker *w)
{
	struct sm *s = w->eng;

	while (!worker_done(w)) {
		int n = epoll_wait(s->epfd, s->events, EP_BATCH, loop_timeout(w));
		if (n < 0 && errno != EINTR)
			return ERR();
		w->now = mono_ns();
		for (int i = 0; i < n; i++)
			dispatch(w, &s->events[i]);
		if (s->n_flush && s->flush_wake <= w->now)
			poll_flushing(w);
		if (w->now >= s->next_sync) {
			conn_table_each(&w->conns, sweep_one, w);
			s->next_sync = w->now + SYNC_NS;
		}
		refresh_idle(w);
		worker_tick(w);
	}
	return 0;
}

static int sm_init(struct worker *w)
{
	struct sm *s = calloc(1, sizeof(*s));
	char err[256];
	int r;

	if (!s)
		return -ENOMEM;
	w->eng = s;
	s->epfd = -1;
	s->bpf.obj = NULL;
	if ((r = sm_bpf_open(&s->bpf, w->srv->cfg.max_conns, err, sizeof(err)))) {
		TRACE(TR_ERROR, "worker %u: %s", w->id, err);
		return r;
	}
	s->shared = w->srv->ls.shared;
	s->scratch_len = MIN(w->srv->cfg.conn_buffer, SCRATCH_MAX);
	s->scratch = malloc(s->scratch_len);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!s->scratch || s->epfd < 0)
		return s->scratch ? ERR() : -ENOMEM;
	s->ring = ring_buffer__new(s->bpf.events_fd, on_ring_event, w, NULL);
	if (!s->ring)
		return -errno ? -errno : -ENOMEM;
	if ((r = ep_ctl(s, EPOLL_CTL_ADD, w->wake_fd, EPOLLIN, TAG_WAKE)) ||
	    (r = ep_ctl(s, EPOLL_CTL_ADD, s->bpf.events_fd, EPOLLIN, TAG_RING)))
		return r;
	s->next_sync = w->now + SYNC_NS;
	set_accepting(w, true);
	return 0;
}

static void sm_fini(struct worker *w)
{
	struct sm *s = w->eng;

	if (!s)
		return;
	if (s->ring)
		ring_buffer__free(s->ring);
	if (s->epfd >= 0)
		close(s->epfd);
	sm_bpf_close(&s->bpf);
	free(s->scratch);
	free(s->per);
	free(s->flush);
	free(s);
	w->eng = NULL;
}

/* Reports want current byte counts: take them from TCP_INFO now. */
static void sm_sync(struct worker *w)
{
	conn_table_each(&w->conns, sweep_one, w);
}

static void sm_stop_accepting(struct worker *w)
{
	set_accepting(w, false);
}

const struct engine_ops engine_sockmap = {
	.name = "sockmap",
	.probe = sm_probe,
	.init = sm_init,
	.run = sm_run,
	.close = sm_close,
	.set_accepting = set_accepting,
	.stop_accepting = sm_stop_accepting,
	.fini = sm_fini,
	.sync = sm_sync,
};

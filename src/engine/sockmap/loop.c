/* SPDX-License-Identifier: GPL-2.0-only */
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
 *   event, and from then on user space echoes it like the epoll engine does,
 *   with --conn-buffer backpressure, until the program takes it back.
 * - Exactly once: the program cuts retransmitted overlaps off the skbs it
 *   is handed (bpf/echo.bpf.c says why); at close this file checks from the
 *   program's own count that none got through (conn.c, at close).
 * - Everything about one inserted connection that user space still does
 *   (TCP_INFO counters, epoll interest, half-close, the user-mode echo,
 *   the close) is in conn.c, the idle deadlines in idle.c; this file is
 *   the loop, the ring buffer, insertion and accept, and the idle timeout's
 *   decision (expire_idle).  It calls down into conn.c and idle.c, which
 *   never call back.
 * - Teardown: close(2) removes the socket from the SOCKHASH; the maps and
 *   the program are descriptors of this process only (bpf.h). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/udp.h"
#include "engine/sockmap/abi.h"
#include "engine/sockmap/sockmap.h"

#define SCRATCH_MAX (256u << 10)
#define TAG_WAKE UINT32_MAX
#define TAG_RING (UINT32_MAX - 1)
#define TAG_PREAMBLE (UINT32_MAX - 2)	/* w->pre.epfd: PROXY headers */
/* UDP socket in slot a of the worker's row, served from user space (udp.h): TAG_UDP + a. */
#define TAG_UDP (UINT32_MAX - 3 - CONFIG_MAX_LISTEN)
#define SYNC_NS NSEC_PER_SEC		/* byte counters into the statistics */
#define MAP_ENTRIES_MAX 10000000u	/* as --max-conns */
#define SHARE_HEADROOM_DIV 4		/* a worker's maps: its share + 1/4 + 64 */
#define SHARE_HEADROOM_MIN 64

static int sm_probe(const struct config *cfg, char *why, size_t len)
{
	struct sm_bpf b;
	int r = sm_bpf_open(&b, 1, why, len);

	sm_bpf_close(&b);
	return r;
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
	if ((r = sm_idle_add(w, c)))
		return r;
	c->engine_ref = sm_interest(w, c);
	if ((r = sm_ep_ctl(s, EPOLL_CTL_ADD, c->fd, c->engine_ref, conn_id(c))))
		return r;
	if (m->in_map && setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)))
		return ERR();
	return 0;
}

/* The idle timeout (idle.c keeps the deadlines): a connection whose
 * deadline has come is closed if TCP received nothing since, and moves to
 * its new deadline if it did. */
static void expire_idle(struct worker *w)
{
	struct sm *s = w->eng;
	struct conn *c;

	while ((c = sm_idle_due(w))) {
		struct tcp_bytes b;
		uint64_t ago;

		if (sm_tcp_bytes(c, &b)) {
			sm_close(w, c, CLOSE_ERROR);
			continue;
		}
		sm_sync_bytes(w, c, &b);
		ago = MIN((uint64_t)b.last_rx_ms * NSEC_PER_MSEC, w->now);
		if (ago >= s->idle_ns) {
			sm_close(w, c, CLOSE_IDLE);
			continue;
		}
		sm_idle_defer(w, w->now - ago + s->idle_ns);
	}
}

static void set_accepting(struct worker *w, bool on)
{
	struct sm *s = w->eng;
	int *row = listener_row(&w->srv->ls, w->id);

	for (unsigned a = 0; a < w->srv->ls.n_addr; a++) {
		if (row[a] < 0)
			continue;
		if (on)
			sm_ep_ctl(s, EPOLL_CTL_ADD, row[a], EPOLLIN | (s->shared ? EPOLLEXCLUSIVE : 0), a);
		else
			sm_ep_ctl(s, EPOLL_CTL_DEL, row[a], 0, a);
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
		sm_user_write(w, c);
	else if (m->user && (ev & EPOLLIN))
		sm_user_read(w, c);
	if (c->state == CONN_OPEN && (ev & EPOLLRDHUP))
		sm_peer_fin(w, c);
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
		} else if (idx == TAG_PREAMBLE) {
			worker_preamble_ready(w);	/* adopt() inserts into the map only now */
		} else if (idx >= TAG_UDP && idx < TAG_UDP + CONFIG_MAX_LISTEN) {
			udp_ready_slot(w, idx - TAG_UDP);
		} else if (!w->draining && !w->accept_resume) {
			worker_accept_batch(w, listener_row(&w->srv->ls, w->id)[idx]);
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
	int it = sm_idle_timeout_ms(w);
	if (it >= 0 && (t < 0 || t > it))
		t = it;
	return t;
}

static int sm_run(struct worker *w)
{
	struct sm *s = w->eng;

	while (!worker_done(w)) {
		worker_waiting(w);
		int n = epoll_wait(s->epfd, s->events, EP_BATCH, loop_timeout(w));
		if (n < 0 && errno != EINTR)
			return ERR();
		w->now = mono_ns();
		for (int i = 0; i < n; i++)
			dispatch(w, &s->events[i]);
		if (s->n_flush && s->flush_wake <= w->now)
			sm_poll_flushing(w);
		if (w->now >= s->next_sync) {
			conn_table_each(&w->conns, sm_sweep_one, w);
			s->next_sync = w->now + SYNC_NS;
		}
		expire_idle(w);
		worker_tick(w);
	}
	return 0;
}

/* How many connections one worker's maps hold.  No worker can hold more
 * than --max-conns, nor more than the descriptor limit; beyond that, each
 * gets its share with headroom for an uneven spread (SO_REUSEPORT hashes
 * the peer's address and port, so shares differ by a few times their
 * square root).  worker_admit() refuses past it (as max-conns), a worker
 * on a shared socket stops accepting instead, so a full map never breaks
 * a connection.  ECHOSRV_SOCKMAP_ENTRIES overrides it, for tests. */
static int map_entries(const struct server *srv, uint32_t *out)
{
	const char *env = getenv("ECHOSRV_SOCKMAP_ENTRIES");
	uint64_t all = srv->cfg.max_conns ? srv->cfg.max_conns : 1, share;
	struct rlimit rl;

	if (env) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(env, &end, 10);
		if (*env < '0' || *env > '9' || errno || *end || v < 1 || v > MAP_ENTRIES_MAX)
			return -EINVAL;
		*out = (uint32_t)v;
		return 0;
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY)
		all = MIN(all, (uint64_t)rl.rlim_cur);
	share = (all + srv->n_workers - 1) / srv->n_workers;
	*out = (uint32_t)MIN(all, share + share / SHARE_HEADROOM_DIV + SHARE_HEADROOM_MIN);
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
	if ((r = map_entries(w->srv, &w->conn_cap))) {
		TRACE(TR_ERROR, "worker %u: ECHOSRV_SOCKMAP_ENTRIES must be a number from 1 to %u",
		      w->id, MAP_ENTRIES_MAX);
		return r;
	}
	if ((r = sm_bpf_open(&s->bpf, w->conn_cap, err, sizeof(err)))) {
		TRACE(TR_ERROR, "worker %u: %s", w->id, err);
		return r;
	}
	/* The idle timeout is this engine's own (engine/sockmap/idle.c says why). */
	s->idle_ns = w->idle_ns;
	w->idle_ns = 0;
	s->shared = w->srv->ls.shared;
	s->scratch_len = MIN(w->srv->cfg.conn_buffer, SCRATCH_MAX);
	s->scratch = malloc(s->scratch_len);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!s->scratch || s->epfd < 0)
		return s->scratch ? ERR() : -ENOMEM;
	s->ring = ring_buffer__new(s->bpf.events_fd, sm_on_ring_event, w, NULL);
	if (!s->ring)
		return -errno ? -errno : -ENOMEM;
	if ((r = sm_ep_ctl(s, EPOLL_CTL_ADD, w->wake_fd, EPOLLIN, TAG_WAKE)) ||
	    (r = sm_ep_ctl(s, EPOLL_CTL_ADD, s->bpf.events_fd, EPOLLIN, TAG_RING)) ||
	    (w->pre.epfd >= 0 &&
	     (r = sm_ep_ctl(s, EPOLL_CTL_ADD, w->pre.epfd, EPOLLIN, TAG_PREAMBLE))) ||
	    (r = udp_init_in(w, s->epfd, TAG_UDP)))
		return r;
	s->next_sync = w->now + SYNC_NS;
	set_accepting(w, true);
	return 0;
}

/* A reload added or removed one of the worker's UDP sockets (udp.h),
 * served from user space as epoll.c does: in or out of this loop's set. */
static int sm_udp_socket(struct worker *w, unsigned slot, int fd)
{
	struct sm *s = w->eng;

	if (fd < 0) {
		udp_remove_socket(w, slot);
		return 0;
	}
	return udp_add_socket_in(w, slot, fd, s->epfd, TAG_UDP);
}

static void sm_fini(struct worker *w)
{
	struct sm *s = w->eng;

	udp_fini(w);
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
	free(s->heap);
	free(s);
	w->eng = NULL;
}

/* Reports want current byte counts: take them from TCP_INFO now (at most
 * every 100 ms, worker_tick() sees to that). */
static void sm_sync(struct worker *w)
{
	conn_table_each(&w->conns, sm_count_one, w);
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
	.adopt = adopt,
	.close = sm_close,
	.set_accepting = set_accepting,
	.udp_socket = sm_udp_socket,
	.stop_accepting = sm_stop_accepting,
	.fini = sm_fini,
	.sync = sm_sync,
	.set_idle = sm_idle_set,
};

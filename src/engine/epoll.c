/* SPDX-License-Identifier: GPL-2.0-only */
/* The epoll engine: a level-triggered readiness loop, one per worker.
 *
 * Techniques: each readable connection gets one recv per loop iteration
 * (level-triggered epoll reports it again), so a bulk sender cannot starve
 * the others on the worker.  Data is received into one per-worker scratch
 * buffer and sent straight back; only what the kernel would not take yet is
 * copied into a per-connection buffer, and while that is non-empty the
 * connection is watched for EPOLLOUT instead of EPOLLIN, so at most
 * --conn-buffer bytes wait per connection and TCP throttles the peer.
 * epoll_event.data carries slot index and generation (conn_id), never a
 * descriptor; generation 0 tags the listeners and the wake-up eventfd.
 * Works on any kernel echosrv supports. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/udp.h"
#include "core/util.h"
#include "server/worker.h"

#define EP_BATCH 256
#define SCRATCH_MAX (256u << 10)
#define TAG_WAKE UINT32_MAX
#define TAG_PREAMBLE (UINT32_MAX - 1)	/* w->pre.epfd: PROXY headers */
/* UDP socket in slot a of the worker's row (udp.h): TAG_UDP + a. */
#define TAG_UDP (UINT32_MAX - 2 - CONFIG_MAX_LISTEN)

struct ep {
	int epfd;
	bool shared;		/* listeners are dups of one socket */
	uint8_t *scratch;
	uint32_t scratch_len;
	struct epoll_event events[EP_BATCH];
};

static int ep_probe(const struct config *cfg, char *why, size_t len)
{
	return 0;
}

static int ep_ctl(struct ep *e, int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(e->epfd, op, fd, &ev) ? ERR() : 0;
}

static void ep_set_accepting(struct worker *w, bool on)
{
	struct ep *e = w->eng;
	int *row = listener_row(&w->srv->ls, w->id);

	/* EPOLLEXCLUSIVE cannot be modified, so a shared listener is removed
	 * and re-added instead. */
	for (unsigned a = 0; a < w->srv->ls.n_addr; a++) {
		if (row[a] < 0)
			continue;
		if (on)
			ep_ctl(e, EPOLL_CTL_ADD, row[a], EPOLLIN | (e->shared ? EPOLLEXCLUSIVE : 0), a);
		else
			ep_ctl(e, EPOLL_CTL_DEL, row[a], 0, a);
	}
}

static int ep_init(struct worker *w)
{
	struct ep *e = calloc(1, sizeof(*e));
	int r;

	if (!e)
		return -ENOMEM;
	w->eng = e;
	e->shared = w->srv->ls.shared;
	e->scratch_len = MIN(w->srv->cfg.conn_buffer, SCRATCH_MAX);
	e->scratch = malloc(e->scratch_len);
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!e->scratch || e->epfd < 0)
		return e->scratch ? ERR() : -ENOMEM;
	if ((r = ep_ctl(e, EPOLL_CTL_ADD, w->wake_fd, EPOLLIN, TAG_WAKE)) ||
	    (r = udp_init_in(w, e->epfd, TAG_UDP)))
		return r;
	if (w->pre.epfd >= 0 && (r = ep_ctl(e, EPOLL_CTL_ADD, w->pre.epfd, EPOLLIN, TAG_PREAMBLE)))
		return r;
	ep_set_accepting(w, true);
	return 0;
}

/* A reload added or removed one of the worker's UDP sockets (udp.h): in
 * or out of this loop's set. */
static int ep_udp_socket(struct worker *w, unsigned slot, int fd)
{
	struct ep *e = w->eng;

	if (fd < 0) {
		udp_remove_socket(w, slot);
		return 0;
	}
	return udp_add_socket_in(w, slot, fd, e->epfd, TAG_UDP);
}

static void ep_fini(struct worker *w)
{
	struct ep *e = w->eng;

	udp_fini(w);
	if (!e)
		return;
	if (e->epfd >= 0)
		close(e->epfd);
	free(e->scratch);
	free(e);
	w->eng = NULL;
}

static void ep_close(struct worker *w, struct conn *c, enum close_reason why)
{
	worker_closing(w, c, why);
	close(c->fd);	/* also removes it from the epoll set */
	worker_closed(w, c);
}

static enum close_reason errno_reason(int err)
{
	return (err == ECONNRESET || err == EPIPE) ? CLOSE_RESET : CLOSE_ERROR;
}

/* Everything received has been sent: FIN back, then close. */
static void finish(struct worker *w, struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	ep_close(w, c, CLOSE_PEER);
}

static void watch(struct worker *w, struct conn *c, uint32_t events)
{
	if (c->engine_ref == events)
		return;
	c->engine_ref = events;
	if (ep_ctl(w->eng, EPOLL_CTL_MOD, c->fd, events, conn_id(c)))
		ep_close(w, c, CLOSE_ERROR);
}

/* Send data back; keep what the kernel does not take and wait for room. */
static void echo(struct worker *w, struct conn *c, const uint8_t *data, uint32_t n)
{
	ssize_t s = send(c->fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (s < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			ep_close(w, c, errno_reason(errno));
			return;
		}
		s = 0;
	}
	if (s > 0)
		worker_sent(w, c, (uint32_t)s);
	if ((uint32_t)s == n)
		return;
	if (conn_hold(c, data + s, n - (uint32_t)s, c->cap)) {
		ep_close(w, c, CLOSE_ERROR);
		return;
	}
	watch(w, c, EPOLLOUT);
}

static void on_readable(struct worker *w, struct conn *c)
{
	struct ep *e = w->eng;
	/* Never more than the connection's own bound: a reload that lowers
	 * --conn-buffer leaves the scratch buffer at its size from the start,
	 * and what send() does not take of a receive must fit in c->cap. */
	ssize_t n = recv(c->fd, e->scratch, MIN(e->scratch_len, c->cap), 0);

	if (n > 0) {
		worker_recv(w, c, (uint32_t)n);
		echo(w, c, e->scratch, (uint32_t)n);
	} else if (n == 0) {
		finish(w, c);	/* nothing is pending while we read */
	} else if (errno != EAGAIN && errno != EINTR) {
		ep_close(w, c, errno_reason(errno));
	}
}

static void on_writable(struct worker *w, struct conn *c)
{
	ssize_t s = send(c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (s < 0) {
		if (errno != EAGAIN && errno != EINTR)
			ep_close(w, c, errno_reason(errno));
		return;
	}
	worker_sent(w, c, (uint32_t)s);
	conn_sent(c, (uint32_t)s);
	if (c->len)
		return;
	if (c->state == CONN_FLUSHING)
		finish(w, c);
	else
		watch(w, c, EPOLLIN);
}

/* A new connection starts out watched for input. */
static void adopt(struct worker *w, struct conn *c)
{
	c->engine_ref = EPOLLIN;
	if (ep_ctl(w->eng, EPOLL_CTL_ADD, c->fd, EPOLLIN, conn_id(c)))
		ep_close(w, c, CLOSE_ERROR);
}

static void on_wake(struct worker *w)
{
	uint64_t v;
	ssize_t r = read(w->wake_fd, &v, sizeof(v));

	(void)r;	/* the phase is read in worker_tick() */
}

static void dispatch(struct worker *w, const struct epoll_event *ev)
{
	uint64_t tag = ev->data.u64;

	if ((tag >> 32) == 0) {
		uint32_t idx = (uint32_t)tag;
		if (idx == TAG_WAKE)
			on_wake(w);
		else if (idx == TAG_PREAMBLE)
			worker_preamble_ready(w);
		else if (idx >= TAG_UDP && idx < TAG_UDP + CONFIG_MAX_LISTEN)
			udp_ready_slot(w, idx - TAG_UDP);
		else if (!w->draining && !w->accept_resume)
			worker_accept_batch(w, listener_row(&w->srv->ls, w->id)[idx]);
		return;
	}
	struct conn *c = conn_lookup(&w->conns, tag);
	if (!c || c->state == CONN_CLOSING)
		return;	/* closed earlier in this batch */
	if (c->engine_ref == EPOLLOUT)
		on_writable(w, c);
	else
		on_readable(w, c);
}

static int ep_run(struct worker *w)
{
	struct ep *e = w->eng;
	bool busy = w->srv->cfg.busy_poll;

	while (!worker_done(w)) {
		worker_waiting(w);
		int n = epoll_wait(e->epfd, e->events, EP_BATCH, busy ? 0 : worker_timeout_ms(w));
		if (n < 0 && errno != EINTR)
			return ERR();
		w->now = mono_ns();
		for (int i = 0; i < n; i++)
			dispatch(w, &e->events[i]);
		worker_tick(w);
	}
	return 0;
}

static void ep_stop_accepting(struct worker *w)
{
	ep_set_accepting(w, false);
}

const struct engine_ops engine_epoll = {
	.name = "epoll",
	.probe = ep_probe,
	.init = ep_init,
	.run = ep_run,
	.adopt = adopt,
	.close = ep_close,
	.set_accepting = ep_set_accepting,
	.udp_socket = ep_udp_socket,
	.stop_accepting = ep_stop_accepting,
	.fini = ep_fini,
};

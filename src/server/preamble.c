/* SPDX-License-Identifier: GPL-2.0-only */
/* Connections waiting for their PROXY header; see preamble.h. */
#include "server/preamble.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/util.h"

/* The longest header is 16 + 65535 bytes: this many reads of the
 * scratch buffer take it whole, so one call never loops without bound. */
#define READ_ROUNDS (PROXY_V2_MAX / PREAMBLE_READ_MIN + 2)
#define READY_BATCH 32
#define READY_ROUNDS 8

int preamble_set_init(struct preamble_set *s, bool on)
{
	memset(s, 0, sizeof(*s));
	s->head.prev = s->head.next = &s->head;
	s->epfd = -1;
	if (on && (s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return ERR();
	return 0;
}

static void unlink_entry(struct preamble *e)
{
	if (e->next == e)
		return;
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
}

void preamble_free(struct preamble *e)
{
	unlink_entry(e);
	free(e);
}

void preamble_set_fini(struct preamble_set *s)
{
	while (s->head.next != &s->head) {
		struct preamble *e = s->head.next;
		close(e->fd);
		preamble_free(e);
	}
	s->n = 0;
	if (s->epfd >= 0)
		close(s->epfd);
	s->epfd = -1;
}

/* Read, feed the parser, and keep what came after the header in the
 * set's scratch buffer (e->extra) for done() to echo.  One recv() per
 * header in the usual case: a balancer's header arrives alone, in one
 * segment, and a peek-then-take would read it twice. */
static void pump(struct preamble_set *s, struct preamble *e, size_t len)
{
	for (int round = 0; round < READ_ROUNDS; round++) {
		/* MSG_DONTWAIT: io_uring's accept hands over a blocking
		 * socket, and a balancer that sends nothing (accepted after
		 * TCP_DEFER_ACCEPT runs out) must not stop the worker. */
		ssize_t n = recv(e->fd, s->scratch, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			e->state = PRE_GONE;	/* FIN or reset before the header ended */
			return;
		}
		size_t used;
		enum proxy_result r = proxy_feed(&e->parser, s->scratch, (size_t)n, &used);
		if (r != PROXY_MORE) {
			e->state = r == PROXY_DONE ? PRE_DONE : PRE_BAD;
			e->extra = s->scratch + used;
			e->n_extra = r == PROXY_DONE ? (uint32_t)((size_t)n - used) : 0;
			return;
		}
		if ((size_t)n < len)
			return;
	}
}

struct preamble *preamble_add(struct preamble_set *s, int fd, const struct sockaddr *via,
			      uint64_t now, uint64_t deadline, uint32_t read_max, int *err)
{
	struct preamble *e = calloc(1, sizeof(*e));

	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	e->prev = e->next = e;
	e->fd = fd;
	e->accepted = now;
	e->deadline = deadline;
	memcpy(&e->via, via, via->sa_family == AF_INET ? sizeof(struct sockaddr_in)
						      : sizeof(struct sockaddr_in6));
	proxy_init(&e->parser);
	pump(s, e, read_max);	/* a balancer usually sends the header with its SYN's ACK */
	if (e->state != PRE_WAIT)
		return e;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = e };
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		*err = ERR();
		free(e);
		return NULL;
	}
	/* Kept in deadline order.  That is arrival order until a reload
	 * shortens --proxy-timeout (or the idle timeout): then a newcomer's
	 * deadline is before those of the older ones, and at the tail it
	 * would wait behind them, past its own timeout.  So walk back from
	 * the tail, which costs nothing in the usual case. */
	struct preamble *after = s->head.prev;
	while (after != &s->head && after->deadline > deadline)
		after = after->prev;
	e->prev = after;
	e->next = after->next;
	after->next->prev = e;
	after->next = e;
	s->n++;
	*err = 0;
	return NULL;
}

/* e is finished: off the list and out of epoll (the caller keeps fd). */
static void take(struct preamble_set *s, struct preamble *e)
{
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, e->fd, NULL);
	unlink_entry(e);
	s->n--;
}

void preamble_ready(struct preamble_set *s, uint32_t read_max,
		    void (*done)(struct preamble *e, void *arg), void *arg)
{
	struct epoll_event ev[READY_BATCH];

	s->more = false;
	if (s->epfd < 0)
		return;
	/* Until epoll has nothing more, so an engine that polls epfd for an
	 * edge (io_uring) never misses one; bounded for fairness, and what
	 * the bound leaves is for the next turn of the loop (s->more). */
	for (int round = 0; round < READY_ROUNDS && s->n; round++) {
		int n = epoll_wait(s->epfd, ev, READY_BATCH, 0);
		for (int i = 0; i < n; i++) {
			struct preamble *e = ev[i].data.ptr;
			pump(s, e, read_max);
			if (e->state == PRE_WAIT)
				continue;
			take(s, e);
			done(e, arg);
		}
		if (n < READY_BATCH)
			return;
	}
	s->more = s->n > 0;
}

struct preamble *preamble_expired(struct preamble_set *s, uint64_t now)
{
	struct preamble *e = s->head.next;

	if (e == &s->head || e->deadline > now)
		return NULL;
	take(s, e);
	return e;
}

uint64_t preamble_next_deadline(const struct preamble_set *s)
{
	return s->head.next == &s->head ? UINT64_MAX : s->head.next->deadline;
}

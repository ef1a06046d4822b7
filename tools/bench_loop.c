/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench_loop.c - the measured part of one load thread of echosrv-bench.
 *
 * Each thread owns a share of the connections and one level-triggered epoll
 * loop over them.  A connection is only a handful of byte counters: what was
 * issued (messages the load model has asked for), sent and received; its
 * bytes are the pattern.h stream, so sending is send() straight from the
 * shared table and checking is one memcmp() per recv().  Per message the
 * loop does no allocation and no system call beyond the recv()/send() the
 * echo needs (several messages share one when they arrive together), so the
 * tool's own user-space work per message stays a small fraction of the
 * kernel's, which it cannot avoid any more than the server can.
 *
 * Closed loop (-p K): every connection keeps K messages in flight and issues
 * the next one when one completes; latency runs from the issue time.  Open
 * loop (-r R): message m of the thread's connection j is due at a fixed time
 * (go + (m*n + j) * gap); it is issued then whatever the server is doing and
 * its latency runs from that intended time, so a server that stalls is
 * charged for the whole stall, not just for the messages it let through.
 *
 * A run ends with a drain: no new messages (and no more of those issued but
 * not yet sent than completes the message under way), wait for the echoes
 * still owed, send FIN, and expect the server's FIN with nothing extra
 * before it.  The drain gives up when nothing has come back for the
 * --give-up time (2 s by default; TCP's retransmission backoff on a lossy
 * path can exceed it) or after that or BENCH_DRAIN_MAX_NS in all, whichever
 * is longer; whatever is still owed then is counted missing.
 */
#include "bench_loop.h"
#include "pattern.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define ISSUE_BATCH    4096              /* open-loop issues per loop turn */

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_user_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (uint64_t)ru.ru_utime.tv_sec * NS_PER_S + (uint64_t)ru.ru_utime.tv_usec * 1000;
}

const char *loop_errtext(int e, char *buf, size_t len)
{
	return strerror_r(e, buf, len);
}

static void set_out(struct loop *l, struct bconn *c, bool want)
{
	struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0),
				  .data.ptr = c };

	if (c->want_out == want)
		return;
	c->want_out = want;
	epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

void loop_close(struct loop *l, struct bconn *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	/* Segments this connection had to send again: on loopback, a sign that
	 * the kernel's queues, not the server, set the pace of the run. */
	if (!getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		l->res->retransmits += ti.tcpi_total_retrans;
	close(c->fd);           /* also leaves the epoll set */
	c->fd = -1;
	c->state = C_DONE;
	l->live--;
}

static void fail(struct loop *l, struct bconn *c, int e)
{
	enum bench_error kind = e == ECONNRESET ? BERR_reset :
				e == EPIPE ? BERR_early_close : BERR_io;
	char buf[64];

	if (churn_rejected(l, c, e))
		return;
	l->res->err[kind]++;
	l->res->missing_bytes += c->issued - c->received;
	bench_report(l->sh, "connection %u: %s after %llu of %llu bytes came back",
		     c->id, loop_errtext(e, buf, sizeof(buf)),
		     (unsigned long long)c->received, (unsigned long long)c->issued);
	loop_close(l, c);
}

void loop_flush(struct loop *l, struct bconn *c)
{
	while (c->sent < c->issued) {
		uint64_t len = c->issued - c->sent;
		ssize_t r;

		if (len > PATTERN_TAIL)
			len = PATTERN_TAIL;
		r = send(c->fd, pattern_at(c->base, c->sent), len, MSG_NOSIGNAL);
		if (r > 0) {
			c->sent += (uint64_t)r;
			if ((uint64_t)r < len)
				break;          /* socket buffer full */
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			break;
		fail(l, c, r < 0 ? errno : EIO);
		return;
	}
	set_out(l, c, c->sent < c->issued);
}

static void shut(struct loop *l, struct bconn *c)
{
	set_out(l, c, false);
	shutdown(c->fd, SHUT_WR);
	c->state = C_SHUT;
}

/* Counts the messages in buf (stream bytes from c->received on) that differ. */
static void check(struct loop *l, struct bconn *c, const uint8_t *buf, size_t n)
{
	const uint8_t *want = pattern_at(c->base, c->received);
	uint64_t size = l->o->size;
	size_t i = 0;

	if (memcmp(buf, want, n) == 0)
		return;
	while (i < n) {
		uint64_t off, msg;

		while (i < n && buf[i] == want[i])
			i++;
		if (i == n)
			break;
		off = c->received + i;
		msg = off / size;
		if (c->bad_msg != msg + 1) {
			c->bad_msg = msg + 1;
			l->res->mismatches++;
			bench_report(l->sh, "connection %u: byte %llu of its stream "
				     "(message %llu) came back as 0x%02x, sent 0x%02x",
				     c->id, (unsigned long long)off,
				     (unsigned long long)msg, buf[i], want[i]);
		}
		i = (size_t)((msg + 1) * size - c->received);   /* next message */
	}
}

static uint64_t intended_ns(const struct loop *l, const struct bconn *c, uint64_t m)
{
	uint64_t k = m * l->n + (uint64_t)(c - l->c);

	return l->sh->clk.go + (uint64_t)((double)k * l->gap_ns);
}

static void complete(struct loop *l, struct bconn *c, uint64_t m, uint64_t now)
{
	const struct bench_opts *o = l->o;
	uint64_t *slot = o->rate > 0 ? NULL : &c->t_issue[m % o->pipeline];
	uint64_t t0 = slot ? *slot : intended_ns(l, c, m);

	if (now >= l->sh->clk.measure && now < l->sh->clk.end) {
		hist_record(&l->res->lat, now > t0 ? now - t0 : 0);
		if (o->interval > 0)
			hist_record(&l->th->iv, now > t0 ? now - t0 : 0);
		l->res->messages++;
	}
	if (slot && !l->draining && !churn_retire(l, c, now)) {
		*slot = now;            /* message m + K reuses the slot */
		c->issued += o->size;
	}
}

/* Something came back: the drain measures its longest wait (--give-up). */
static void note_rx(struct loop *l, uint64_t now)
{
	if (l->draining && now - l->last_rx > l->res->drain_gap_ns)
		l->res->drain_gap_ns = now - l->last_rx;
	l->last_rx = now;
}

static void consume(struct loop *l, struct bconn *c, const uint8_t *buf,
		    size_t n, uint64_t now)
{
	uint64_t owed = c->sent - c->received, first, last;

	if (n > owed) {
		if (!c->extra_seen) {
			c->extra_seen = true;
			l->res->err[BERR_extra]++;
			bench_report(l->sh, "connection %u: %llu bytes came back that were "
				     "never sent (after byte %llu)", c->id,
				     (unsigned long long)(n - owed),
				     (unsigned long long)c->sent);
		}
		l->res->extra_bytes += n - owed;
		n = (size_t)owed;
	}
	note_rx(l, now);
	if (!n)
		return;
	check(l, c, buf, n);
	l->res->checked += n;
	first = c->received / l->o->size;
	c->received += n;
	last = c->received / l->o->size;
	for (uint64_t m = first; m < last; m++)
		complete(l, c, m, now);
	if (c->state != C_OPEN)
		return;
	/* A churn connection that has issued its last message is done too. */
	if ((l->draining || l->churn) && c->received == c->issued)
		shut(l, c);
	else if (c->sent < c->issued && !c->want_out)
		loop_flush(l, c);
}

static void on_eof(struct loop *l, struct bconn *c)
{
	note_rx(l, bench_now_ns());
	if (c->state == C_SHUT) {       /* the clean end */
		loop_close(l, c);
		return;
	}
	if (churn_rejected(l, c, 0))
		return;
	l->res->err[BERR_early_close]++;
	l->res->missing_bytes += c->issued - c->received;
	bench_report(l->sh, "connection %u: closed by the server after %llu of "
		     "%llu bytes came back", c->id, (unsigned long long)c->received,
		     (unsigned long long)c->issued);
	loop_close(l, c);
}

static void on_readable(struct loop *l, struct bconn *c)
{
	ssize_t r;

	do
		r = recv(c->fd, l->rbuf, RBUF_SIZE, 0);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		consume(l, c, l->rbuf, (size_t)r, bench_now_ns());
	else if (r == 0)
		on_eof(l, c);
	else if (errno != EAGAIN)
		fail(l, c, errno);
}

/* Open loop: issue every message whose time has come, a bounded number a turn. */
static void issue_due(struct loop *l, uint64_t now)
{
	for (unsigned i = 0; i < ISSUE_BATCH; i++) {
		uint64_t t = l->sh->clk.go + (uint64_t)((double)l->next_k * l->gap_ns);
		struct bconn *c;

		if (t > now)
			return;
		c = &l->c[l->next_k % l->n];
		l->next_k++;
		if (c->state != C_OPEN)
			continue;
		c->issued += l->o->size;
		if (!c->want_out)
			loop_flush(l, c);
	}
}

static void begin_drain(struct loop *l, uint64_t now)
{
	uint64_t size = l->o->size;

	l->draining = true;
	l->last_rx = now;
	for (unsigned i = 0; i < l->n; i++) {
		struct bconn *c = &l->c[i];

		if (c->state == C_CONNECTING)
			loop_close(l, c);       /* churn: not up yet, not owed */
		if (c->state != C_OPEN)
			continue;
		/* Unsent whole messages are withdrawn: only what is under way is owed. */
		c->issued = (c->sent + size - 1) / size * size;
		if (c->received == c->issued)
			shut(l, c);
	}
}

/* At the drain deadline: whatever is still owed never came back. */
static void finish(struct loop *l)
{
	uint64_t now = bench_now_ns();

	if (l->live > 0)
		note_rx(l, now);	/* the wait that ended in giving up */
	l->res->drain_ns = now - l->sh->clk.end;
	for (unsigned i = 0; i < l->n; i++) {
		struct bconn *c = &l->c[i];

		if (c->state == C_OPEN) {
			l->res->err[BERR_missing]++;
			l->res->missing_bytes += c->issued - c->received;
			bench_report(l->sh, "connection %u: %llu of %llu bytes never "
				     "came back", c->id,
				     (unsigned long long)(c->issued - c->received),
				     (unsigned long long)c->issued);
		} else if (c->state == C_SHUT) {
			l->res->no_fin++;
		}
		if (c->state != C_DONE)
			loop_close(l, c);
	}
}

int loop_wait(struct loop *l, struct epoll_event *ev, uint64_t timeout_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(timeout_ns / NS_PER_S),
			       .tv_nsec = (long)(timeout_ns % NS_PER_S) };

	return epoll_pwait2(l->ep, ev, MAX_EVENTS, &ts, NULL);
}

/* Moves between warm-up, measurement and drain; false once the run is over. */
static bool advance(struct loop *l, uint64_t now, uint64_t *wake)
{
	const struct bench_clock *k = &l->sh->clk;

	if (!l->measuring && !l->draining && now >= k->measure) {
		l->measuring = true;
		l->cpu0 = thread_cpu_ns();
		l->user0 = thread_user_ns();
	}
	if (!l->draining && now >= k->end) {
		l->res->cpu_ns = thread_cpu_ns() - l->cpu0;
		l->res->user_ns = thread_user_ns() - l->user0;
		l->measuring = false;
		begin_drain(l, now);
	}
	if (l->draining) {
		uint64_t most = l->o->give_up_ns > BENCH_DRAIN_MAX_NS ?
				l->o->give_up_ns : BENCH_DRAIN_MAX_NS;

		*wake = l->last_rx + l->o->give_up_ns;
		if (*wake > k->end + most)
			*wake = k->end + most;
		return l->live > 0 && now < *wake;
	}
	*wake = l->measuring ? k->end : k->measure;
	return true;
}

/* The measured run; with --interval, res changes only under th->lock,
 * which is let go while the loop waits, so main can take the figures. */
void loop_run(struct loop *l)
{
	struct epoll_event ev[MAX_EVENTS];
	uint64_t now = bench_now_ns(), wake;
	bool lock = l->o->interval > 0;

	if (lock)
		pthread_mutex_lock(&l->th->lock);
	if (l->o->rate == 0 && !l->churn) {
		for (unsigned i = 0; i < l->n; i++) {
			struct bconn *c = &l->c[i];

			for (unsigned m = 0; m < l->o->pipeline; m++)
				c->t_issue[m] = now;
			c->issued = l->o->size * l->o->pipeline;
			loop_flush(l, c);
		}
	}
	while (advance(l, now = bench_now_ns(), &wake)) {
		int n;

		if (l->o->rate > 0 && !l->draining) {
			uint64_t due;

			issue_due(l, now);
			due = l->sh->clk.go + (uint64_t)((double)l->next_k * l->gap_ns);
			if (due < wake)
				wake = due;
		}
		if (l->churn && !l->draining) {
			uint64_t due = churn_due(l, now);

			if (due < wake)
				wake = due;
		}
		if (lock)
			pthread_mutex_unlock(&l->th->lock);
		n = loop_wait(l, ev, wake > now ? wake - now : 0);
		if (lock)
			pthread_mutex_lock(&l->th->lock);
		now = bench_now_ns();
		for (int i = 0; i < n; i++) {
			struct bconn *c = ev[i].data.ptr;

			if (c->state == C_DONE)
				continue;
			if (c->state == C_CONNECTING) {
				churn_connected(l, c, now);
				continue;
			}
			if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_readable(l, c);
			if (c->state == C_OPEN && (ev[i].events & EPOLLOUT))
				loop_flush(l, c);
		}
	}
	finish(l);
	if (lock)
		pthread_mutex_unlock(&l->th->lock);
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* The log queue and its writer thread; see logq.h for the design.
 *
 * Positions (head, tail, gap) are byte counts since start, so "used" is
 * head - tail and a position maps into the ring modulo LOGQ_BYTES; a line
 * may wrap around the end of the ring.  Everything in `q` is guarded by
 * q.mu except `state`, `dropped` and the `shown_*` copies, which are read
 * without it: a metrics scrape reads the queue's fill from them, so it
 * never waits on (or delays) a worker putting a line. */
#include "core/logq.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"

#define POLL_MS 100	/* how often a writer waiting on the sink looks at stop */

enum { LQ_NONE, LQ_RUNNING, LQ_STOPPED };

static struct {
	pthread_mutex_t mu;
	pthread_cond_t wake;	/* the writer: lines, a reopen or a stop */
	pthread_cond_t idle;	/* flush and stop: the writer caught up or ended */
	char *ring;
	uint64_t head, tail;	/* next byte to fill, next byte to write */
	uint64_t lines;		/* lines between tail and head */
	uint64_t gap_pos;	/* where the first unreported drop happened */
	uint64_t gap_n;		/* drops not reported yet (0: no gap) */
	uint64_t stop_at;	/* mono_ns deadline once stopping, else 0 */
	bool sleeping;		/* the writer waits on `wake` */
	bool busy;		/* the writer holds bytes it has not written */
	bool reopen;
	bool done;		/* the writer thread has returned */
	pthread_t thread;
	struct logq_ops ops;
	_Atomic int state;
	_Atomic uint64_t dropped;
	_Atomic uint64_t shown_lines, shown_bytes;	/* lines, head - tail */
} q = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
};

static void ring_copy_in(uint64_t pos, const char *src, size_t n)
{
	size_t off = (size_t)(pos % LOGQ_BYTES), first = MIN(n, LOGQ_BYTES - off);

	memcpy(q.ring + off, src, first);
	memcpy(q.ring, src + first, n - first);
}

static void ring_copy_out(uint64_t pos, char *dst, size_t n)
{
	size_t off = (size_t)(pos % LOGQ_BYTES), first = MIN(n, LOGQ_BYTES - off);

	memcpy(dst, q.ring + off, first);
	memcpy(dst + first, q.ring, n - first);
}

/* Under q.mu, after head, tail or lines changed. */
static void show_fill(void)
{
	atomic_store_explicit(&q.shown_lines, q.lines, memory_order_relaxed);
	atomic_store_explicit(&q.shown_bytes, q.head - q.tail, memory_order_relaxed);
}

int logq_put(const char *line, size_t len)
{
	bool wake;

	int state = atomic_load_explicit(&q.state, memory_order_acquire);

	if (state != LQ_RUNNING)
		return state == LQ_NONE ? -ENOTCONN : -ESHUTDOWN;
	pthread_mutex_lock(&q.mu);
	if (q.head - q.tail + len > LOGQ_BYTES) {
		if (!q.gap_n++)
			q.gap_pos = q.head;
		atomic_fetch_add_explicit(&q.dropped, 1, memory_order_relaxed);
		pthread_mutex_unlock(&q.mu);
		return 0;
	}
	ring_copy_in(q.head, line, len);
	q.head += len;
	q.lines++;
	show_fill();
	wake = q.sleeping;
	q.sleeping = false;
	pthread_mutex_unlock(&q.mu);
	if (wake)
		pthread_cond_signal(&q.wake);
	return 0;
}

static unsigned count_lines(const char *p, size_t n)
{
	unsigned c = 0;

	for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
		c++;
	return c;
}

/* Under q.mu: move the next whole lines (up to the gap, if any) into buf.
 * Returns their length; 0 with *report set when the gap is next. */
static size_t take(char *buf, uint64_t *report)
{
	uint64_t avail = q.head - q.tail;

	*report = 0;
	if (q.gap_n && q.gap_pos == q.tail) {
		*report = q.gap_n;
		q.gap_n = 0;
		return 0;
	}
	if (q.gap_n)
		avail = MIN(avail, q.gap_pos - q.tail);
	size_t n = (size_t)MIN(avail, (uint64_t)LOGQ_CHUNK);
	ring_copy_out(q.tail, buf, n);
	if (n < avail) {	/* cut after the last whole line (lines < LOGQ_CHUNK) */
		const char *nl = memrchr(buf, '\n', n);
		n = nl ? (size_t)(nl - buf) + 1 : n;
	}
	q.tail += n;
	q.lines -= count_lines(buf, n);
	show_fill();
	return n;
}

static bool past_stop(void)
{
	pthread_mutex_lock(&q.mu);
	bool past = q.stop_at && mono_ns() >= q.stop_at;
	pthread_mutex_unlock(&q.mu);
	return past;
}

/* Write buf to the sink, waiting for it as long as it takes unless a stop's
 * deadline passes.  Lines the sink refuses (a closed pipe, a full disk) are
 * counted as dropped: there is nowhere else to say so. */
static void write_out(const char *buf, size_t n)
{
	struct pollfd pfd = { .fd = q.ops.fd, .events = POLLOUT };

	while (n) {
		int pr = poll(&pfd, 1, POLL_MS);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0) {
			if (past_stop())
				break;
			continue;
		}
		ssize_t w = write(q.ops.fd, buf, n);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			break;
		buf += w;
		n -= (size_t)w;
	}
	if (n)
		atomic_fetch_add_explicit(&q.dropped, count_lines(buf, n), memory_order_relaxed);
}

static bool has_work(void)
{
	return q.head != q.tail || q.gap_n || q.reopen;
}

static void *writer_main(void *arg)
{
	char buf[LOGQ_CHUNK];
	uint64_t report;

	pthread_mutex_lock(&q.mu);
	for (;;) {
		while (!has_work() && !q.stop_at) {
			q.sleeping = true;
			pthread_cond_broadcast(&q.idle);
			pthread_cond_wait(&q.wake, &q.mu);
		}
		if (!has_work() || (q.stop_at && mono_ns() >= q.stop_at))
			break;
		if (q.reopen) {
			q.reopen = false;
			pthread_mutex_unlock(&q.mu);
			q.ops.reopen();
			pthread_mutex_lock(&q.mu);
			continue;
		}
		size_t n = take(buf, &report);
		q.busy = true;
		pthread_mutex_unlock(&q.mu);
		if (report)
			n = q.ops.dropped(buf, sizeof(buf), report);
		write_out(buf, n);
		pthread_mutex_lock(&q.mu);
		q.busy = false;
	}
	/* What the deadline left unwritten is lost: count it. */
	atomic_fetch_add_explicit(&q.dropped, q.lines, memory_order_relaxed);
	q.done = true;
	pthread_cond_broadcast(&q.idle);
	pthread_mutex_unlock(&q.mu);
	return NULL;
}

int logq_start(const struct logq_ops *ops)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	int r;

	if (atomic_load(&q.state) != LQ_NONE)
		return -EALREADY;
	q.ring = malloc(LOGQ_BYTES);	/* untouched pages cost no memory */
	if (!q.ring)
		return -ENOMEM;
	q.ops = *ops;
	/* Deadlines are on the monotonic clock, like every timer here. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q.wake, NULL);
	pthread_cond_init(&q.idle, &ca);
	pthread_condattr_destroy(&ca);
	/* The writer takes no signals, whenever it is started: they belong to
	 * the main thread's sigwait. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&q.thread, NULL, writer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		free(q.ring);
		q.ring = NULL;
		return r;
	}
	atomic_store_explicit(&q.state, LQ_RUNNING, memory_order_release);
	return 0;
}

int logq_reopen(void)
{
	if (atomic_load(&q.state) != LQ_RUNNING)
		return -ENOTCONN;
	pthread_mutex_lock(&q.mu);
	q.reopen = true;
	q.sleeping = false;
	pthread_cond_signal(&q.wake);
	pthread_mutex_unlock(&q.mu);
	return 0;
}

static struct timespec deadline_in(unsigned ms)
{
	uint64_t t = mono_ns() + (uint64_t)ms * NSEC_PER_MSEC;

	return (struct timespec){ (time_t)(t / NSEC_PER_SEC), (long)(t % NSEC_PER_SEC) };
}

/* Under q.mu: wait on `idle` until done() or the deadline; 0 or -ETIMEDOUT. */
static int wait_idle(bool (*done)(void), unsigned ms)
{
	struct timespec until = deadline_in(ms);

	while (!done())
		if (pthread_cond_timedwait(&q.idle, &q.mu, &until) == ETIMEDOUT)
			return done() ? 0 : -ETIMEDOUT;
	return 0;
}

static bool caught_up(void)
{
	return q.done || (!has_work() && !q.busy);
}

static bool ended(void)
{
	return q.done;
}

int logq_flush(unsigned ms)
{
	if (atomic_load(&q.state) != LQ_RUNNING)
		return 0;
	pthread_mutex_lock(&q.mu);
	int r = wait_idle(caught_up, ms);
	pthread_mutex_unlock(&q.mu);
	return r;
}

void logq_stop(unsigned ms)
{
	int expect = LQ_RUNNING;

	if (!atomic_compare_exchange_strong(&q.state, &expect, LQ_STOPPED))
		return;
	pthread_mutex_lock(&q.mu);
	q.stop_at = mono_ns() + (uint64_t)ms * NSEC_PER_MSEC;
	q.sleeping = false;
	pthread_cond_signal(&q.wake);
	/* A little longer than the writer's own deadline: it looks at it
	 * every POLL_MS.  A writer still stuck after that (in a write another
	 * process's output made block) is left to the process's exit. */
	int r = wait_idle(ended, ms + 2 * POLL_MS);
	pthread_mutex_unlock(&q.mu);
	if (!r)
		pthread_join(q.thread, NULL);
}

void logq_get_stats(struct logq_stats *st)
{
	st->lines = atomic_load_explicit(&q.shown_lines, memory_order_relaxed);
	st->bytes = atomic_load_explicit(&q.shown_bytes, memory_order_relaxed);
	st->dropped = atomic_load_explicit(&q.dropped, memory_order_relaxed);
	st->capacity = LOGQ_BYTES;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* preload_fail_loop.so: LD_PRELOAD it into echosrv to make a worker's
 * event loop fail on demand, as a broken epoll set or ring would.
 *
 *   FAIL_LOOP_THREAD=echosrv-w1   the thread (by name) whose wait fails;
 *                                 a trailing '*' matches a prefix
 *                                 ("echosrv-w*": every worker)
 *   FAIL_LOOP_TRIGGER=PATH        fail once this file exists, so the test
 *                                 decides when (connections open first)
 *
 * It replaces the calls each engine's loop waits in: epoll_wait (epoll,
 * sockmap) and liburing's io_uring_submit_and_wait_timeout /
 * io_uring_submit_and_get_events (io_uring).  liburing 2.3 enters the
 * kernel with inline syscalls, so io_uring_enter itself cannot be
 * interposed; these two are exported functions that echosrv calls through
 * the PLT.  A failing call returns EIO ("Input/output error").  Workers
 * name their threads before their first wait, so the name is read once
 * per thread.  A bad setting aborts the process at load time. */
#include <dlfcn.h>
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

static const char *want, *trigger;
static size_t want_len;
static bool want_prefix;

__attribute__((constructor))
static void setup(void)
{
	want = getenv("FAIL_LOOP_THREAD");
	trigger = getenv("FAIL_LOOP_TRIGGER");
	if (!want || !*want || !trigger || trigger[0] != '/') {
		fprintf(stderr, "preload_fail_loop: set FAIL_LOOP_THREAD=NAME[*] and "
			"FAIL_LOOP_TRIGGER=/absolute/path\n");
		abort();
	}
	want_len = strlen(want);
	want_prefix = want[want_len - 1] == '*';
	if (want_prefix)
		want_len--;
	if (want_len >= 16) {	/* thread names are at most 15 bytes */
		fprintf(stderr, "preload_fail_loop: FAIL_LOOP_THREAD longer than a thread name\n");
		abort();
	}
}

static bool should_fail(void)
{
	static __thread int mine = -1;	/* -1: not looked at yet */

	if (mine < 0) {
		char name[16] = "";
		prctl(PR_GET_NAME, name);
		mine = want_prefix ? !strncmp(name, want, want_len) : !strcmp(name, want);
	}
	return mine && access(trigger, F_OK) == 0;
}

int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	static int (*real)(int, struct epoll_event *, int, int);

	if (should_fail()) {
		errno = EIO;
		return -1;
	}
	if (!real)
		real = (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT, "epoll_wait");
	return real(epfd, ev, max, timeout);
}

int io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe,
				     unsigned wait_nr, struct __kernel_timespec *ts,
				     sigset_t *sigmask)
{
	static int (*real)(struct io_uring *, struct io_uring_cqe **, unsigned,
			   struct __kernel_timespec *, sigset_t *);

	if (should_fail())
		return -EIO;
	if (!real)
		real = (int (*)(struct io_uring *, struct io_uring_cqe **, unsigned,
				struct __kernel_timespec *, sigset_t *))
			dlsym(RTLD_NEXT, "io_uring_submit_and_wait_timeout");
	return real(ring, cqe, wait_nr, ts, sigmask);
}

int io_uring_submit_and_get_events(struct io_uring *ring)
{
	static int (*real)(struct io_uring *);

	if (should_fail())
		return -EIO;
	if (!real)
		real = (int (*)(struct io_uring *))dlsym(RTLD_NEXT, "io_uring_submit_and_get_events");
	return real(ring);
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* preload_stall.so: LD_PRELOAD it into echosrv to hold a thread still on
 * demand, for the health and readiness tests (/healthz, /readyz).
 *
 *   STALL_THREAD=echosrv-w1   the thread (by name) whose loop stalls; a
 *                             trailing '*' matches a prefix
 *   STALL_TRIGGER=PATH        it stalls while this file exists
 *   STALL_START=PATH          the port file's rename (the last step of
 *                             start-up, after --metrics is up) waits while
 *                             this file exists
 *
 * A stalled loop waits in the engine's wait call, before making it: at
 * epoll_wait (epoll, sockmap) or liburing's io_uring_submit_and_wait_timeout
 * and io_uring_submit_and_get_events (io_uring; see preload_fail_loop.c for
 * why these).  It sleeps in 10 ms steps until the file is gone, at most
 * STALL_MAX_S, so a test that dies cannot leave the server stuck for ever.
 * Either variable may be unset. */
#include <dlfcn.h>
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define STALL_MAX_S 120

static const char *want, *trigger, *start_trigger;
static size_t want_len;
static bool want_prefix;

__attribute__((constructor))
static void setup(void)
{
	want = getenv("STALL_THREAD");
	trigger = getenv("STALL_TRIGGER");
	start_trigger = getenv("STALL_START");
	if ((trigger && trigger[0] != '/') || (start_trigger && start_trigger[0] != '/') ||
	    (trigger && (!want || !*want))) {
		fprintf(stderr, "preload_stall: set STALL_THREAD=NAME[*] with "
			"STALL_TRIGGER=/absolute/path, and/or STALL_START=/absolute/path\n");
		abort();
	}
	if (want) {
		want_len = strlen(want);
		want_prefix = want_len && want[want_len - 1] == '*';
		want_len -= want_prefix;
	}
}

static void wait_while(const char *path)
{
	struct timespec step = { 0, 10 * 1000 * 1000 };

	for (int i = 0; i < STALL_MAX_S * 100 && access(path, F_OK) == 0; i++)
		nanosleep(&step, NULL);
}

static void maybe_stall(void)
{
	static __thread int mine = -1;	/* -1: not looked at yet */

	if (!trigger)
		return;
	if (mine < 0) {
		char name[16] = "";
		prctl(PR_GET_NAME, name);
		mine = want_prefix ? !strncmp(name, want, want_len) : !strcmp(name, want);
	}
	if (mine)
		wait_while(trigger);
}

int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	static int (*real)(int, struct epoll_event *, int, int);

	maybe_stall();
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

	maybe_stall();
	if (!real)
		real = (int (*)(struct io_uring *, struct io_uring_cqe **, unsigned,
				struct __kernel_timespec *, sigset_t *))
			dlsym(RTLD_NEXT, "io_uring_submit_and_wait_timeout");
	return real(ring, cqe, wait_nr, ts, sigmask);
}

int io_uring_submit_and_get_events(struct io_uring *ring)
{
	static int (*real)(struct io_uring *);

	maybe_stall();
	if (!real)
		real = (int (*)(struct io_uring *))dlsym(RTLD_NEXT, "io_uring_submit_and_get_events");
	return real(ring);
}

int renameat(int olddfd, const char *oldpath, int newdfd, const char *newpath)
{
	static int (*real)(int, const char *, int, const char *);

	if (start_trigger)
		wait_while(start_trigger);
	if (!real)
		real = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
	return real(olddfd, oldpath, newdfd, newpath);
}

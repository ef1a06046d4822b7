/* SPDX-License-Identifier: GPL-2.0-only */
/* preload_locks.so: LD_PRELOAD it into echosrv to learn whether the
 * metrics thread takes a mutex that a worker thread also takes (a scrape
 * must cost the data path nothing: no lock a worker waits on).
 *
 *   LOCKS_OUT=PATH   a line "shared MUTEX-ADDRESS" is appended for each
 *                    mutex locked both by echosrv-metrics and by a worker
 *                    (echosrv-w*), the first time it is seen so
 *
 * Only pthread_mutex_lock and pthread_mutex_trylock called through the
 * dynamic linker are seen (echosrv's own code and the libraries it links);
 * glibc's internal locks (malloc's arenas) are not, and are not the kind
 * of lock this is about.  The table of mutexes is fixed-size and lock-free;
 * when it is full, further mutexes go unseen. */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define SLOTS 4096	/* a power of two */
#define BY_METRICS 1u
#define BY_WORKER 2u

static int (*real_lock)(pthread_mutex_t *);
static int (*real_trylock)(pthread_mutex_t *);
static const char *out;
static _Atomic uintptr_t keys[SLOTS];
static _Atomic unsigned who[SLOTS];
static __thread unsigned my_kind = ~0u;

/* Also from the first lock, which a sanitizer runtime may take before our
 * constructor has run. */
static void resolve(void)
{
	if (!real_lock)
		real_lock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_lock");
	if (!real_trylock)
		real_trylock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_trylock");
}

__attribute__((constructor))
static void setup(void)
{
	resolve();
	out = getenv("LOCKS_OUT");
	if (!real_lock || !real_trylock || !out || out[0] != '/') {
		fprintf(stderr, "preload_locks: set LOCKS_OUT=/absolute/path\n");
		abort();
	}
}

/* The calling thread's kind; its name is set once, early, so it is read
 * once the thread has one of the names we know. */
static unsigned kind(void)
{
	char name[16] = "";

	if (my_kind != ~0u)
		return my_kind;
	prctl(PR_GET_NAME, name, 0, 0, 0);
	if (!strcmp(name, "echosrv-metrics"))
		return my_kind = BY_METRICS;
	if (!strncmp(name, "echosrv-w", 9))
		return my_kind = BY_WORKER;
	return 0;	/* not known yet: ask again next time */
}

static void report(uintptr_t m)
{
	char line[64];
	int fd = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	int n = snprintf(line, sizeof(line), "shared %#lx\n", (unsigned long)m);

	if (fd >= 0) {
		if (write(fd, line, (size_t)n) != n)
			(void)0;
		close(fd);
	}
}

static void note(pthread_mutex_t *mu)
{
	unsigned k = kind();
	uintptr_t m = (uintptr_t)mu;

	if (!k || !out)
		return;
	for (unsigned i = 0, h = (unsigned)(m >> 4) & (SLOTS - 1); i < SLOTS;
	     i++, h = (h + 1) & (SLOTS - 1)) {
		uintptr_t cur = atomic_load(&keys[h]), zero = 0;
		if (!cur && !atomic_compare_exchange_strong(&keys[h], &zero, m))
			cur = zero;	/* another thread took the slot first */
		else if (!cur)
			cur = m;
		if (cur != m)
			continue;
		unsigned before = atomic_fetch_or(&who[h], k);
		if ((before | k) == (BY_METRICS | BY_WORKER) && before != (BY_METRICS | BY_WORKER))
			report(m);
		return;
	}
}

int pthread_mutex_lock(pthread_mutex_t *mu)
{
	resolve();
	note(mu);
	return real_lock(mu);
}

int pthread_mutex_trylock(pthread_mutex_t *mu)
{
	resolve();
	note(mu);
	return real_trylock(mu);
}

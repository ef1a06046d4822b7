/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * proctree.c - the CPU time of a server process and all its descendants
 * (--server-pid), from /proc.
 *
 * A forking server (socat, xinetd, ncat -e) does its echoing in children,
 * one or two per connection, so the parent's own time says nothing.  Every
 * process in the tree counts its own user+system time and that of the
 * children it has reaped (cutime, cstime), so time is neither lost nor
 * counted twice when a child exits between two snapshots.
 */
#include "cpustat.h"

#include <ctype.h>
#include <stdbool.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pstat {
	int pid, ppid;
	uint64_t ticks;
};

static int read_pstat(const char *pid, struct pstat *ps)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st, cut, cst;
	int ppid;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');      /* the command name may hold spaces */
	if (!p || sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
			 &ppid, &ut, &st, &cut, &cst) != 5)
		return -EINVAL;
	ps->pid = atoi(pid);
	ps->ppid = ppid;
	ps->ticks = ut + st + cut + cst;
	return 0;
}

static int by_pid(const void *a, const void *b)
{
	const struct pstat *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Is all[i] root or below it?  Walks up the ppid links (all[] is sorted by
 * pid), at most n steps: thousands of children cost milliseconds. */
static bool in_tree(const struct pstat *all, size_t n, size_t i, int root)
{
	const struct pstat *p = &all[i];

	for (size_t hops = 0; p && hops <= n; hops++) {
		struct pstat key = { .pid = p->ppid };

		if (p->pid == root)
			return true;
		p = bsearch(&key, all, n, sizeof(*all), by_pid);
	}
	return false;
}

int64_t proc_tree_cpu_ns(int pid)
{
	struct pstat *all = NULL, *grown;
	size_t n = 0, cap = 0;
	uint64_t ticks = 0;
	struct dirent *de;
	bool found = false;
	DIR *d = opendir("/proc");

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			grown = realloc(all, cap * sizeof(*all));
			if (!grown)
				break;
			all = grown;
		}
		if (read_pstat(de->d_name, &all[n]) == 0)
			n++;
	}
	closedir(d);
	if (n)
		qsort(all, n, sizeof(*all), by_pid);
	for (size_t i = 0; i < n; i++) {
		if (all[i].pid == pid)
			found = true;
		if (in_tree(all, n, i, pid))
			ticks += all[i].ticks;
	}
	free(all);
	return found ? (int64_t)(ticks * cpustat_tick_ns()) : -ESRCH;
}

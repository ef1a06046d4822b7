/* SPDX-License-Identifier: GPL-2.0-only */
/* process_* metrics from /proc/self; see procmetrics.h.
 *
 * Names, types and units are those of the Prometheus client libraries'
 * process collectors, so dashboards written for any exporter work here.
 * Counting descriptors lists /proc/self/fd: one directory read per scrape,
 * in the metrics thread, never in a worker.  The directory and
 * /proc/self/stat stay open from procmetrics_open() on (procfs regenerates
 * both when read again from the start), and the boot time is read once:
 * a scrape opens nothing, so it still answers out of descriptors. */
#include "ops/procmetrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int stat_fd = -1;
static DIR *fd_dir;
static unsigned long long btime;	/* s since the epoch at boot; 0: unknown */

struct procstat {
	unsigned long long utime, stime, starttime, vsize;	/* ticks, ticks, ticks, bytes */
	long long rss;						/* pages */
};

/* The fields of /proc/self/stat we need; 0 or -1.  The command name, in
 * parentheses, may hold spaces: parse from the last ')'. */
static int read_stat(struct procstat *ps)
{
	char buf[1024];
	ssize_t n = stat_fd >= 0 ? pread(stat_fd, buf, sizeof(buf) - 1, 0) : -1;

	if (n < 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	/* After ")": state(3) ... utime(14) stime(15) ... starttime(22)
	 * vsize(23) rss(24). */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
			 "%*d %*d %*d %*d %*d %*d %llu %llu %lld",
			 &ps->utime, &ps->stime, &ps->starttime, &ps->vsize, &ps->rss) != 5)
		return -1;
	return 0;
}

/* Seconds since the epoch at boot, from /proc/stat; 0 if unknown. */
static unsigned long long boot_time(void)
{
	char line[256];
	unsigned long long bt = 0;
	FILE *f = fopen("/proc/stat", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %llu", &bt) == 1)
			break;
	if (f)
		fclose(f);
	return bt;
}

static long open_fds(void)
{
	struct dirent *e;
	long n = 0;

	if (!fd_dir)
		return -1;
	rewinddir(fd_dir);	/* a fresh listing: procfs builds it at each read */
	while ((e = readdir(fd_dir)))
		n += e->d_name[0] != '.';
	return n;	/* the directory's own descriptor is open too: counted */
}

int procmetrics_open(void)
{
	int r = 0;

	btime = boot_time();
	if ((stat_fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)) < 0)
		r = -errno;
	if (!(fd_dir = opendir("/proc/self/fd")))
		r = -errno;
	return r;
}

void procmetrics_close(void)
{
	if (stat_fd >= 0)
		close(stat_fd);
	if (fd_dir)
		closedir(fd_dir);
	stat_fd = -1;
	fd_dir = NULL;
}

static void family(struct sbuf *o, const char *name, const char *type, const char *help)
{
	sbuf_printf(o, "# HELP process_%s %s\n# TYPE process_%s %s\n", name, help, name, type);
}

void procmetrics_render(struct sbuf *o)
{
	struct procstat ps;
	struct rlimit rl;
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE), fds = open_fds();
	unsigned long long bt = btime;

	if (ticks > 0 && !read_stat(&ps)) {
		family(o, "cpu_seconds_total", "counter", "User and system CPU time spent in seconds");
		sbuf_printf(o, "process_cpu_seconds_total %.2f\n",
			    (double)(ps.utime + ps.stime) / (double)ticks);
		family(o, "resident_memory_bytes", "gauge", "Resident memory size in bytes");
		sbuf_printf(o, "process_resident_memory_bytes %lld\n", ps.rss * page);
		family(o, "virtual_memory_bytes", "gauge", "Virtual memory size in bytes");
		sbuf_printf(o, "process_virtual_memory_bytes %llu\n", ps.vsize);
		if (bt) {
			family(o, "start_time_seconds", "gauge",
			       "Start time of the process since the epoch in seconds");
			sbuf_printf(o, "process_start_time_seconds %.2f\n",
				    (double)bt + (double)ps.starttime / (double)ticks);
		}
	}
	if (fds >= 0) {
		family(o, "open_fds", "gauge", "Number of open file descriptors");
		sbuf_printf(o, "process_open_fds %ld\n", fds);
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY) {
		family(o, "max_fds", "gauge", "Maximum number of open file descriptors");
		sbuf_printf(o, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
}

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cpustat.c - /proc/stat snapshots (see cpustat.h).
 *
 * The file is read whole into one buffer big enough for a few hundred CPUs,
 * outside the load threads' way (main takes the snapshots); the kernel builds the text in one go, so the lines are consistent enough
 * with each other for a per-interval delta.
 */
#include "cpustat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STAT_BUF (256u * 1024)

uint64_t cpu_times_busy(const struct cpu_times *t)
{
	return t->user + t->nice + t->system + t->irq + t->softirq;
}

static uint64_t sub0(uint64_t b, uint64_t a)
{
	return b > a ? b - a : 0;
}

struct cpu_times cpu_times_sub(const struct cpu_times *b, const struct cpu_times *a)
{
	return (struct cpu_times){
		.user = sub0(b->user, a->user), .nice = sub0(b->nice, a->nice),
		.system = sub0(b->system, a->system), .idle = sub0(b->idle, a->idle),
		.iowait = sub0(b->iowait, a->iowait), .irq = sub0(b->irq, a->irq),
		.softirq = sub0(b->softirq, a->softirq), .steal = sub0(b->steal, a->steal),
	};
}

/* The fields after the label; older kernels have fewer, which stay 0. */
static void parse_fields(const char *p, struct cpu_times *t)
{
	uint64_t *f[] = { &t->user, &t->nice, &t->system, &t->idle, &t->iowait,
			  &t->irq, &t->softirq, &t->steal };
	char *end;

	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		unsigned long long v = strtoull(p, &end, 10);

		if (end == p)
			return;
		*f[i] = v;
		p = end;
	}
}

int cpustat_parse(const char *text, struct cpu_times *all,
		  const int *want, struct cpu_times *per, unsigned n)
{
	const char *line = text;
	bool seen_all = false;

	for (unsigned i = 0; i < n; i++)
		memset(&per[i], 0, sizeof(per[i]));
	while (line && *line) {
		if (!strncmp(line, "cpu ", 4)) {
			parse_fields(line + 4, all);
			seen_all = true;
		} else if (!strncmp(line, "cpu", 3) && line[3] >= '0' && line[3] <= '9') {
			char *end;
			long cpu = strtol(line + 3, &end, 10);

			for (unsigned i = 0; i < n; i++)
				if (want[i] == cpu)
					parse_fields(end, &per[i]);
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return seen_all ? 0 : -EINVAL;
}

int cpustat_read(const char *path, struct cpu_times *all,
		 const int *want, struct cpu_times *per, unsigned n)
{
	char *buf = malloc(STAT_BUF);
	ssize_t got, len = 0;
	int fd, r;

	if (!buf)
		return -ENOMEM;
	fd = open(path ? path : "/proc/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		free(buf);
		return r;
	}
	while (len < (ssize_t)STAT_BUF - 1 &&
	       (got = read(fd, buf + len, STAT_BUF - 1 - (size_t)len)) > 0)
		len += got;
	close(fd);
	buf[len] = 0;
	r = cpustat_parse(buf, all, want, per, n);
	free(buf);
	return r;
}

uint64_t cpustat_tick_ns(void)
{
	long hz = sysconf(_SC_CLK_TCK);

	return hz > 0 ? UINT64_C(1000000000) / (uint64_t)hz : UINT64_C(10000000);
}

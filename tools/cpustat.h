/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cpustat.h - CPU time of the whole machine and of single CPUs, from
 * /proc/stat, for echosrv-bench's "what did an echo cost the machine".
 *
 * A process's own CPU time (/proc/PID/stat) misses the kernel work done on
 * its behalf in softirq context, which on a busy network path is most of
 * it, and which on loopback lands on whichever CPU sent the packet.  The
 * machine's counters see all of it: two snapshots around the measured
 * interval give user, system and softirq time per message.
 */
#ifndef ECHOSRV_CPUSTAT_H
#define ECHOSRV_CPUSTAT_H

#include <stdint.h>

/* Jiffies (USER_HZ) of one line of /proc/stat; fields the kernel lacks are 0. */
struct cpu_times {
	uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
};

/* Busy time of a delta: everything but idle and iowait (steal is not ours). */
uint64_t cpu_times_busy(const struct cpu_times *t);
/* b - a, field by field (never below 0: a CPU that went offline reads 0). */
struct cpu_times cpu_times_sub(const struct cpu_times *b, const struct cpu_times *a);

/*
 * Parses /proc/stat text: the "cpu" line into *all and the "cpuN" line of
 * each of the n CPUs in want[] into per[i] (zeros where no such line).
 * 0, or -EINVAL when there is no "cpu" line.
 */
int cpustat_parse(const char *text, struct cpu_times *all,
		  const int *want, struct cpu_times *per, unsigned n);
/* The same from the file (path NULL: /proc/stat); -errno on failure. */
int cpustat_read(const char *path, struct cpu_times *all,
		 const int *want, struct cpu_times *per, unsigned n);
/* proctree.c: user+system CPU time of process pid and all its descendants
 * (with what they reaped), in ns; -ESRCH when pid is gone. */
int64_t proc_tree_cpu_ns(int pid);

/* Nanoseconds per jiffy (sysconf(_SC_CLK_TCK)). */
uint64_t cpustat_tick_ns(void);

#endif

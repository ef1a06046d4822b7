/* SPDX-License-Identifier: GPL-2.0-only */
/* echosrv-bench's /proc/stat accounting (tools/cpustat.c): parsing a known
 * text, then a busy loop of known CPU time on one pinned CPU, which that CPU's
 * and the machine's counters must account for (within the counters' tick). */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "cpustat.h"

static const char sample[] =
	"cpu  100 20 300 4000 50 6 70 8 0 0\n"
	"cpu0 10 2 30 400 5 1 7 0 0 0\n"
	"cpu1 90 18 270 3600 45 5 63 8 0 0\n"
	"intr 12345 0 0\n"
	"ctxt 999\n"
	"cpu7 1 1 1 1\n";           /* an old kernel's short line */

static void test_parse(void **state)
{
	int want[] = { 1, 5, 7 };
	struct cpu_times all, per[3];

	assert_int_equal(cpustat_parse(sample, &all, want, per, 3), 0);
	assert_int_equal(all.user, 100);
	assert_int_equal(all.nice, 20);
	assert_int_equal(all.system, 300);
	assert_int_equal(all.idle, 4000);
	assert_int_equal(all.softirq, 70);
	assert_int_equal(all.steal, 8);
	assert_int_equal(per[0].user, 90);
	assert_int_equal(per[0].softirq, 63);
	assert_int_equal(per[1].user, 0);       /* no cpu5 line: zeros */
	assert_int_equal(per[2].idle, 1);
	assert_int_equal(per[2].softirq, 0);
	/* busy: user + nice + system + irq + softirq; not idle, iowait, steal */
	assert_int_equal(cpu_times_busy(&all), 100 + 20 + 300 + 6 + 70);
}

static void test_no_cpu_line(void **state)
{
	struct cpu_times all;

	assert_int_equal(cpustat_parse("intr 1\n", &all, NULL, NULL, 0), -22);
}

static void test_sub_never_negative(void **state)
{
	struct cpu_times a = { .user = 5, .system = 9 }, b = { .user = 7, .system = 3 };
	struct cpu_times d = cpu_times_sub(&b, &a);

	assert_int_equal(d.user, 2);
	assert_int_equal(d.system, 0);
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spins on one CPU until this thread has used 300 ms of CPU (or 10 s
 * passed): that CPU's busy time must hold at least what we used, the whole
 * machine's too, and the one CPU cannot have been busy longer than the wall
 * clock.  Slack: the counters move in ticks, sampled. */
static void test_busy_loop_is_accounted(void **state)
{
	cpu_set_t set;
	int cpu = -1;
	struct cpu_times all[2], one[2], dall, done;
	uint64_t tick = cpustat_tick_ns(), t0, w0, used, wall, slack;
	volatile uint64_t sink = 0;

	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int i = 0; i < CPU_SETSIZE && cpu < 0; i++)
		if (CPU_ISSET(i, &set))
			cpu = i;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	assert_int_equal(sched_setaffinity(0, sizeof(set), &set), 0);
	assert_int_equal(cpustat_read(NULL, &all[0], &cpu, &one[0], 1), 0);
	t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	w0 = clock_ns(CLOCK_MONOTONIC);
	while (clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0 < 300000000u &&
	       clock_ns(CLOCK_MONOTONIC) - w0 < 10000000000u)
		for (int i = 0; i < 1000000; i++)	/* ~1 ms between clock calls */
			sink += (uint64_t)i;
	used = clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
	wall = clock_ns(CLOCK_MONOTONIC) - w0;
	assert_int_equal(cpustat_read(NULL, &all[1], &cpu, &one[1], 1), 0);
	dall = cpu_times_sub(&all[1], &all[0]);
	done = cpu_times_sub(&one[1], &one[0]);
	slack = 3 * tick + used / 10;
	if (cpu_times_busy(&done) * tick + slack < used)
		fail_msg("CPU %d busy %llu ns < the loop's %llu ns", cpu,
			 (unsigned long long)(cpu_times_busy(&done) * tick),
			 (unsigned long long)used);
	/* Mostly user time, not all: the clock reads are system calls
	 * (CLOCK_THREAD_CPUTIME_ID has no vDSO path), and a tick that lands in
	 * one counts as system.  Half is far above what a mixed-up field
	 * would give, and far below what sampling could take away. */
	if ((done.user + done.nice) * tick * 2 < used)
		fail_msg("CPU %d user %llu ns < half the loop's %llu ns", cpu,
			 (unsigned long long)((done.user + done.nice) * tick),
			 (unsigned long long)used);
	/* One read of /proc/stat sums the "cpu" line before it writes the
	 * per-CPU ones, so a tick between the two counts in this CPU's line
	 * and not yet in the whole machine's: a tick of slack per read. */
	assert_true(cpu_times_busy(&dall) + 2 >= cpu_times_busy(&done));
	assert_true(cpu_times_busy(&done) * tick <= wall + 3 * tick);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_no_cpu_line),
		cmocka_unit_test(test_sub_never_negative),
		cmocka_unit_test(test_busy_loop_is_accounted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench.c - echosrv-bench: a load generator for TCP echo servers that checks
 * every byte that comes back.
 *
 * This file is the run's frame: the descriptor limit, the load threads
 * (bench_setup.c, bench_loop.c), the clock they all follow (connect, then
 * warm-up, measurement and drain at fixed instants, so no thread needs to
 * talk to another while the load runs), what main samples meanwhile (the
 * server's CPU time from /proc, the machine's from /proc/stat, and with
 * --interval the threads' latencies since the last interval), and handing
 * the sums to the report (bench_out.c).  The options are bench_opts.c's.
 *
 * --udp is another mode with the same options where they apply: main hands
 * the run to bench_udp.c.
 *
 * Exit status: 0 every byte came back right; 1 an error or a mismatch was
 * seen (the report says which); 2 bad usage; 3 the run could not start
 * (connection refused, unreachable, out of descriptors, ...).
 */
#include "bench.h"
#include "pattern.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>


uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

void bench_report(struct bench_shared *sh, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int left = atomic_fetch_sub(&sh->reports_left, 1);

	if (left <= 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "echosrv-bench: %s%s\n", line,
		left == 1 ? " (further problems only counted)" : "");
}



/* As many descriptors as we may have: 5000 connections need 5000. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / NS_PER_S),
			       .tv_nsec = (long)(t % NS_PER_S) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void sum_results(struct bench_result *sum, struct bench_thread *th, unsigned n)
{
	memset(sum, 0, sizeof(*sum));
	hist_init(&sum->lat);
	hist_init(&sum->setup);
	for (unsigned i = 0; i < n; i++) {
		const struct bench_result *r = &th[i].res;

		sum->messages += r->messages;
		sum->checked += r->checked;
		sum->mismatches += r->mismatches;
		for (int e = 0; e < BERR__COUNT; e++)
			sum->err[e] += r->err[e];
		sum->missing_bytes += r->missing_bytes;
		sum->extra_bytes += r->extra_bytes;
		sum->no_fin += r->no_fin;
		sum->retransmits += r->retransmits;
		if (r->drain_ns > sum->drain_ns)
			sum->drain_ns = r->drain_ns;
		if (r->drain_gap_ns > sum->drain_gap_ns)
			sum->drain_gap_ns = r->drain_gap_ns;
		sum->cpu_ns += r->cpu_ns;
		sum->user_ns += r->user_ns;
		sum->conn_opened += r->conn_opened;
		sum->conn_attempts += r->conn_attempts;
		for (int f = 0; f < BCF__COUNT; f++)
			sum->conn_fail[f] += r->conn_fail[f];
		hist_merge(&sum->lat, &r->lat);
		hist_merge(&sum->setup, &r->setup);
	}
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

/* What main watches while the threads run. */
struct watch {
	const struct bench_opts *o;
	struct bench_thread *th;
	int64_t srv_cpu[2];
	struct cpu_times all[2], cpu[2][BENCH_MAX_CPUS];
	bool stat_ok[2];
	struct bench_interval *iv;
	unsigned niv, maxiv;
	uint64_t last_errors;
	struct hist h;               /* scratch: the threads' interval latencies */
};

static void sample(struct watch *w, int end)
{
	const struct bench_opts *o = w->o;

	if (o->server_pid)
		w->srv_cpu[end] = proc_tree_cpu_ns(o->server_pid);
	/* A child that has exited but is not reaped yet shows no time of its
	 * own, and its parent's cutime does not have it yet: a moment later it
	 * has.  So a reading below the first one is taken again, a few times
	 * at most, before the difference is called unknown. */
	for (int i = 0; end && o->server_pid && i < 5 && w->srv_cpu[0] >= 0 &&
	     w->srv_cpu[1] >= 0 && w->srv_cpu[1] < w->srv_cpu[0]; i++) {
		nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
		w->srv_cpu[1] = proc_tree_cpu_ns(o->server_pid);
	}
	w->stat_ok[end] = cpustat_read(NULL, &w->all[end], o->cpus, w->cpu[end],
				       o->ncpus) == 0;
}

/* Takes every thread's latencies since the last interval and prints a line. */
static void interval_end(struct watch *w, double t, double secs)
{
	struct bench_interval *v;
	uint64_t errors = 0;

	hist_init(&w->h);
	for (unsigned i = 0; i < w->o->threads; i++) {
		struct bench_thread *th = &w->th[i];

		pthread_mutex_lock(&th->lock);
		hist_merge(&w->h, &th->iv);
		hist_init(&th->iv);
		errors += bench_total_errors(&th->res) + th->res.mismatches;
		pthread_mutex_unlock(&th->lock);
	}
	if (w->niv == w->maxiv)
		return;
	v = &w->iv[w->niv++];
	*v = (struct bench_interval){ .t = t, .secs = secs, .messages = w->h.count,
				      .errors = errors - w->last_errors,
				      .p50_ns = hist_quantile(&w->h, 0.5),
				      .p99_ns = hist_quantile(&w->h, 0.99) };
	w->last_errors = errors;
	if (!w->o->json)
		bench_print_interval(v);
}

/* From the start of the measurement to its end: samples, intervals. */
static void watch_run(struct watch *w, const struct bench_clock *k)
{
	const struct bench_opts *o = w->o;
	uint64_t step = (uint64_t)(o->interval * 1e9), t = k->measure;

	sleep_until(k->measure);
	sample(w, 0);
	if (step) {
		for (t = k->measure + step; t < k->end; t += step) {
			sleep_until(t);
			interval_end(w, (double)(t - step - k->measure) / 1e9, (double)step / 1e9);
		}
		t -= step;
	}
	sleep_until(k->end);
	sample(w, 1);
	if (step && k->end > t)
		interval_end(w, (double)(t - k->measure) / 1e9, (double)(k->end - t) / 1e9);
}

/* Starts the threads, runs the clock, joins; EXIT_SETUP if connecting failed. */
static int run_threads(const struct bench_opts *o, struct bench_shared *sh,
		       struct bench_thread *th, struct watch *w)
{
	unsigned n = o->threads;
	int rc = 0;

	pthread_barrier_init(&sh->connected, NULL, n + 1);
	pthread_barrier_init(&sh->go, NULL, n + 1);
	for (unsigned i = 0; i < n; i++) {
		th[i].index = i;
		th[i].sh = sh;
		pthread_mutex_init(&th[i].lock, NULL);
		hist_init(&th[i].iv);
		int r = pthread_create(&th[i].tid, NULL, bench_thread_main, &th[i]);
		if (r) {
			fprintf(stderr, "echosrv-bench: cannot start thread: %s\n", strerror(r));
			exit(EXIT_SETUP);
		}
	}
	pthread_barrier_wait(&sh->connected);
	sh->clk.go = bench_now_ns();
	sh->clk.measure = sh->clk.go + (uint64_t)(o->warmup * 1e9);
	sh->clk.end = sh->clk.measure + (uint64_t)(o->duration * 1e9);
	pthread_barrier_wait(&sh->go);         /* publishes clk to the threads */
	if (!atomic_load(&sh->abort))
		watch_run(w, &sh->clk);
	for (unsigned i = 0; i < n; i++) {
		pthread_join(th[i].tid, NULL);
		if (th[i].setup_err && !rc) {
			fprintf(stderr, "echosrv-bench: %s\n", th[i].setup_msg);
			rc = EXIT_SETUP;
		}
	}
	return rc;
}

static void summarise(const struct bench_opts *o, const struct bench_shared *sh,
		      const struct bench_result *r, const struct watch *w,
		      struct bench_summary *s)
{
	s->secs = (double)(sh->clk.end - sh->clk.measure) / 1e9;
	s->msgs_per_s = (double)r->messages / s->secs;
	s->bytes_per_s = s->msgs_per_s * (double)o->size;
	s->client_us = r->messages ? us(r->cpu_ns) / (double)r->messages : 0;
	s->client_user_us = r->messages ? us(r->user_ns) / (double)r->messages : 0;
	/* The tree's time can shrink: a child reaped by no one in it (SIGCHLD
	 * ignored) or moved out of it (its parent died) takes its time along.
	 * Then the difference says nothing, and is not reported. */
	if (w->srv_cpu[0] >= 0 && w->srv_cpu[1] >= w->srv_cpu[0] && r->messages) {
		s->server_known = true;
		s->server_us = us((uint64_t)(w->srv_cpu[1] - w->srv_cpu[0])) / (double)r->messages;
	} else if (w->srv_cpu[0] >= 0 && w->srv_cpu[1] >= 0 && r->messages) {
		fprintf(stderr, "echosrv-bench: --server-pid %d: its processes' CPU time "
			"went down during the run (a child left the tree unreaped); "
			"server CPU not reported\n", (int)o->server_pid);
	}
	if (w->stat_ok[0] && w->stat_ok[1]) {
		s->machine_known = true;
		s->machine = cpu_times_sub(&w->all[1], &w->all[0]);
		for (unsigned i = 0; i < o->ncpus; i++)
			s->cpu[i] = cpu_times_sub(&w->cpu[1][i], &w->cpu[0][i]);
	}
	s->iv = w->iv;
	s->niv = w->niv;
}

static bool run_failed(const struct bench_result *r)
{
	uint64_t failed = 0;

	for (int f = 0; f < BCF__COUNT; f++)
		failed += f == BCF_no_slot ? 0 : r->conn_fail[f];
	return bench_total_errors(r) || r->mismatches || failed;
}

static void started_at(struct bench_summary *s)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(s->started, sizeof(s->started), "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int main(int argc, char **argv)
{
	static struct bench_opts o;
	static struct watch w;
	static struct bench_result r;
	struct bench_shared sh = { .o = &o };
	struct bench_summary s = { 0 };
	struct bench_thread *th;
	FILE *hist_f = NULL;
	char msg[256];
	int rc;

	parse_options(&o, argc, argv);
	if (o.server_pid && proc_tree_cpu_ns(o.server_pid) < 0)
		usage_error("--server-pid %d: no such process", (int)o.server_pid);
	if (o.udp)
		return bench_udp_main(&o);      /* datagrams: bench_udp.c */
	/* What can fail before the load fails now, not after a long run. */
	if (o.nbind && bench_check_bind(&o, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "echosrv-bench: %s\n", msg);
		return EXIT_SETUP;
	}
	if (o.histogram && !(hist_f = fopen(o.histogram, "we"))) {
		fprintf(stderr, "echosrv-bench: --histogram %s: %s\n", o.histogram,
			strerror(errno));
		return EXIT_SETUP;
	}
	raise_nofile();
	w = (struct watch){ .o = &o, .srv_cpu = { -1, -1 } };
	if (o.interval > 0) {
		w.maxiv = (unsigned)(o.duration / o.interval) + 2;
		w.iv = calloc(w.maxiv, sizeof(*w.iv));
	}
	th = calloc(o.threads, sizeof(*th));
	if (pattern_init() < 0 || !th || (o.interval > 0 && !w.iv)) {
		fprintf(stderr, "echosrv-bench: out of memory\n");
		return EXIT_SETUP;
	}
	w.th = th;
	atomic_init(&sh.reports_left, 10);
	started_at(&s);
	rc = run_threads(&o, &sh, th, &w);
	if (!rc)
		sum_results(&r, th, o.threads);
	free(th);
	if (rc)
		return rc;
	summarise(&o, &sh, &r, &w, &s);
	if (hist_f && (rc = bench_write_histogram(hist_f, &r.lat)) < 0) {
		fprintf(stderr, "echosrv-bench: --histogram %s: %s\n", o.histogram,
			strerror(-rc));
		rc = EXIT_ERRORS;
	}
	if (o.json)
		bench_print_json(&o, &r, &s);
	else
		bench_print_text(&o, &r, &s, run_failed(&r));
	fflush(stdout);
	free(w.iv);
	return run_failed(&r) || rc ? EXIT_ERRORS : 0;
}

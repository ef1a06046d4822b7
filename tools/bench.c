/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench.c - echosrv-bench: a load generator for TCP echo servers that checks
 * every byte that comes back.
 *
 * This file is the run's frame: options, the descriptor limit, the load
 * threads (bench_loop.c), the clock they all follow (connect, then warm-up,
 * measurement and drain at fixed instants, so no thread needs to talk to
 * another while the load runs), the server's CPU time from /proc, and the
 * report, as text or one JSON object.
 *
 * Exit status: 0 every byte came back right; 1 an error or a mismatch was
 * seen (the report says which); 2 bad usage; 3 the run could not start
 * (connection refused, unreachable, out of descriptors, ...).
 */
#include "bench.h"
#include "pattern.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define EXIT_ERRORS 1
#define EXIT_USAGE  2
#define EXIT_SETUP  3

static const char usage_text[] =
"Usage: echosrv-bench [OPTION]...\n"
"Load a TCP echo server and check every byte it sends back.\n"
"\n"
"  -a, --address HOST:PORT  server to load; IPv6 as [ADDR]:PORT [127.0.0.1:40007]\n"
"  -c, --connections N      connections [1]\n"
"  -s, --size BYTES         message size (k, M suffixes) [128]\n"
"  -p, --pipeline K         messages in flight per connection (closed loop) [1]\n"
"  -d, --duration SECS      measured time [5]\n"
"  -w, --warmup SECS        load before the measurement starts [1]\n"
"  -r, --rate MSGS_PER_S    open loop: this many messages per second in all,\n"
"                           latency counted from each message's intended time\n"
"  -t, --threads N          load threads, each with its own epoll loop [1]\n"
"      --give-up SECS       drain: count what is owed as missing once nothing\n"
"                           has come back for this long [2]\n"
"      --server-pid PID     also report the server's CPU time per message\n"
"      --json               print one JSON object instead of text\n"
"  -h, --help               show this help\n"
"\n"
"Exit status: 0 all bytes echoed correctly, 1 errors or mismatches,\n"
"2 bad usage, 3 could not connect or set up.\n";

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

static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("echosrv-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	exit(EXIT_USAGE);
}

/* An unsigned number with an optional k/M/G (binary) suffix, in [lo, hi]. */
static uint64_t parse_count(const char *opt, const char *s, uint64_t lo, uint64_t hi)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno || *s == '-')
		usage_error("%s: '%s' is not a number", opt, s);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		usage_error("%s: '%s' is not a number", opt, s);
	if (v < lo || v > hi)
		usage_error("%s: %llu is out of range [%llu, %llu]", opt, v,
			    (unsigned long long)lo, (unsigned long long)hi);
	return v;
}

static double parse_secs(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !(v >= lo && v <= hi))
		usage_error("%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
	return v;
}

/* HOST:PORT or [IPV6]:PORT; names are resolved, the first address is used. */
static void parse_address(struct bench_opts *o, const char *s)
{
	char host[256];
	const char *colon = strrchr(s, ':'), *h = s;
	size_t hlen;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *ai;
	int r;

	if (!colon || !colon[1])
		usage_error("--address: '%s' has no :PORT", s);
	hlen = (size_t)(colon - s);
	if (*s == '[') {
		if (hlen < 2 || s[hlen - 1] != ']')
			usage_error("--address: '%s': write IPv6 as [ADDR]:PORT", s);
		h = s + 1;
		hlen -= 2;
	} else if (memchr(s, ':', hlen)) {
		usage_error("--address: '%s': write IPv6 as [ADDR]:PORT", s);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		usage_error("--address: '%s' has no host", s);
	memcpy(host, h, hlen);
	host[hlen] = 0;
	parse_count("--address", colon + 1, 1, 65535);
	r = getaddrinfo(host, colon + 1, &hints, &ai);
	if (r)
		usage_error("--address: %s: %s", s, gai_strerror(r));
	memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
	o->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	snprintf(o->addr_text, sizeof(o->addr_text), "%s", s);
}

static void parse_options(struct bench_opts *o, int argc, char **argv)
{
	enum { OPT_SERVER_PID = 256, OPT_JSON, OPT_GIVE_UP };
	static const struct option longs[] = {
		{ "address",     required_argument, NULL, 'a' },
		{ "connections", required_argument, NULL, 'c' },
		{ "size",        required_argument, NULL, 's' },
		{ "pipeline",    required_argument, NULL, 'p' },
		{ "duration",    required_argument, NULL, 'd' },
		{ "warmup",      required_argument, NULL, 'w' },
		{ "rate",        required_argument, NULL, 'r' },
		{ "threads",     required_argument, NULL, 't' },
		{ "server-pid",  required_argument, NULL, OPT_SERVER_PID },
		{ "json",        no_argument,       NULL, OPT_JSON },
		{ "give-up",     required_argument, NULL, OPT_GIVE_UP },
		{ "help",        no_argument,       NULL, 'h' },
		{ 0 }
	};
	const char *addr = "127.0.0.1:40007";
	bool pipeline_set = false;
	int ch;

	*o = (struct bench_opts){ .conns = 1, .threads = 1, .pipeline = 1,
				  .size = 128, .duration = 5, .warmup = 1,
				  .give_up_ns = (uint64_t)(BENCH_DRAIN_IDLE_S * NS_PER_S) };
	while ((ch = getopt_long(argc, argv, "a:c:s:p:d:w:r:t:h", longs, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'c': o->conns = (unsigned)parse_count("--connections", optarg, 1, BENCH_MAX_CONNS); break;
		case 's': o->size = parse_count("--size", optarg, 1, UINT64_C(1) << 30); break;
		case 'p': o->pipeline = (unsigned)parse_count("--pipeline", optarg, 1, BENCH_MAX_PIPELINE);
			  pipeline_set = true; break;
		case 'd': o->duration = parse_secs("--duration", optarg, 0.001, 86400); break;
		case 'w': o->warmup = parse_secs("--warmup", optarg, 0, 86400); break;
		case 'r': o->rate = parse_secs("--rate", optarg, 0.001, 1e9); break;
		case 't': o->threads = (unsigned)parse_count("--threads", optarg, 1, BENCH_MAX_THREADS); break;
		case OPT_SERVER_PID:
			o->server_pid = (pid_t)parse_count("--server-pid", optarg, 1, INT32_MAX); break;
		case OPT_JSON: o->json = true; break;
		case OPT_GIVE_UP:
			o->give_up_ns = (uint64_t)(parse_secs("--give-up", optarg, 0.001, 3600) * NS_PER_S);
			break;
		case 'h': fputs(usage_text, stdout); exit(0);
		default: usage_error("bad option");
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (o->rate > 0 && pipeline_set)
		usage_error("--rate and --pipeline exclude each other (open loop has no fixed window)");
	if (o->threads > o->conns)
		o->threads = o->conns;
	parse_address(o, addr);
}

/* The server's user+system CPU time in ns, all threads; -errno if gone. */
static int64_t proc_cpu_ns(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');      /* the command name may hold spaces */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -EINVAL;
	return (int64_t)((ut + st) * (NS_PER_S / (uint64_t)sysconf(_SC_CLK_TCK)));
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
		hist_merge(&sum->lat, &r->lat);
	}
}

static uint64_t total_errors(const struct bench_result *r)
{
	uint64_t n = 0;

	for (int e = 0; e < BERR__COUNT; e++)
		n += r->err[e];
	return n;
}

static const char *const error_names[] = {
#define X(name, text) #name,
	BENCH_ERRORS(X)
#undef X
};

static const char *const error_texts[] = {
#define X(name, text) text,
	BENCH_ERRORS(X)
#undef X
};

struct summary {
	double secs, msgs_per_s, bytes_per_s, client_us, client_user_us, server_us;
	bool server_known;
};

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void print_json(const struct bench_opts *o, const struct bench_result *r,
		       const struct summary *s)
{
	const struct hist *h = &r->lat;

	printf("{\"address\": \"%s\", \"connections\": %u, \"size\": %llu, "
	       "\"pipeline\": %u, \"rate\": %.3f, \"threads\": %u, "
	       "\"duration_s\": %.6f, \"warmup_s\": %.3f, ",
	       o->addr_text, o->conns, (unsigned long long)o->size,
	       o->rate > 0 ? 0 : o->pipeline, o->rate, o->threads, s->secs, o->warmup);
	printf("\"messages\": %llu, \"messages_per_second\": %.1f, "
	       "\"bytes_per_second\": %.1f, \"checked_bytes\": %llu, ",
	       (unsigned long long)r->messages, s->msgs_per_s, s->bytes_per_s,
	       (unsigned long long)r->checked);
	printf("\"latency_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
	       "\"p999\": %.1f, \"max\": %.1f, \"mean\": %.1f}, ",
	       us(hist_quantile(h, 0.5)), us(hist_quantile(h, 0.9)),
	       us(hist_quantile(h, 0.99)), us(hist_quantile(h, 0.999)),
	       us(h->count ? h->max : 0), h->count ? us(h->sum / h->count) : 0.0);
	printf("\"errors\": %llu, \"error_kinds\": {", (unsigned long long)total_errors(r));
	for (int e = 0; e < BERR__COUNT; e++)
		printf("%s\"%s\": %llu", e ? ", " : "", error_names[e],
		       (unsigned long long)r->err[e]);
	printf("}, \"missing_bytes\": %llu, \"extra_bytes\": %llu, "
	       "\"mismatches\": %llu, \"no_fin\": %llu, \"retransmits\": %llu, "
	       "\"client_cpu_us_per_message\": %.3f, "
	       "\"client_user_cpu_us_per_message\": %.3f",
	       (unsigned long long)r->missing_bytes, (unsigned long long)r->extra_bytes,
	       (unsigned long long)r->mismatches, (unsigned long long)r->no_fin,
	       (unsigned long long)r->retransmits, s->client_us, s->client_user_us);
	printf(", \"drain_s\": %.3f, \"drain_longest_wait_s\": %.3f",
	       (double)r->drain_ns / NS_PER_S, (double)r->drain_gap_ns / NS_PER_S);
	if (s->server_known)
		printf(", \"server_cpu_us_per_message\": %.3f", s->server_us);
	printf("}\n");
}

static void print_text(const struct bench_opts *o, const struct bench_result *r,
		       const struct summary *s)
{
	const struct hist *h = &r->lat;
	uint64_t errs = total_errors(r);

	printf("echosrv-bench: %s, %u connection%s, %llu-byte messages, ",
	       o->addr_text, o->conns, o->conns == 1 ? "" : "s",
	       (unsigned long long)o->size);
	if (o->rate > 0)
		printf("open loop at %.0f messages/s", o->rate);
	else
		printf("%u in flight each", o->pipeline);
	printf(", %u thread%s\n", o->threads, o->threads == 1 ? "" : "s");
	printf("  measured     %.2f s after %.2f s warm-up\n", s->secs, o->warmup);
	printf("  messages/s   %.0f\n", s->msgs_per_s);
	printf("  MB/s         %.2f  (echoed payload, one way)\n", s->bytes_per_s / 1e6);
	printf("  latency us   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
	       us(hist_quantile(h, 0.5)), us(hist_quantile(h, 0.9)),
	       us(hist_quantile(h, 0.99)), us(hist_quantile(h, 0.999)),
	       us(h->count ? h->max : 0));
	printf("  errors       %llu\n", (unsigned long long)errs);
	for (int e = 0; e < BERR__COUNT; e++)
		if (r->err[e])
			printf("    %-11s  %llu  (%s)\n", error_names[e],
			       (unsigned long long)r->err[e], error_texts[e]);
	if (r->missing_bytes || r->extra_bytes)
		printf("    bytes missing %llu, extra %llu\n",
		       (unsigned long long)r->missing_bytes,
		       (unsigned long long)r->extra_bytes);
	printf("  mismatches   %llu  (messages with a wrong byte; %llu bytes checked)\n",
	       (unsigned long long)r->mismatches, (unsigned long long)r->checked);
	if (r->retransmits)
		printf("  note         TCP sent %llu segments again: packets were lost "
		       "on the way\n", (unsigned long long)r->retransmits);
	printf("  drain        %.3f s  (longest wait for a byte %.3f s; --give-up %.3f s)\n",
	       (double)r->drain_ns / NS_PER_S, (double)r->drain_gap_ns / NS_PER_S,
	       (double)o->give_up_ns / NS_PER_S);
	if (r->no_fin)
		printf("  note         %llu connections were not closed by the server "
		       "after our FIN\n", (unsigned long long)r->no_fin);
	printf("  client CPU   %.3f us/message  (%.3f of it in user space)\n",
	       s->client_us, s->client_user_us);
	if (s->server_known)
		printf("  server CPU   %.3f us/message\n", s->server_us);
	printf("  result       %s\n", errs || r->mismatches ? "FAILED" : "OK");
}

/* Starts the threads, runs the clock, joins; EXIT_SETUP if connecting failed. */
static int run_threads(const struct bench_opts *o, struct bench_shared *sh,
		       struct bench_thread *th, int64_t srv_cpu[2])
{
	unsigned n = o->threads;
	int rc = 0;

	pthread_barrier_init(&sh->connected, NULL, n + 1);
	pthread_barrier_init(&sh->go, NULL, n + 1);
	for (unsigned i = 0; i < n; i++) {
		th[i].index = i;
		th[i].sh = sh;
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
	if (!atomic_load(&sh->abort) && o->server_pid) {
		sleep_until(sh->clk.measure);
		srv_cpu[0] = proc_cpu_ns(o->server_pid);
		sleep_until(sh->clk.end);
		srv_cpu[1] = proc_cpu_ns(o->server_pid);
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(th[i].tid, NULL);
		if (th[i].setup_err && !rc) {
			fprintf(stderr, "echosrv-bench: %s\n", th[i].setup_msg);
			rc = EXIT_SETUP;
		}
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_shared sh = { .o = &o };
	struct bench_thread *th;
	struct bench_result r;
	struct summary s = { 0 };
	int64_t srv_cpu[2] = { -1, -1 };
	int rc;

	parse_options(&o, argc, argv);
	if (o.server_pid && proc_cpu_ns(o.server_pid) < 0)
		usage_error("--server-pid %d: no such process", (int)o.server_pid);
	raise_nofile();
	if (pattern_init() < 0) {
		fprintf(stderr, "echosrv-bench: out of memory\n");
		return EXIT_SETUP;
	}
	atomic_init(&sh.reports_left, 10);
	th = calloc(o.threads, sizeof(*th));
	if (!th) {
		fprintf(stderr, "echosrv-bench: out of memory\n");
		return EXIT_SETUP;
	}
	rc = run_threads(&o, &sh, th, srv_cpu);
	if (!rc)
		sum_results(&r, th, o.threads);
	free(th);
	if (rc)
		return rc;
	s.secs = (double)(sh.clk.end - sh.clk.measure) / 1e9;
	s.msgs_per_s = (double)r.messages / s.secs;
	s.bytes_per_s = s.msgs_per_s * (double)o.size;
	s.client_us = r.messages ? us(r.cpu_ns) / (double)r.messages : 0;
	s.client_user_us = r.messages ? us(r.user_ns) / (double)r.messages : 0;
	if (srv_cpu[0] >= 0 && srv_cpu[1] >= 0 && r.messages) {
		s.server_known = true;
		s.server_us = us((uint64_t)(srv_cpu[1] - srv_cpu[0])) / (double)r.messages;
	}
	if (o.json)
		print_json(&o, &r, &s);
	else
		print_text(&o, &r, &s);
	fflush(stdout);
	return total_errors(&r) || r.mismatches ? EXIT_ERRORS : 0;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench.h - what the parts of echosrv-bench share.
 *
 * bench.c parses the options, starts one load thread per -t, keeps the
 * clock of the run (connect, warm-up, measurement, drain) and prints the
 * result; bench_loop.c is one thread's epoll loop over its connections;
 * pattern.h is the byte stream every connection sends and checks.  Each
 * thread fills its own struct bench_result and bench.c sums them once the
 * threads have finished, so the threads share nothing while they run but the
 * read-only options, the pattern and a few atomics.
 */
#ifndef ECHOSRV_BENCH_H
#define ECHOSRV_BENCH_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "cpustat.h"
#include "hist.h"

#define EXIT_ERRORS 1
#define EXIT_USAGE  2
#define EXIT_SETUP  3

#ifndef BENCH_VERSION
#define BENCH_VERSION "unknown"
#endif
#ifndef BENCH_COMMIT
#define BENCH_COMMIT "unknown"
#endif

#define BENCH_MAX_CONNS     100000
#define BENCH_MAX_THREADS   64
#define BENCH_MAX_PIPELINE  4096
#define BENCH_CONNECT_NS    (10 * NS_PER_S)  /* all connections up by then */
#define BENCH_DRAIN_IDLE_S  2.0             /* drain gives up after this long */
#define BENCH_DRAIN_MAX_NS  (30 * NS_PER_S)  /* without a byte, or this in all */
#define NS_PER_S            UINT64_C(1000000000)
#define BENCH_MAX_PCTS      16              /* --percentiles entries */
#define BENCH_MAX_BIND      64              /* --bind addresses */
#define BENCH_MAX_CPUS      8               /* --cpu entries */
#define BENCH_UDP_MAX_SOURCES 1024          /* --udp --sources */
#define BENCH_UDP_MAX_WINDOW  4096          /* --udp --window */

struct bench_opts {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char addr_text[128];
	unsigned conns;
	unsigned threads;
	unsigned pipeline;       /* messages in flight per connection (closed loop) */
	uint64_t size;           /* bytes per message */
	double duration;         /* seconds measured */
	double warmup;           /* seconds before the measurement */
	double rate;             /* messages/s over all connections; 0 = closed loop */
	uint64_t give_up_ns;     /* drain: longest wait for the next byte */
	pid_t server_pid;        /* 0 = not given */
	bool json;
	double pcts[BENCH_MAX_PCTS];     /* percentiles reported, ascending */
	unsigned npcts;
	const char *histogram;   /* --histogram: CSV file of the latencies */
	double interval;         /* --interval seconds; 0 = no interval lines */
	struct sockaddr_storage bind[BENCH_MAX_BIND];   /* --bind sources */
	unsigned nbind;
	const char *bind_text;
	double connect_rate;     /* churn: connections opened per second; 0 = off */
	uint64_t life_msgs;      /* churn: each lives this many messages, or */
	uint64_t life_ns;        /*   this long (exactly one is non-zero) */
	int cpus[BENCH_MAX_CPUS];        /* --cpu: CPUs also accounted alone */
	unsigned ncpus;
	char placement[32];      /* --placement, or what the address suggests */
	int proxy;               /* --proxy: 0 none, 1 v1, 2 v2 header first */
	bool udp;                /* --udp: the UDP mode (bench_udp.c) */
	unsigned window;         /* --udp: datagrams in flight per source */
	unsigned sources;        /* --udp: source sockets */
	unsigned gso;            /* --udp: datagrams per send (UDP_SEGMENT) */
};

/* Every way a connection can go wrong other than a wrong byte. */
#define BENCH_ERRORS(X) \
	X(early_close, "closed by the server before all echoes came back") \
	X(reset,       "reset by the server") \
	X(missing,     "echoes never came back") \
	X(extra,       "more bytes came back than were sent") \
	X(io,          "other socket errors")

/* Why a churn connection did not come up (--connect-rate). */
#define BENCH_CONN_FAILS(X) \
	X(refused,  "connect refused") \
	X(timeout,  "connect timed out") \
	X(rejected, "accepted, then closed or reset before its first echo") \
	X(other,    "other connect errors (out of ports or descriptors, ...)") \
	X(no_slot,  "due while all --connections slots were busy: not opened")

enum bench_error {
#define X(name, text) BERR_##name,
	BENCH_ERRORS(X)
#undef X
	BERR__COUNT
};

enum bench_conn_fail {
#define X(name, text) BCF_##name,
	BENCH_CONN_FAILS(X)
#undef X
	BCF__COUNT
};

struct bench_result {
	uint64_t messages;       /* completed inside the measurement window */
	uint64_t checked;        /* bytes that came back and were compared */
	uint64_t mismatches;     /* messages with at least one wrong byte */
	uint64_t err[BERR__COUNT];
	uint64_t missing_bytes;
	uint64_t extra_bytes;
	uint64_t no_fin;         /* connections the server did not close after our FIN */
	uint64_t retransmits;    /* TCP segments our sockets sent again (TCP_INFO) */
	uint64_t drain_ns;       /* the drain, from its start to its end */
	uint64_t drain_gap_ns;   /* the drain's longest wait for the next byte */
	uint64_t cpu_ns;         /* this thread's CPU time inside the window */
	uint64_t user_ns;        /* the user-space part of it: the tool's own code */
	uint64_t conn_opened;    /* churn: connections up inside the window */
	uint64_t conn_attempts;  /* churn: connects started, whole run */
	uint64_t conn_fail[BCF__COUNT];  /* churn: whole run */
	struct hist lat;
	struct hist setup;       /* churn: connect() to established, in the window */
};

/* The clock of a run, in CLOCK_MONOTONIC nanoseconds, set once by bench.c. */
struct bench_clock {
	uint64_t go;             /* load starts (warm-up begins) */
	uint64_t measure;        /* measurement window [measure, end) */
	uint64_t end;
};

struct bench_shared {
	const struct bench_opts *o;
	struct bench_clock clk;
	pthread_barrier_t connected;  /* threads have connected (or failed) */
	pthread_barrier_t go;         /* main has set clk (or abort) */
	atomic_bool abort;
	atomic_int reports_left;      /* detail lines still allowed on stderr */
};

struct bench_thread {
	pthread_t tid;
	unsigned index;
	struct bench_shared *sh;
	int setup_err;                /* -errno when connecting failed */
	char setup_msg[256];
	struct bench_result res;
	/* --interval: res and iv change only under lock, which the thread
	 * drops while it waits in epoll, so main can read them between. */
	pthread_mutex_t lock;
	struct hist iv;               /* latencies since main last took them */
};

/* One --interval: [t, t + secs) seconds after the measurement began. */
struct bench_interval {
	double t, secs;
	uint64_t messages, errors;   /* errors: problems seen in it, mismatches too */
	uint64_t p50_ns, p99_ns;
};

/* What main measured around the threads, for the report. */
struct bench_summary {
	struct bench_interval *iv;   /* --interval, in order */
	unsigned niv;
	double secs, msgs_per_s, bytes_per_s, client_us, client_user_us, server_us;
	bool server_known;
	bool machine_known;          /* /proc/stat was read at both ends */
	struct cpu_times machine;    /* all CPUs, over the measured interval */
	struct cpu_times cpu[BENCH_MAX_CPUS];   /* --cpu, the same */
	char started[32];            /* UTC, ISO 8601, when the load began */
};

void *bench_thread_main(void *arg);
/* bench_setup.c: can every --bind address be bound here?  0, or -errno with
 * a line for the user in msg. */
int bench_check_bind(const struct bench_opts *o, char *msg, size_t len);

/* bench_opts.c */
void parse_options(struct bench_opts *o, int argc, char **argv);
void usage_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* bench_udp.c: the --udp mode's whole run and report; its exit status. */
int bench_udp_main(const struct bench_opts *o);

/* bench_out.c: the report, and the --interval and --histogram files. */
/* A JSON string, escaped; and the header every report begins with (tool,
 * host, time, placement, mode), followed by ", ". */
void bench_json_str(const char *s);
void bench_json_meta(const struct bench_opts *o, const char *started);
/* The options both modes have, and the end of the "options" object. */
void bench_json_common_options(const struct bench_opts *o);
/* {"p50": us, ..., "max": us, "mean": us} under key, for o's percentiles. */
void bench_json_latency(const char *key, const struct bench_opts *o, const struct hist *h);
/* {"user": ..., "total": ...} us per item: per_ns is ns per jiffy / items. */
void bench_json_cpu(const struct cpu_times *t, double per_ns);
void bench_text_latency(const char *label, const struct bench_opts *o, const struct hist *h);
void bench_text_cpu(const char *label, const struct cpu_times *t, double per_ns,
		    const char *unit);
uint64_t bench_total_errors(const struct bench_result *r);
/* A percentile's JSON key: 99.9 -> "p999". */
void bench_pct_key(double p, char *buf, size_t len);
void bench_print_json(const struct bench_opts *o, const struct bench_result *r,
		      const struct bench_summary *s);
void bench_print_text(const struct bench_opts *o, const struct bench_result *r,
		      const struct bench_summary *s, bool failed);
int bench_write_histogram(FILE *f, const struct hist *h);
/* One --interval line on stdout, as it ends (text output only). */
void bench_print_interval(const struct bench_interval *iv);

uint64_t bench_now_ns(void);
/* One line on stderr about one connection, at most a few per run. */
void bench_report(struct bench_shared *sh, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* --proxy: the PROXY header on a just-connected fd; 0 or -errno. */
int bench_send_proxy(const struct bench_opts *o, int fd);

#endif

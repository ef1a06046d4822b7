/* SPDX-License-Identifier: GPL-2.0-only */
/* echosrv: options -> configuration -> listeners -> workers -> signals ->
 * drain -> exit.
 *
 * The main thread does no I/O on connections.  It blocks every signal in
 * all threads and takes them synchronously with sigwaitinfo(), so signal
 * handling is ordinary code: TERM/INT start a drain (a second one exits at
 * once), HUP reloads the --config file in place (ops/reload.h) and has the
 * log writer reopen the trace file, and USR1 is how a
 * worker says it has ended or the control thread passes on a drain or stop
 * request.  The wait has a timeout so the same loop keeps systemd's STATUS=
 * and watchdog current. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/config.h"
#include "ops/ctl.h"
#include "engine/engine.h"
#include "server/listener.h"
#include "ops/metrics.h"
#include "core/preflight.h"
#include "ops/reload.h"
#include "core/safefile.h"
#include "server/server.h"
#include "ops/service.h"
#include "core/trace.h"
#include "core/util.h"
#include "server/worker.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static struct server srv;
static struct config cli;	/* the command line alone: each reload lays it over the file */
static struct safefile port_sf;	/* the port file, once written */

/* Files that would tell a client "server up" after we are gone. */
static void remove_files(void)
{
	if (srv.cfg.port_file)
		safefile_remove(srv.cfg.port_file, &port_sf);
	ctl_unlink();
}

/* Use the hard descriptor limit: connections are what this process is for. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* -V: what this binary is and what it can do here, as `haproxy -vv` says
 * it: the version (git describe: the commit, and "-dirty" for local
 * edits), the kernel, the engines that probe fine, the library versions. */
/* What -h, -V and --check print is their whole answer: a write that
 * failed (a full disk, a closed pipe) must not exit 0. */
static int stdout_result(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return EXIT_OK;
	log_fatal("cannot write to standard output: %s", strerror(errno));
	return EXIT_RUNTIME;
}

static void print_version(FILE *out)
{
	const char *g = strstr(ECHOSRV_VERSION, "+g");
	struct utsname u;

	fprintf(out, "echosrv %s\n", ECHOSRV_VERSION);
	if (g)
		fprintf(out, "commit %.*s%s\n", (int)strcspn(g + 2, "-"), g + 2,
			strstr(g, "-dirty") ? " (with local changes)" : "");
	else
		fprintf(out, "commit unknown (built from a release tarball)\n");
	if (!uname(&u))
		fprintf(out, "kernel %s %s %s\n", u.sysname, u.release, u.machine);
	fflush(out);
	engine_report(out, &srv.cfg);
	fprintf(out, "libmicrohttpd %s\n", metrics_lib_version());
}

static int parse_options(int argc, char **argv)
{
	char err[512];

	if (config_parse(&cli, argc, argv, err, sizeof(err))) {
		log_fatal("%s (see --help)", err);
		return EXIT_USAGE;
	}
	if (cli.help) {
		config_usage(stdout);
		exit(stdout_result());
	}
	if (cli.version) {
		print_version(stdout);
		exit(stdout_result());
	}
	if (config_load(&srv.cfg, &cli, err, sizeof(err))) {
		log_fatal("%s", err);
		return EXIT_USAGE;
	}
	if (config_finish(&srv.cfg, err, sizeof(err))) {
		log_fatal("%s", err);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static void announce(void)
{
	char flags[64];

	for (unsigned a = 0; a < srv.ls.n_addr; a++) {
		char text[ADDR_TEXT_MAX];
		if (!(srv.ls.used & (1u << a)))
			continue;
		addr_format((struct sockaddr *)&srv.ls.bound[a], text, sizeof(text));
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&srv.ls.bound[a];
		bool dual = a6->sin6_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
		log_notice("listening on %s%s%s", text, dual ? " (IPv4 and IPv6)" : "",
			   srv.ls.activated ? " (socket from systemd)" : "");
	}
	for (unsigned a = 0; a < srv.ls.udp.n_addr; a++) {
		char text[ADDR_TEXT_MAX];
		if (!(srv.ls.udp.used & (1u << a)))
			continue;
		addr_format((struct sockaddr *)&srv.ls.udp.bound[a], text, sizeof(text));
		log_notice("UDP echo on %s%s (rate %u/s per source, max %u bytes)", text,
			   srv.ls.udp.activated ? " (socket from systemd)" : "", srv.cfg.udp_rate,
			   srv.cfg.udp_max_size);
	}
	trace_format_flags(trace_get(), flags, sizeof(flags));
	log_notice("echosrv %s: engine %s, %u worker%s, max-conns %u, idle-timeout %us, trace %s",
		   ECHOSRV_VERSION, srv.engine->name, srv.n_workers, srv.n_workers == 1 ? "" : "s",
		   srv.cfg.max_conns, srv.cfg.idle_timeout, flags);
}

/* Create and start the workers; wait until each loop is set up. */
static int start_workers(void)
{
	srv.workers = calloc(srv.n_workers, sizeof(*srv.workers));
	if (!srv.workers)
		return -ENOMEM;
	for (unsigned i = 0; i < srv.n_workers; i++) {
		int r = worker_create(&srv.workers[i], &srv, i);
		if (r)
			return r;
	}
	for (unsigned i = 0; i < srv.n_workers; i++) {
		atomic_fetch_add(&srv.running, 1);
		int r = worker_start(&srv.workers[i]);
		if (r) {
			atomic_fetch_sub(&srv.running, 1);
			srv.n_workers = i;	/* only these need joining */
			return r;
		}
		sem_wait(&srv.ready);
		if (srv.workers[i].init_result) {
			srv.n_workers = i + 1;	/* only these need joining */
			return srv.workers[i].init_result;
		}
	}
	return 0;
}

static void stop_workers(int phase)
{
	if (phase == PHASE_DRAINING)
		atomic_store(&srv.drain_deadline,
			     mono_ns() + (uint64_t)reload_drain_timeout(&srv) * NSEC_PER_SEC);
	atomic_store_explicit(&srv.phase, phase, memory_order_release);
	for (unsigned i = 0; i < srv.n_workers; i++)
		worker_wake(&srv.workers[i]);
}

static void begin_drain(const char *why)
{
	if (server_phase(&srv) != PHASE_RUNNING)
		return;
	log_notice("%s: draining for up to %us", why, reload_drain_timeout(&srv));
	service_stopping(reload_drain_timeout(&srv));
	stop_workers(PHASE_DRAINING);
}

static void take_requests(void)
{
	int req = atomic_exchange(&srv.requests, 0);

	if (req & SERVER_REQ_STOP) {
		log_notice("stop requested on the control socket: closing all connections now");
		service_stopping(0);
		stop_workers(PHASE_STOPPING);
	} else if (req & SERVER_REQ_DRAIN) {
		begin_drain("drain requested on the control socket");
	}
}

/* A worker's loop failed (server/worker.c logged it): stop the rest now, then
 * exit 1.  Draining the healthy workers would only delay the restart. */
static void take_failure(void)
{
	uint64_t f = atomic_load(&srv.failure);

	if (!f || server_phase(&srv) == PHASE_STOPPING)
		return;
	log_notice("worker %u failed: closing every connection and exiting",
		   (unsigned)(f >> 32) - 1);
	service_stopping(0);
	stop_workers(PHASE_STOPPING);
}

/* Wait for signals and requests until every worker has ended. */
static void signal_loop(const sigset_t *set)
{
	while (atomic_load(&srv.running) > 0) {
		int ms = service_period_ms();
		struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
		int sig = sigtimedwait(set, NULL, &ts);

		if (sig == SIGHUP) {
			char err[512];
			/* Without a file there is nothing to read again; either
			 * way the trace file is reopened (reload_run() does it). */
			if (!srv.cfg.config_file || server_phase(&srv) != PHASE_RUNNING)
				trace_reopen();
			else
				reload_run(&srv, err, sizeof(err));	/* logs a refusal */
		} else if (sig == SIGTERM || sig == SIGINT) {
			if (server_phase(&srv) != PHASE_RUNNING) {
				log_notice("second %s: exiting now", strsignal(sig));
				/* Workers still run: no exit handlers, but no
				 * stale files either, and the queued log lines
				 * get their bounded flush (_exit skips atexit). */
				remove_files();
				trace_finish();
				_exit(atomic_load(&srv.failure) ? EXIT_RUNTIME : EXIT_OK);
			}
			begin_drain(strsignal(sig));
		} else if (sig == SIGUSR1) {
			take_requests();
		}
		take_failure();
		service_tick(&srv);
	}
}

static void cleanup(void)
{
	metrics_stop();
	ctl_stop();
	for (unsigned i = 0; i < srv.n_workers; i++)
		pthread_join(srv.workers[i].thread, NULL);
	for (unsigned i = 0; srv.workers && i < srv.cfg.workers; i++)
		worker_destroy(&srv.workers[i]);
	free(srv.workers);
	reload_fini(&srv);
	listeners_free(&srv.ls);
	limits_fini(&srv.limits);
	remove_files();
}

/* A start-up step failed after the workers started. */
static int abort_start(void)
{
	stop_workers(PHASE_STOPPING);
	cleanup();
	return EXIT_RUNTIME;
}

static int run(void)
{
	char err[512];
	sigset_t set;
	int r;

	block_signals(&set);
	srv.main_thread = pthread_self();
	srv.started = mono_ns();
	srv.n_workers = srv.cfg.workers;
	service_init();
	sem_init(&srv.ready, 0, 0);
	if ((r = limits_init(&srv.limits, srv.cfg.max_conns, srv.cfg.max_conns_per_ip))) {
		log_fatal("%s", strerror(-r));
		return EXIT_RUNTIME;
	}
	if (listeners_open(&srv.ls, &srv.cfg, err, sizeof(err))) {
		log_fatal("%s", err);
		return EXIT_RUNTIME;
	}
	if ((r = reload_init(&srv, &cli, &port_sf))) {
		log_fatal("%s", strerror(-r));
		listeners_free(&srv.ls);
		return EXIT_RUNTIME;
	}
	if ((r = start_workers())) {
		log_fatal("cannot start workers: %s", strerror(-r));
		stop_workers(PHASE_STOPPING);
		cleanup();
		return EXIT_RUNTIME;
	}
	/* ctl_start changes the umask for a moment: no other thread creates
	 * files (workers never do). */
	if (srv.cfg.ctl_path && ctl_start(&srv, srv.cfg.ctl_path, err, sizeof(err))) {
		log_fatal("%s", err);
		return abort_start();
	}
	if (srv.cfg.metrics.len && metrics_start(&srv, &srv.cfg.metrics, err, sizeof(err))) {
		log_fatal("%s", err);
		return abort_start();
	}
	/* The port file is the signal that the server is up: write it after
	 * the announcement so that whoever waits on it finds the log complete. */
	announce();
	trace_flush();
	if (srv.cfg.port_file &&
	    (r = listeners_write_port_file(&srv.ls, srv.cfg.port_file, &port_sf))) {
		/* Whoever asked for the file waits for it: fail loudly. */
		log_fatal("cannot write port file %s: %s", srv.cfg.port_file,
			strerror(-r));
		return abort_start();
	}
	atomic_store(&srv.serving, true);	/* /readyz: ready */
	service_ready(&srv);
	signal_loop(&set);
	cleanup();
	uint64_t f = atomic_load(&srv.failure);
	if (f) {
		log_notice("stopped: worker %u's event loop failed (%s)", (unsigned)(f >> 32) - 1,
			   strerror((int)(uint32_t)f));
		return EXIT_RUNTIME;
	}
	log_notice("stopped");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static char note[512];	/* kept: the metrics show it (engine_fallback) */
	char why[1024];	/* a log line's worth: it may hold two long paths */
	int r;

	raise_nofile();
	if ((r = parse_options(argc, argv)))
		return r;
	trace_set(srv.cfg.trace);
	if (uring_env_load(why, sizeof(why))) {
		log_fatal("%s", why);
		return EXIT_USAGE;
	}
	srv.engine = engine_select(&srv.cfg, why, sizeof(why), note, sizeof(note));
	if (!srv.engine) {
		log_fatal("--engine: %s", why);
		return EXIT_USAGE;
	}
	/* The files start-up would create: refused by --check (exit 2) and
	 * by a start (exit 1) in the same words, before anything is bound. */
	if (preflight_check(&srv.cfg, why, sizeof(why))) {
		log_fatal("%s", why);
		return srv.cfg.check ? EXIT_USAGE : EXIT_RUNTIME;
	}
	if (srv.cfg.check) {
		if (note[0])
			printf("echosrv: configuration OK (engine %s: %s)\n", srv.engine->name, note);
		else
			printf("echosrv: configuration OK (engine %s%s)\n", srv.engine->name,
			       srv.cfg.engine == ENGINE_AUTO ? ", chosen by --engine auto" : "");
		return stdout_result();
	}
	if ((r = trace_open(srv.cfg.trace_file))) {
		log_fatal("cannot open trace file %s: %s", srv.cfg.trace_file,
			strerror(-r));
		return EXIT_RUNTIME;
	}
	/* From here on no thread waits on the log sink (trace.h). */
	if ((r = trace_start())) {
		log_fatal("cannot start the log writer: %s", strerror(-r));
		return EXIT_RUNTIME;
	}
	if (note[0]) {
		log_notice("%s", note);
		srv.engine_fallback = note;
	}
	return run();
}

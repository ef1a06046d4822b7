/* SPDX-License-Identifier: GPL-2.0-only */
/* The Prometheus exposition text; see metrics.h.
 *
 * Names follow the Prometheus conventions: an echosrv_ prefix, base units
 * (seconds, bytes), _total on counters, HELP and TYPE for every family.
 * The only labels are bounded by configuration or by the code: worker (one
 * per --workers), reason (a fixed list), le (the histogram's fixed
 * buckets) and the build and engine descriptions; no per-peer or
 * per-connection label, so the number of series is fixed.
 *
 * Every value is a relaxed load of a counter some worker keeps for itself,
 * or a field of the shared state: rendering takes no lock a worker takes
 * and wakes no worker (except where an engine's byte counters lag and
 * report_refresh_quick() asks, at most once per SYNC_MIN_NS however often
 * we are scraped, never waiting on a stuck worker: this thread answers the
 * probes too). */
#include "ops/metrics.h"

#include <stdio.h>
#include <string.h>

#include "core/conn.h"
#include "core/trace.h"
#include "core/util.h"
#include "ops/health.h"
#include "ops/procmetrics.h"
#include "ops/report.h"
#include "server/server.h"
#include "server/worker.h"

#ifndef ECHOSRV_COMMIT
#define ECHOSRV_COMMIT "unknown"
#endif

static void family(struct sbuf *o, const char *name, const char *type, const char *help)
{
	sbuf_printf(o, "# HELP echosrv_%s %s\n# TYPE echosrv_%s %s\n", name, help, name, type);
}

/* A label value as the text format wants it: \, " and newline escaped. */
static void label_value(struct sbuf *o, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			sbuf_printf(o, "\\%c", *v);
		else if (*v == '\n')
			sbuf_printf(o, "\\n");
		else
			sbuf_printf(o, "%c", *v);
	}
}

static void info_metrics(struct server *srv, struct sbuf *o)
{
	uint64_t up = mono_ns() - srv->started;

	family(o, "build_info", "gauge", "Version and commit of the running server (always 1)");
	sbuf_printf(o, "echosrv_build_info{version=\"%s\",commit=\"%s\",engine=\"%s\"} 1\n",
		    ECHOSRV_VERSION, ECHOSRV_COMMIT, srv->engine->name);
	family(o, "engine_info", "gauge",
	       "The engine in use and why it is not the one asked for, if it is not (always 1)");
	sbuf_printf(o, "echosrv_engine_info{engine=\"%s\",fallback_reason=\"", srv->engine->name);
	label_value(o, srv->engine_fallback ? srv->engine_fallback : "none");
	sbuf_printf(o, "\"} 1\n");
	family(o, "uptime_seconds", "gauge", "Seconds since the server started");
	sbuf_printf(o, "echosrv_uptime_seconds %llu.%03llu\n", (unsigned long long)(up / NSEC_PER_SEC),
		    (unsigned long long)(up % NSEC_PER_SEC / NSEC_PER_MSEC));
	family(o, "workers", "gauge", "Worker threads");
	sbuf_printf(o, "echosrv_workers %u\n", srv->n_workers);
	family(o, "draining", "gauge", "1 while the server drains before exiting");
	sbuf_printf(o, "echosrv_draining %d\n", server_phase(srv) != PHASE_RUNNING);
	family(o, "trace_flags", "gauge", "Trace flag mask (0x1 error, 0x2 info, 0x4 conn, 0x8 data)");
	sbuf_printf(o, "echosrv_trace_flags %u\n", trace_get());
}

static void log_queue_metrics(struct sbuf *o)
{
	struct trace_queue_stats tq;

	trace_queue_stats(&tq);
	family(o, "trace_lines_dropped_total", "counter",
	       "Log lines dropped because the log output did not keep up");
	sbuf_printf(o, "echosrv_trace_lines_dropped_total %llu\n", (unsigned long long)tq.dropped);
	family(o, "log_queue_lines", "gauge", "Log lines waiting for the log writer");
	sbuf_printf(o, "echosrv_log_queue_lines %llu\n", (unsigned long long)tq.lines);
	family(o, "log_queue_bytes", "gauge", "Bytes of log lines waiting for the log writer");
	sbuf_printf(o, "echosrv_log_queue_bytes %llu\n", (unsigned long long)tq.bytes);
	family(o, "log_queue_capacity_bytes", "gauge", "Bytes the log queue holds at most");
	sbuf_printf(o, "echosrv_log_queue_capacity_bytes %llu\n", (unsigned long long)tq.capacity);
}

/* How close to its limits the server runs. */
static void saturation_metrics(struct server *srv, const struct stats_sum *s, struct sbuf *o)
{
	uint64_t used = 0, size = 0;

	family(o, "connections_max", "gauge", "The limit on open connections in force (--max-conns)");
	sbuf_printf(o, "echosrv_connections_max %u\n", srv->limits.max_conns);
	family(o, "accepting", "gauge",
	       "1 while new connections are accepted (not starting, draining or paused)");
	sbuf_printf(o, "echosrv_accepting %d\n", health_accepting(srv));
	family(o, "accept_paused_total", "counter",
	       "Times accepting paused because descriptors or memory ran out");
	sbuf_printf(o, "echosrv_accept_paused_total %llu\n", (unsigned long long)s->accept_pauses);
	family(o, "per_ip_table_addresses", "gauge",
	       "Peer addresses in the --max-conns-per-ip table");
	sbuf_printf(o, "echosrv_per_ip_table_addresses %u\n",
		    atomic_load_explicit(&srv->limits.addrs, memory_order_relaxed));
	family(o, "per_ip_table_capacity", "gauge",
	       "Addresses the --max-conns-per-ip table holds at most (0: no per-address limit)");
	sbuf_printf(o, "echosrv_per_ip_table_capacity %u\n",
		    srv->limits.table ? srv->limits.mask + 1 : 0);
	for (unsigned i = 0; i < srv->n_workers; i++) {
		used += atomic_load_explicit(&srv->workers[i].pool_used, memory_order_relaxed);
		size += atomic_load_explicit(&srv->workers[i].pool_size, memory_order_relaxed);
	}
	family(o, "buffer_pool_used_buffers", "gauge",
	       "Shared receive buffers (io_uring) held by connections");
	sbuf_printf(o, "echosrv_buffer_pool_used_buffers %llu\n", (unsigned long long)used);
	family(o, "buffer_pool_buffers", "gauge",
	       "Shared receive buffers (io_uring) in all; 0 for engines without a pool");
	sbuf_printf(o, "echosrv_buffer_pool_buffers %llu\n", (unsigned long long)size);
}

/* The counters each worker keeps, one series per worker. */
static void worker_metrics(struct server *srv, struct sbuf *o)
{
	unsigned n = srv->n_workers;
	const struct worker *ws = srv->workers;

	family(o, "connections_active", "gauge", "Connections open now");
	for (unsigned i = 0; i < n; i++) {
		/* Two loads, not one snapshot: a close between them must
		 * not make the difference wrap. */
		uint64_t closed = STAT_GET(&ws[i].stats, closed);
		uint64_t accepted = STAT_GET(&ws[i].stats, accepted);
		sbuf_printf(o, "echosrv_connections_active{worker=\"%u\"} %llu\n", i,
			    (unsigned long long)(accepted > closed ? accepted - closed : 0));
	}
	family(o, "proxy_headers_waiting", "gauge",
	       "Connections on a proxy listener whose PROXY header has not come yet");
	for (unsigned i = 0; i < n; i++)
		sbuf_printf(o, "echosrv_proxy_headers_waiting{worker=\"%u\"} %llu\n", i,
			    (unsigned long long)STAT_GET(&ws[i].stats, headers_waiting));
#define X(f, p, h)                                                                          \
	family(o, p, "counter", h);                                                         \
	for (unsigned i = 0; i < n; i++)                                                    \
		sbuf_printf(o, "echosrv_" p "{worker=\"%u\"} %llu\n", i,                    \
			    (unsigned long long)STAT_GET(&ws[i].stats, f));
	STATS_COUNTERS(X)
#undef X
	family(o, "udp_dropped_total", "counter", "UDP datagrams dropped, by reason (docs/udp.md)");
#define X(f, p, h)                                                                          \
	for (unsigned i = 0; i < n; i++)                                                    \
		sbuf_printf(o, "echosrv_udp_dropped_total{worker=\"%u\",reason=\"" p "\"} %llu\n", \
			    i, (unsigned long long)STAT_GET(&ws[i].stats, f));
	STATS_UDP_DROPS(X)
#undef X
	family(o, "worker_busy_seconds_total", "counter",
	       "Time each worker loop spent working rather than waiting for events");
	for (unsigned i = 0; i < n; i++) {
		uint64_t ns = STAT_GET(&ws[i].stats, busy_ns);
		sbuf_printf(o, "echosrv_worker_busy_seconds_total{worker=\"%u\"} %llu.%09llu\n", i,
			    (unsigned long long)(ns / NSEC_PER_SEC),
			    (unsigned long long)(ns % NSEC_PER_SEC));
	}
}

/* The close reasons, as CONN lines name them.  A reason this build does
 * not have yet is shown as 0 rather than left out, so that queries and
 * alerts over the family never change shape. */
static const char *const close_labels[] = {
	"peer-closed", "idle-timeout", "reset", "error", "limit", "acl", "drain", "admin",
};

static uint64_t closes_of(struct server *srv, const char *label)
{
	uint64_t n = 0;

	for (unsigned r = 1; r < STATS_CLOSE_REASONS; r++) {
		if (strcmp(close_reason_name((enum close_reason)r), label))
			continue;
		for (unsigned i = 0; i < srv->n_workers; i++)
			n += STAT_GET(&srv->workers[i].stats, closes[r]);
	}
	return n;
}

static void close_metrics(struct server *srv, const struct stats_sum *s, struct sbuf *o)
{
	static const uint32_t bounds[] = STATS_DURATION_BOUNDS_MS;
	uint64_t buckets[STATS_DURATION_BUCKETS] = { 0 }, sum_ns = 0, cum = 0;

	family(o, "rejected_total", "counter", "Connections refused at accept, by reason");
#define X(f, p, h) \
	sbuf_printf(o, "echosrv_rejected_total{reason=\"" p "\"} %llu\n", (unsigned long long)s->f);
	STATS_REJECTS(X)
#undef X
	family(o, "closes_total", "counter",
	       "Connections closed, by reason; limit and acl are connections refused at accept");
	for (unsigned i = 0; i < ARRAY_SIZE(close_labels); i++) {
		uint64_t n = closes_of(srv, close_labels[i]);
		if (!strcmp(close_labels[i], "limit"))
			n += s->rej_max_conns + s->rej_per_ip;
		else if (!strcmp(close_labels[i], "acl"))
			n += s->rej_acl;
		sbuf_printf(o, "echosrv_closes_total{reason=\"%s\"} %llu\n", close_labels[i],
			    (unsigned long long)n);
	}
	for (unsigned i = 0; i < srv->n_workers; i++) {
		for (unsigned b = 0; b < STATS_DURATION_BUCKETS; b++)
			buckets[b] += STAT_GET(&srv->workers[i].stats, duration[b]);
		sum_ns += STAT_GET(&srv->workers[i].stats, duration_ns);
	}
	family(o, "connection_duration_seconds", "histogram",
	       "How long served connections lived, from accept to close");
	for (unsigned b = 0; b < STATS_DURATION_BUCKETS; b++) {
		cum += buckets[b];
		if (b < ARRAY_SIZE(bounds))
			sbuf_printf(o, "echosrv_connection_duration_seconds_bucket{le=\"%g\"} %llu\n",
				    bounds[b] / 1000.0, (unsigned long long)cum);
		else
			sbuf_printf(o, "echosrv_connection_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
				    (unsigned long long)cum);
	}
	sbuf_printf(o, "echosrv_connection_duration_seconds_sum %llu.%09llu\n",
		    (unsigned long long)(sum_ns / NSEC_PER_SEC),
		    (unsigned long long)(sum_ns % NSEC_PER_SEC));
	sbuf_printf(o, "echosrv_connection_duration_seconds_count %llu\n", (unsigned long long)cum);
}

void metrics_render(struct server *srv, struct sbuf *o)
{
	struct stats_sum s;
	uint64_t active;

	report_refresh_quick(srv);
	report_sum(srv, &s, &active);
	info_metrics(srv, o);
	log_queue_metrics(o);
	saturation_metrics(srv, &s, o);
	worker_metrics(srv, o);
	close_metrics(srv, &s, o);
	procmetrics_render(o);
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* Prometheus exposition over libmicrohttpd; see metrics.h.
 *
 * Names follow the Prometheus conventions: an echosrv_ prefix, base units
 * (seconds, bytes), _total on counters, HELP and TYPE for every family.
 * Rejections are one family with a reason label; there are no per-peer or
 * per-connection labels, so the number of series is fixed. */
#include "ops/metrics.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/metrics_http.h"
#include "ops/report.h"
#include "server/server.h"
#include "core/trace.h"
#include "core/util.h"

static struct server *msrv;

static void family(struct sbuf *o, const char *name, const char *type, const char *help)
{
	sbuf_printf(o, "# HELP echosrv_%s %s\n# TYPE echosrv_%s %s\n", name, help, name, type);
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

void metrics_render(struct server *srv, struct sbuf *o)
{
	struct stats_sum s;
	uint64_t active, up = mono_ns() - srv->started;

	report_refresh(srv);
	report_sum(srv, &s, &active);
	family(o, "build_info", "gauge", "Version and engine of the running server (always 1)");
	sbuf_printf(o, "echosrv_build_info{version=\"%s\",engine=\"%s\"} 1\n", ECHOSRV_VERSION,
		    srv->engine->name);
	family(o, "uptime_seconds", "gauge", "Seconds since the server started");
	sbuf_printf(o, "echosrv_uptime_seconds %llu.%03llu\n", (unsigned long long)(up / NSEC_PER_SEC),
		    (unsigned long long)(up % NSEC_PER_SEC / NSEC_PER_MSEC));
	family(o, "workers", "gauge", "Worker threads");
	sbuf_printf(o, "echosrv_workers %u\n", srv->n_workers);
	family(o, "draining", "gauge", "1 while the server drains before exiting");
	sbuf_printf(o, "echosrv_draining %d\n", server_phase(srv) != PHASE_RUNNING);
	family(o, "trace_flags", "gauge", "Trace flag mask (0x1 error, 0x2 info, 0x4 conn, 0x8 data)");
	sbuf_printf(o, "echosrv_trace_flags %u\n", trace_get());
	log_queue_metrics(o);
	family(o, "connections_active", "gauge", "Connections open now");
	sbuf_printf(o, "echosrv_connections_active %llu\n", (unsigned long long)active);
#define X(f, p, h)                                                             \
	family(o, p, "counter", h);                                            \
	sbuf_printf(o, "echosrv_" p " %llu\n", (unsigned long long)s.f);
	STATS_COUNTERS(X)
#undef X
	family(o, "rejected_total", "counter", "Connections refused at accept, by reason");
#define X(f, p, h) \
	sbuf_printf(o, "echosrv_rejected_total{reason=\"" p "\"} %llu\n", (unsigned long long)s.f);
	STATS_REJECTS(X)
#undef X
}

static enum MHD_Result reply(struct MHD_Connection *mc, unsigned code, char *body, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				code == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
						    : "text/plain; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(mc, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **state)
{
	if (*upload_len) {	/* a body we do not want: discard it */
		*upload_len = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/metrics"))
		return reply(mc, MHD_HTTP_NOT_FOUND, strdup("not found; try /metrics\n"), 24);
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(mc, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("use GET\n"), 8);

	struct sbuf b = { .max = 1u << 20 };
	size_t len;
	metrics_render(msrv, &b);
	char *text = sbuf_take(&b, &len);
	if (!text)
		return reply(mc, MHD_HTTP_INTERNAL_SERVER_ERROR, strdup("out of memory\n"), 14);
	return reply(mc, MHD_HTTP_OK, text, len);
}

int metrics_start(struct server *srv, const struct listen_addr *addr, char *err, size_t errlen)
{
	char text[ADDR_TEXT_MAX], why[200];
	struct sockaddr_storage bound = addr->ss;
	uint16_t port;
	int r;

	msrv = srv;
	addr_format((const struct sockaddr *)&addr->ss, text, sizeof(text));
	if ((r = mhttp_start(addr, on_request, &port, why, sizeof(why)))) {
		snprintf(err, errlen, "--metrics: cannot serve on %s: %s", text, why);
		return r;
	}
	/* The port sits at the same offset in sockaddr_in and sockaddr_in6. */
	((struct sockaddr_in *)&bound)->sin_port = htons(port);
	addr_format((const struct sockaddr *)&bound, text, sizeof(text));
	log_notice("metrics at http://%s/metrics", text);
	return 0;
}

void metrics_stop(void)
{
	mhttp_stop();
}

const char *metrics_lib_version(void)
{
	return mhttp_lib_version();
}

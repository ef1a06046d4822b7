/* SPDX-License-Identifier: GPL-2.0-only */
/* Statistics and connection reports; see report.h.
 *
 * Counters are read with relaxed loads while workers keep writing them, so a
 * report is a consistent picture of each counter, not of all of them at one
 * instant; "active" is computed as accepted - closed and clamped at zero. */
#include "ops/report.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/health.h"
#include "server/server.h"
#include "core/trace.h"
#include "core/util.h"
#include "server/worker.h"

static const char *const phase_names[] = {
	[PHASE_RUNNING] = "running",
	[PHASE_DRAINING] = "draining",
	[PHASE_STOPPING] = "stopping",
};

static uint64_t active_of(const struct stats_sum *s)
{
	return s->accepted > s->closed ? s->accepted - s->closed : 0;
}

/* Ask every worker to refresh and wait for each until deadline; with
 * stale_ns, not for a worker whose loop last turned longer ago than that. */
static void refresh(struct server *srv, uint64_t wait_ns, uint64_t stale_ns)
{
	uint64_t now = mono_ns(), deadline = now + wait_ns;
	struct timespec pause = { .tv_nsec = 200 * 1000 };

	if (!srv->engine->sync)
		return;
	for (unsigned i = 0; i < srv->n_workers; i++) {
		atomic_fetch_add(&srv->workers[i].sync_req, 1);
		worker_wake(&srv->workers[i]);
	}
	for (unsigned i = 0; i < srv->n_workers; i++) {
		struct worker *w = &srv->workers[i];
		uint64_t turned = atomic_load_explicit(&w->alive, memory_order_relaxed);
		if (stale_ns && turned && now - turned > stale_ns)
			continue;	/* stuck: its counters stay as they were */
		while (atomic_load(&w->sync_done) < atomic_load(&w->sync_req) &&
		       server_phase(srv) == PHASE_RUNNING && mono_ns() < deadline)
			nanosleep(&pause, NULL);
	}
}

void report_refresh(struct server *srv)
{
	refresh(srv, REPORT_WAIT_MS * NSEC_PER_MSEC, 0);
}

void report_refresh_quick(struct server *srv)
{
	refresh(srv, REPORT_QUICK_WAIT_MS * NSEC_PER_MSEC, 2 * HEALTH_PERIOD_NS);
}

void report_sum(struct server *srv, struct stats_sum *sum, uint64_t *active)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < srv->n_workers; i++)
		stats_accumulate(sum, &srv->workers[i].stats);
	*active = active_of(sum);
}

/* The counters of one sum as JSON members (no braces). */
static void counters_json(struct sbuf *out, const struct stats_sum *s, const char *indent)
{
	sbuf_printf(out, "%s\"connections_active\": %llu,\n%s\"proxy_headers_waiting\": %llu",
		    indent, (unsigned long long)active_of(s), indent,
		    (unsigned long long)s->headers_waiting);
#define X(f, p, h) sbuf_printf(out, ",\n%s\"" p "\": %llu", indent, (unsigned long long)s->f);
	STATS_COUNTERS(X)
#undef X
	sbuf_printf(out, ",\n%s\"rejected\": {", indent);
	const char *sep = "";
#define X(f, p, h) { sbuf_printf(out, "%s\"" p "\": %llu", sep, (unsigned long long)s->f); sep = ", "; }
	STATS_REJECTS(X)
#undef X
	sbuf_printf(out, "},\n%s\"udp_dropped\": {", indent);
	sep = "";
#define X(f, p, h) { sbuf_printf(out, "%s\"" p "\": %llu", sep, (unsigned long long)s->f); sep = ", "; }
	STATS_UDP_DROPS(X)
#undef X
	sbuf_printf(out, "}");
}

void report_stats_json(struct server *srv, struct sbuf *out)
{
	struct stats_sum total;
	uint64_t active, up = mono_ns() - srv->started;
	char flags[64];
	int phase = server_phase(srv);

	report_refresh(srv);
	report_sum(srv, &total, &active);
	trace_format_flags(trace_get(), flags, sizeof(flags));
	sbuf_printf(out, "{\n  \"version\": \"%s\",\n  \"engine\": \"%s\",\n  \"workers\": %u,\n"
			 "  \"uptime_seconds\": %llu.%03llu,\n  \"phase\": \"%s\",\n"
			 "  \"trace\": \"%s\",\n",
		    ECHOSRV_VERSION, srv->engine->name, srv->n_workers,
		    (unsigned long long)(up / NSEC_PER_SEC),
		    (unsigned long long)(up % NSEC_PER_SEC / NSEC_PER_MSEC),
		    phase_names[phase], flags);
	counters_json(out, &total, "  ");
	struct trace_queue_stats tq;
	trace_queue_stats(&tq);
	sbuf_printf(out, ",\n  \"trace_lines_dropped\": %llu,\n"
			 "  \"log_queue\": {\"lines\": %llu, \"bytes\": %llu, \"capacity_bytes\": %llu}",
		    (unsigned long long)tq.dropped, (unsigned long long)tq.lines,
		    (unsigned long long)tq.bytes, (unsigned long long)tq.capacity);
	sbuf_printf(out, ",\n  \"per_worker\": [");
	for (unsigned i = 0; i < srv->n_workers; i++) {
		struct stats_sum one = { 0 };
		stats_accumulate(&one, &srv->workers[i].stats);
		sbuf_printf(out, "%s\n    {\n      \"worker\": %u,\n", i ? "," : "", i);
		counters_json(out, &one, "      ");
		sbuf_printf(out, "\n    }");
	}
	sbuf_printf(out, "\n  ]\n}\n");
}

/* --- connections ----------------------------------------------------------- */

static void peer_text(const struct ipaddr *ip, uint16_t port, char *buf, size_t len)
{
	struct sockaddr_storage ss = { 0 };

	if (ip->family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		memcpy(&a->sin_addr, ip->bytes, 4);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		memcpy(&a->sin6_addr, ip->bytes, 16);
	}
	addr_format((struct sockaddr *)&ss, buf, len);
}

static const char *const state_names[] = {
	[CONN_FREE] = "free", [CONN_OPEN] = "open",
	[CONN_FLUSHING] = "flushing", [CONN_CLOSING] = "closing",
};

struct listing {
	struct worker *w;
	struct sbuf out;
	uint32_t listed, total;
};

static void list_one(struct conn *c, void *arg)
{
	struct listing *l = arg;
	char peer[ADDR_TEXT_MAX], via[ADDR_TEXT_MAX + 12] = "";
	uint64_t age = l->w->now - c->started;

	if (l->total++ >= REPORT_CONNS_MAX)
		return;
	l->listed++;
	peer_text(&c->peer, c->port, peer, sizeof(peer));
	if (c->via.family) {	/* came through a PROXY header: the balancer */
		memcpy(via, "\"via\": \"", 8);
		peer_text(&c->via, c->via_port, via + 8, ADDR_TEXT_MAX);
		strcat(via, "\", ");
	}
	sbuf_printf(&l->out,
		    "%s\n    {\"id\": \"%llx\", \"worker\": %u, \"peer\": \"%s\", %s\"state\": \"%s\", "
		    "\"age_seconds\": %llu.%03llu, \"bytes_received\": %llu, \"bytes_sent\": %llu, "
		    "\"held_max_bytes\": %u}",
		    l->out.len ? "," : "", (unsigned long long)conn_id(c), l->w->id, peer, via,
		    state_names[c->state], (unsigned long long)(age / NSEC_PER_SEC),
		    (unsigned long long)(age % NSEC_PER_SEC / NSEC_PER_MSEC),
		    (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out, c->held_max);
}

/* The question put to each worker's mailbox (runs in its thread). */
static char *list_conns(struct worker *w, uint64_t arg, uint32_t *listed, uint32_t *total)
{
	struct listing l = { .w = w, .out = { .max = 4u << 20 } };
	char *reply;

	conn_table_each(&w->conns, list_one, &l);
	reply = sbuf_take(&l.out, NULL);
	sbuf_free(&l.out);
	*listed = reply ? l.listed : 0;	/* out of memory: nothing listed */
	*total = l.total;
	return reply;
}

void report_conns_json(struct server *srv, struct sbuf *out)
{
	struct timespec deadline;
	uint64_t total = 0, listed = 0;
	unsigned silent = 0;
	const char *sep = "";

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += REPORT_WAIT_MS / 1000;
	deadline.tv_nsec += (REPORT_WAIT_MS % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	for (unsigned i = 0; i < srv->n_workers; i++) {
		worker_query_ask(&srv->workers[i].query, list_conns, 0, true);
		worker_wake(&srv->workers[i]);
	}
	sbuf_printf(out, "{\n  \"connections\": [");
	for (unsigned i = 0; i < srv->n_workers; i++) {
		struct worker_query *q = &srv->workers[i].query;
		if (!worker_query_await(q, &deadline)) {
			silent += !q->gone;
			continue;
		}
		if (q->reply && q->reply[0]) {
			sbuf_printf(out, "%s%s", sep, q->reply);
			sep = ",";
		}
		total += q->total;
		listed += q->listed;
	}
	/* "open" > "listed" when a worker cut its list at REPORT_CONNS_MAX. */
	sbuf_printf(out, "\n  ],\n  \"open\": %llu,\n  \"listed\": %llu,\n"
			 "  \"workers_not_answering\": %u\n}\n",
		    (unsigned long long)total, (unsigned long long)listed, silent);
}

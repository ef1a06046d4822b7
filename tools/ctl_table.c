/* SPDX-License-Identifier: GPL-2.0-only */
/* Tables from the server's JSON; see ctl_table.h. */
#include "ctl_table.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The scalar value of member "key" within [s, end): a string without its
 * quotes, or a number, copied to out ("-" when absent). */
static const char *member(const char *s, const char *end, const char *key, char *out,
			  size_t len)
{
	char pat[64];
	size_t pl = (size_t)snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *p = s;

	snprintf(out, len, "-");
	for (; p && p + pl <= end; p++) {
		p = memchr(p, '"', (size_t)(end - p));
		if (!p || p + pl > end)
			return out;
		if (!memcmp(p, pat, pl))
			break;
	}
	if (!p || p + pl > end)
		return out;
	p += pl;
	bool quoted = *p == '"';
	p += quoted;
	size_t n = 0;
	while (p + n < end && (quoted ? p[n] != '"' : strchr(",}\n ", p[n]) == NULL))
		n++;
	if (n + 1 > len)
		n = len - 1;
	memcpy(out, p, n);
	out[n] = '\0';
	return out;
}

static unsigned long long number(const char *s, const char *end, const char *key)
{
	char v[32];

	return strtoull(member(s, end, key, v, sizeof(v)), NULL, 10);
}

/* The end of the object or array that starts at s ('{' or '['). */
static const char *closing(const char *s, const char *end)
{
	int depth = 0;

	for (const char *p = s; p < end; p++) {
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
	}
	return end;
}

/* The sum of the numbers in the "rejected": {...} member of [s, end). */
static unsigned long long rejected(const char *s, const char *end)
{
	const char *p = strstr(s, "\"rejected\": {");
	unsigned long long sum = 0;

	if (!p || p >= end)
		return 0;
	const char *stop = closing(strchr(p, '{'), end);
	while ((p = memchr(p, ':', (size_t)(stop - p))) != NULL) {
		p++;
		sum += strtoull(p, NULL, 10);
	}
	return sum;
}

static void stats_row(FILE *out, const char *label, const char *s, const char *end)
{
	fprintf(out, "%-8s %8llu %10llu %14llu %14llu %8llu %6llu %6llu %6llu\n", label,
		number(s, end, "connections_active"), number(s, end, "connections_total"),
		number(s, end, "bytes_received_total"), number(s, end, "bytes_sent_total"),
		rejected(s, end), number(s, end, "idle_closes_total"),
		number(s, end, "resets_total"), number(s, end, "errors_total"));
}

void table_stats(FILE *out, const char *json)
{
	const char *end = json + strlen(json);
	const char *workers = strstr(json, "\"per_worker\": [");
	const char *top_end = workers ? workers : end;
	char version[64], engine[32], up[32], phase[16], trace[48], n[16];

	fprintf(out, "echosrv %s, engine %s, %s worker(s), up %s s, %s, trace %s\n",
		member(json, top_end, "version", version, sizeof(version)),
		member(json, top_end, "engine", engine, sizeof(engine)),
		member(json, top_end, "workers", n, sizeof(n)),
		member(json, top_end, "uptime_seconds", up, sizeof(up)),
		member(json, top_end, "phase", phase, sizeof(phase)),
		member(json, top_end, "trace", trace, sizeof(trace)));
	fprintf(out, "%-8s %8s %10s %14s %14s %8s %6s %6s %6s\n", "worker", "active", "total",
		"bytes_in", "bytes_out", "rejected", "idle", "resets", "errors");
	if (workers) {
		const char *p = strchr(workers, '['), *stop = closing(p, end);
		while ((p = memchr(p + 1, '{', (size_t)(stop - p - 1))) != NULL) {
			const char *obj_end = closing(p, stop);
			char id[16];
			stats_row(out, member(p, obj_end, "worker", id, sizeof(id)), p, obj_end);
			p = obj_end - 1;
		}
	}
	stats_row(out, "all", json, top_end);
	/* Not a column: only servers with proxy listeners have any, and a
	 * header wait is no connection yet (docs/deploy.md). */
	unsigned long long waiting = number(json, top_end, "proxy_headers_waiting");
	if (waiting)
		fprintf(out, "proxy headers waiting: %llu\n", waiting);
	unsigned long long dropped = number(json, top_end, "trace_lines_dropped");
	if (dropped)
		fprintf(out, "log lines dropped: %llu\n", dropped);
}

void table_conns(FILE *out, const char *json)
{
	const char *end = json + strlen(json), *p = json;
	char v[8][64];

	fprintf(out, "%-18s %6s %-40s %-9s %10s %12s %12s\n", "id", "worker", "peer", "state",
		"age_s", "bytes_in", "bytes_out");
	while ((p = strstr(p, "{\"id\": ")) != NULL) {
		const char *line_end = strchr(p, '}');
		if (!line_end)
			break;
		fprintf(out, "%-18s %6s %-40s %-9s %10s %12s %12s\n",
			member(p, line_end, "id", v[0], sizeof(v[0])),
			member(p, line_end, "worker", v[1], sizeof(v[1])),
			member(p, line_end, "peer", v[2], sizeof(v[2])),
			member(p, line_end, "state", v[3], sizeof(v[3])),
			member(p, line_end, "age_seconds", v[4], sizeof(v[4])),
			member(p, line_end, "bytes_received", v[5], sizeof(v[5])),
			member(p, line_end, "bytes_sent", v[6], sizeof(v[6])));
		p = line_end;
	}
	unsigned long long open = number(json, end, "open"), listed = number(json, end, "listed");
	unsigned long long silent = number(json, end, "workers_not_answering");
	fprintf(out, "%llu open", open);
	if (listed < open)
		fprintf(out, ", %llu listed", listed);
	if (silent)
		fprintf(out, ", %llu worker(s) not answering", silent);
	fputc('\n', out);
}

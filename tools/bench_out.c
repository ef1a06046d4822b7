/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench_out.c - what echosrv-bench prints: the report (text, or one JSON
 * object that carries everything needed to compare it with another run
 * later: the tool, the machine, the time, every option and the placement),
 * the --interval lines and the --histogram file.
 *
 * A field is printed only where it means something: a closed-loop run has
 * no rate, an open-loop run no pipeline, a run without churn no churn
 * figures, a run without --server-pid no server CPU.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

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

static const char *const fail_names[] = {
#define X(name, text) #name,
	BENCH_CONN_FAILS(X)
#undef X
};

static const char *const fail_texts[] = {
#define X(name, text) text,
	BENCH_CONN_FAILS(X)
#undef X
};

uint64_t bench_total_errors(const struct bench_result *r)
{
	uint64_t n = 0;

	for (int e = 0; e < BERR__COUNT; e++)
		n += r->err[e];
	return n;
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

/* Length of the well-formed UTF-8 sequence at s, or 0 when it is not one
 * (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned cp, n;

	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	n = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	cp = s[0] & (0x3f >> (n - 1));
	for (unsigned i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string: quotes, backslashes and control characters escaped, and
 * bytes that are not UTF-8 (a file name, --placement) written as U+FFFD,
 * so the object stays valid JSON whatever the options held. */
void bench_json_str(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	putchar('"');
	while (*s) {
		size_t n;

		if (*s == '"' || *s == '\\') {
			printf("\\%c", *s++);
		} else if (*s < 0x20) {
			printf("\\u%04x", *s++);
		} else if (*s < 0x80) {
			putchar(*s++);
		} else if ((n = utf8_len(s))) {
			fwrite(s, 1, n, stdout);
			s += n;
		} else {
			fputs("\\ufffd", stdout);
			s++;
		}
	}
	putchar('"');
}

/* "p99.9" -> key "p999", the form the earlier reports used. */
void bench_pct_key(double p, char *buf, size_t len)
{
	char num[32];
	size_t j = 0;

	snprintf(num, sizeof(num), "%g", p);
	buf[j++] = 'p';
	for (const char *c = num; *c && j + 1 < len; c++)
		if (*c != '.')
			buf[j++] = *c;
	buf[j] = 0;
}

static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[512];

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!colon || strncmp(line, "model name", 10))
			continue;
		colon += strspn(colon + 1, " \t") + 1;
		colon[strcspn(colon, "\n")] = 0;
		snprintf(buf, len, "%s", colon);
		break;
	}
	fclose(f);
}

void bench_json_meta(const struct bench_opts *o, const char *started)
{
	struct utsname u;
	char model[256];

	if (uname(&u) < 0)
		memset(&u, 0, sizeof(u));
	cpu_model(model, sizeof(model));
	printf("\"tool\": {\"name\": \"echosrv-bench\", \"version\": ");
	bench_json_str(BENCH_VERSION);
	printf(", \"commit\": ");
	bench_json_str(BENCH_COMMIT);
	printf("}, \"host\": {\"name\": ");
	bench_json_str(u.nodename);
	printf(", \"kernel\": ");
	bench_json_str(u.release);
	printf(", \"cpu_model\": ");
	bench_json_str(model);
	printf(", \"cpus\": %ld}, \"time\": \"%s\", \"placement\": ",
	       sysconf(_SC_NPROCESSORS_ONLN), started);
	bench_json_str(o->placement);
	printf(", \"mode\": \"%s\", ", o->udp ? "udp" : "tcp");
}

static void json_options(const struct bench_opts *o)
{
	printf("\"options\": {\"address\": ");
	bench_json_str(o->addr_text);
	printf(", \"connections\": %u, \"size\": %llu, \"threads\": %u, "
	       "\"duration_s\": %g, \"warmup_s\": %g, \"give_up_s\": %g",
	       o->conns, (unsigned long long)o->size, o->threads, o->duration,
	       o->warmup, (double)o->give_up_ns / NS_PER_S);
	if (o->rate > 0)
		printf(", \"rate\": %g", o->rate);
	else
		printf(", \"pipeline\": %u", o->pipeline);
	if (o->connect_rate > 0) {
		printf(", \"connect_rate\": %g", o->connect_rate);
		if (o->life_ns)
			printf(", \"lifetime_s\": %g", (double)o->life_ns / NS_PER_S);
		else
			printf(", \"lifetime_messages\": %llu", (unsigned long long)o->life_msgs);
	}
	if (o->interval > 0)
		printf(", \"interval_s\": %g", o->interval);
	if (o->proxy)
		printf(", \"proxy\": \"v%d\"", o->proxy);
	bench_json_common_options(o);
}

void bench_json_common_options(const struct bench_opts *o)
{
	if (o->server_pid)
		printf(", \"server_pid\": %d", (int)o->server_pid);
	printf(", \"percentiles\": [");
	for (unsigned i = 0; i < o->npcts; i++)
		printf("%s%g", i ? ", " : "", o->pcts[i]);
	printf("]");
	if (o->histogram) {
		printf(", \"histogram\": ");
		bench_json_str(o->histogram);
	}
	if (o->nbind) {
		printf(", \"bind\": ");
		bench_json_str(o->bind_text);
	}
	if (o->ncpus) {
		printf(", \"cpu\": [");
		for (unsigned i = 0; i < o->ncpus; i++)
			printf("%s%d", i ? ", " : "", o->cpus[i]);
		printf("]");
	}
	printf("}, ");
}

void bench_json_latency(const char *key, const struct bench_opts *o, const struct hist *h)
{
	char k[40];

	printf("\"%s\": {", key);
	for (unsigned i = 0; i < o->npcts; i++) {
		bench_pct_key(o->pcts[i], k, sizeof(k));
		printf("\"%s\": %.1f, ", k, us(hist_quantile(h, o->pcts[i] / 100)));
	}
	printf("\"max\": %.1f, \"mean\": %.1f}", us(h->count ? h->max : 0),
	       h->count ? us(h->sum / h->count) : 0.0);
}

/* CPU time per message, split the way /proc/stat splits it. */
void bench_json_cpu(const struct cpu_times *t, double per_msg_ns)
{
	printf("{\"user\": %.3f, \"system\": %.3f, \"softirq\": %.3f, \"irq\": %.3f, "
	       "\"total\": %.3f}",
	       (double)(t->user + t->nice) * per_msg_ns / 1000,
	       (double)t->system * per_msg_ns / 1000,
	       (double)t->softirq * per_msg_ns / 1000, (double)t->irq * per_msg_ns / 1000,
	       (double)cpu_times_busy(t) * per_msg_ns / 1000);
}

static void json_machine(const struct bench_opts *o, const struct bench_result *r,
			 const struct bench_summary *s)
{
	double per = r->messages ? (double)cpustat_tick_ns() / (double)r->messages : 0;

	if (!s->machine_known)
		return;
	printf(", \"machine_cpu_us_per_message\": ");
	bench_json_cpu(&s->machine, per);
	if (!o->ncpus)
		return;
	printf(", \"cpu_us_per_message\": {");
	for (unsigned i = 0; i < o->ncpus; i++) {
		printf("%s\"%d\": ", i ? ", " : "", o->cpus[i]);
		bench_json_cpu(&s->cpu[i], per);
	}
	printf("}");
}

static void json_churn(const struct bench_opts *o, const struct bench_result *r,
		       const struct bench_summary *s)
{
	uint64_t failed = 0;

	if (o->connect_rate <= 0)
		return;
	for (int f = 0; f < BCF__COUNT; f++)
		failed += f == BCF_no_slot ? 0 : r->conn_fail[f];
	printf(", \"churn\": {\"connections_per_second\": %.1f, \"attempts\": %llu, "
	       "\"failed\": %llu, \"failure_kinds\": {",
	       (double)r->conn_opened / s->secs, (unsigned long long)r->conn_attempts,
	       (unsigned long long)failed);
	for (int f = 0; f < BCF__COUNT; f++)
		printf("%s\"%s\": %llu", f ? ", " : "", fail_names[f],
		       (unsigned long long)r->conn_fail[f]);
	printf("}, ");
	bench_json_latency("setup_us", o, &r->setup);
	printf("}");
}

static void json_intervals(const struct bench_summary *s)
{
	if (!s->iv)
		return;
	printf(", \"intervals\": [");
	for (unsigned i = 0; i < s->niv; i++) {
		const struct bench_interval *v = &s->iv[i];

		printf("%s{\"t_s\": %.3f, \"secs\": %.3f, \"messages\": %llu, "
		       "\"messages_per_second\": %.1f, \"p50_us\": %.1f, "
		       "\"p99_us\": %.1f, \"errors\": %llu}", i ? ", " : "", v->t, v->secs,
		       (unsigned long long)v->messages,
		       v->secs > 0 ? (double)v->messages / v->secs : 0, us(v->p50_ns),
		       us(v->p99_ns), (unsigned long long)v->errors);
	}
	printf("]");
}

void bench_print_json(const struct bench_opts *o, const struct bench_result *r,
		      const struct bench_summary *s)
{
	putchar('{');
	bench_json_meta(o, s->started);
	json_options(o);
	printf("\"duration_s\": %.6f, \"messages\": %llu, \"messages_per_second\": %.1f, "
	       "\"bytes_per_second\": %.1f, \"checked_bytes\": %llu, ",
	       s->secs, (unsigned long long)r->messages, s->msgs_per_s, s->bytes_per_s,
	       (unsigned long long)r->checked);
	bench_json_latency("latency_us", o, &r->lat);
	printf(", \"errors\": %llu, \"error_kinds\": {",
	       (unsigned long long)bench_total_errors(r));
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
	json_machine(o, r, s);
	json_churn(o, r, s);
	json_intervals(s);
	printf("}\n");
}

void bench_text_latency(const char *label, const struct bench_opts *o, const struct hist *h)
{
	printf("  %-12s", label);
	for (unsigned i = 0; i < o->npcts; i++)
		printf(" p%g %.1f ", o->pcts[i], us(hist_quantile(h, o->pcts[i] / 100)));
	printf(" max %.1f\n", us(h->count ? h->max : 0));
}

void bench_text_cpu(const char *label, const struct cpu_times *t, double per,
		    const char *unit)
{
	printf("  %-12s %.3f us/%s  (user %.3f, system %.3f, softirq %.3f)\n", label,
	       (double)cpu_times_busy(t) * per / 1000, unit, (double)(t->user + t->nice) * per / 1000,
	       (double)t->system * per / 1000, (double)t->softirq * per / 1000);
}

static void text_churn(const struct bench_opts *o, const struct bench_result *r,
		       const struct bench_summary *s)
{
	if (o->connect_rate <= 0)
		return;
	printf("  connects/s   %.0f  (%llu attempted in the whole run)\n",
	       (double)r->conn_opened / s->secs, (unsigned long long)r->conn_attempts);
	bench_text_latency("set-up us", o, &r->setup);
	for (int f = 0; f < BCF__COUNT; f++)
		if (r->conn_fail[f])
			printf("    %-11s  %llu  (%s)\n", fail_names[f],
			       (unsigned long long)r->conn_fail[f], fail_texts[f]);
}

static void text_head(const struct bench_opts *o, const struct bench_summary *s)
{
	printf("echosrv-bench: %s, %u connection%s, %llu-byte messages, ",
	       o->addr_text, o->conns, o->conns == 1 ? "" : "s",
	       (unsigned long long)o->size);
	if (o->rate > 0)
		printf("open loop at %.0f messages/s", o->rate);
	else
		printf("%u in flight each", o->pipeline);
	if (o->connect_rate > 0)
		printf(", %g new connections/s", o->connect_rate);
	printf(", %u thread%s, %s\n", o->threads, o->threads == 1 ? "" : "s", o->placement);
	printf("  measured     %.2f s after %.2f s warm-up\n", s->secs, o->warmup);
	printf("  messages/s   %.0f\n", s->msgs_per_s);
	printf("  MB/s         %.2f  (echoed payload, one way)\n", s->bytes_per_s / 1e6);
}

static void text_problems(const struct bench_opts *o, const struct bench_result *r)
{
	printf("  errors       %llu\n", (unsigned long long)bench_total_errors(r));
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
}

void bench_print_text(const struct bench_opts *o, const struct bench_result *r,
		      const struct bench_summary *s, bool failed)
{
	double per = r->messages ? (double)cpustat_tick_ns() / (double)r->messages : 0;
	char label[16];

	text_head(o, s);
	bench_text_latency("latency us", o, &r->lat);
	text_churn(o, r, s);
	text_problems(o, r);
	printf("  client CPU   %.3f us/message  (%.3f of it in user space)\n",
	       s->client_us, s->client_user_us);
	if (s->server_known)
		printf("  server CPU   %.3f us/message\n", s->server_us);
	if (s->machine_known) {
		bench_text_cpu("machine CPU", &s->machine, per, "message");
		for (unsigned i = 0; i < o->ncpus; i++) {
			snprintf(label, sizeof(label), "CPU %d", o->cpus[i]);
			bench_text_cpu(label, &s->cpu[i], per, "message");
		}
	}
	printf("  result       %s\n", failed ? "FAILED" : "OK");
}

void bench_print_interval(const struct bench_interval *v)
{
	printf("  %7.2f s  %10.0f msg/s  p50 %9.1f us  p99 %9.1f us  errors %llu\n",
	       v->t + v->secs, v->secs > 0 ? (double)v->messages / v->secs : 0,
	       us(v->p50_ns), us(v->p99_ns), (unsigned long long)v->errors);
	fflush(stdout);
}

/* CSV: one line per non-empty bucket, its bounds in ns (inclusive) and count,
 * into f (opened before the run, so a path that cannot be written ends the
 * run before the load, not after it); closes f; 0 or -errno. */
int bench_write_histogram(FILE *f, const struct hist *h)
{
	int bad;

	errno = 0;
	fprintf(f, "low_ns,high_ns,count\n");
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		if (h->bucket[i])
			fprintf(f, "%llu,%llu,%llu\n", (unsigned long long)hist_bucket_low(i),
				(unsigned long long)hist_bucket_high(i),
				(unsigned long long)h->bucket[i]);
	bad = ferror(f);
	if (fclose(f) || bad)
		return errno ? -errno : -EIO;
	return 0;
}

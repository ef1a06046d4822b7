/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench_udp_out.c - what echosrv-bench --udp prints: text, or one JSON
 * object with the TCP mode's header (tool, host, time, placement, "mode":
 * "udp") and options, then the datagrams' fates and their costs.  As in
 * bench_out.c a field is printed only where it means something: a --rate
 * run has no window, a run without --server-pid no server CPU.
 */
#include "bench_udp.h"

#include <stdio.h>

/* Refused: an ICMP port unreachable came back, so for part of the run no
 * server was there (it died or restarted mid-run); its figures are not a
 * server's, however many datagrams came back before and after. */
bool bench_udp_failed(const struct udp_report *r)
{
	return r->t.corrupted || r->t.dup || !r->t.echoed || r->t.refused;
}

static double per_dgram_us(const struct udp_report *r, uint64_t ns)
{
	return r->t.echoed ? (double)ns / 1000.0 / (double)r->t.echoed : 0;
}

static bool server_known(const struct udp_report *r)
{
	return r->srv_cpu[0] >= 0 && r->srv_cpu[1] >= r->srv_cpu[0] && r->t.echoed;
}

static void json_options(const struct bench_opts *o)
{
	printf("\"options\": {\"address\": ");
	bench_json_str(o->addr_text);
	printf(", \"size\": %llu, \"sources\": %u, \"duration_s\": %g, \"warmup_s\": %g, "
	       "\"give_up_s\": %g", (unsigned long long)o->size, o->sources, o->duration,
	       o->warmup, (double)o->give_up_ns / NS_PER_S);
	if (o->rate > 0)
		printf(", \"rate\": %g", o->rate);
	else
		printf(", \"window\": %u", o->window);
	if (o->gso > 1)
		printf(", \"gso\": %u", o->gso);
	bench_json_common_options(o);
}

static void json_cpu(const struct bench_opts *o, const struct udp_report *r)
{
	double per = r->t.echoed ? (double)cpustat_tick_ns() / (double)r->t.echoed : 0;

	printf(", \"client_cpu_us_per_datagram\": %.3f", per_dgram_us(r, r->client_ns));
	if (server_known(r))
		printf(", \"server_cpu_us_per_datagram\": %.3f",
		       per_dgram_us(r, (uint64_t)(r->srv_cpu[1] - r->srv_cpu[0])));
	if (!r->stat_ok[0] || !r->stat_ok[1])
		return;
	struct cpu_times all = cpu_times_sub(&r->all[1], &r->all[0]);
	printf(", \"machine_cpu_us_per_datagram\": ");
	bench_json_cpu(&all, per);
	if (!o->ncpus)
		return;
	printf(", \"cpu_us_per_datagram\": {");
	for (unsigned i = 0; i < o->ncpus; i++) {
		struct cpu_times one = cpu_times_sub(&r->cpu[1][i], &r->cpu[0][i]);

		printf("%s\"%d\": ", i ? ", " : "", o->cpus[i]);
		bench_json_cpu(&one, per);
	}
	printf("}");
}

void bench_udp_print_json(const struct bench_opts *o, const struct udp_report *r)
{
	const struct udp_totals *t = &r->t;

	putchar('{');
	bench_json_meta(o, r->started);
	json_options(o);
	printf("\"duration_s\": %.6f, \"sent\": %llu, \"echoed\": %llu, "
	       "\"echoed_per_second\": %.1f, \"bytes_per_second\": %.1f, \"lost\": %llu, "
	       "\"duplicated\": %llu, \"reordered\": %llu, \"corrupted\": %llu, "
	       "\"corrupted_kinds\": {\"size\": %llu, \"source\": %llu, \"bytes\": %llu}, "
	       "\"refused\": %llu, ", r->secs, (unsigned long long)t->sent,
	       (unsigned long long)t->echoed, (double)t->echoed / r->secs,
	       (double)t->echoed * (double)o->size / r->secs, (unsigned long long)t->lost,
	       (unsigned long long)t->dup, (unsigned long long)t->reordered,
	       (unsigned long long)t->corrupted, (unsigned long long)t->bad_size,
	       (unsigned long long)t->bad_source,
	       (unsigned long long)(t->corrupted - t->bad_size - t->bad_source),
	       (unsigned long long)t->refused);
	bench_json_latency("latency_us", o, &r->rtt);
	json_cpu(o, r);
	printf(", \"failed\": %s}\n", bench_udp_failed(r) ? "true" : "false");
}

void bench_udp_print_text(const struct bench_opts *o, const struct udp_report *r)
{
	const struct udp_totals *t = &r->t;
	double per = r->t.echoed ? (double)cpustat_tick_ns() / (double)r->t.echoed : 0;
	char label[16];

	printf("echosrv-bench --udp: %s, %llu-byte datagrams, %u source%s, ", o->addr_text,
	       (unsigned long long)o->size, o->sources, o->sources == 1 ? "" : "s");
	if (o->rate > 0)
		printf("open loop at %.0f datagrams/s", o->rate);
	else
		printf("%u in flight each", o->window);
	if (o->gso > 1)
		printf(", up to %u per send", o->gso);
	printf(", %s\n", o->placement);
	printf("  measured     %.2f s after %.2f s warm-up\n", r->secs, o->warmup);
	printf("  echoed/s     %.0f  (%llu of %llu sent in the measurement)\n",
	       (double)t->echoed / r->secs, (unsigned long long)t->echoed,
	       (unsigned long long)t->sent);
	bench_text_latency("latency us", o, &r->rtt);
	printf("  lost         %llu  (not back within --give-up %.3f s)\n",
	       (unsigned long long)t->lost, (double)o->give_up_ns / NS_PER_S);
	printf("  duplicated   %llu\n  reordered    %llu  (back after a later one)\n",
	       (unsigned long long)t->dup, (unsigned long long)t->reordered);
	printf("  corrupted    %llu  (whole run: %llu wrong length, %llu another source's, "
	       "%llu wrong bytes)\n", (unsigned long long)t->corrupted,
	       (unsigned long long)t->bad_size, (unsigned long long)t->bad_source,
	       (unsigned long long)(t->corrupted - t->bad_size - t->bad_source));
	if (t->refused)
		printf("  refused      %llu  (ICMP port unreachable)\n",
		       (unsigned long long)t->refused);
	printf("  client CPU   %.3f us/datagram\n", per_dgram_us(r, r->client_ns));
	if (server_known(r))
		printf("  server CPU   %.3f us/datagram\n",
		       per_dgram_us(r, (uint64_t)(r->srv_cpu[1] - r->srv_cpu[0])));
	if (r->stat_ok[0] && r->stat_ok[1]) {
		struct cpu_times all = cpu_times_sub(&r->all[1], &r->all[0]);

		bench_text_cpu("machine CPU", &all, per, "datagram");
		for (unsigned i = 0; i < o->ncpus; i++) {
			struct cpu_times one = cpu_times_sub(&r->cpu[1][i], &r->cpu[0][i]);

			snprintf(label, sizeof(label), "CPU %d", o->cpus[i]);
			bench_text_cpu(label, &one, per, "datagram");
		}
	}
	printf("  result       %s\n", bench_udp_failed(r) ? "FAILED" : "OK");
}

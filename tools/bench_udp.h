/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench_udp.h - what echosrv-bench --udp's load loop (bench_udp.c) hands
 * its report (bench_udp_out.c).
 */
#ifndef ECHOSRV_BENCH_UDP_H
#define ECHOSRV_BENCH_UDP_H

#include "bench.h"

/* Every count but corrupted and refused is of the datagrams sent inside
 * the measured window (their fate may be settled after it, in the drain);
 * a corrupted one cannot be told apart by its number (that may be what is
 * wrong), so those are the whole run's, warm-up included, as are refused. */
struct udp_totals {
	uint64_t sent, echoed, lost, dup, reordered, corrupted;
	uint64_t bad_size, bad_source;  /* of corrupted: wrong length; another
					 * source's datagram (else: wrong bytes) */
	uint64_t refused;        /* ICMP port unreachable came back instead */
};

struct udp_report {
	struct udp_totals t;
	struct hist rtt;         /* round trips of the measured datagrams */
	double secs;             /* the measured window */
	uint64_t client_ns;      /* this process's CPU time in the window */
	int64_t srv_cpu[2];      /* --server-pid's tree at the window's ends, or -1 */
	bool stat_ok[2];
	struct cpu_times all[2], cpu[2][BENCH_MAX_CPUS];
	char started[32];
};

/* 1 when the run saw a fault no echo server may make: a datagram back
 * corrupted or twice, or none back at all. */
bool bench_udp_failed(const struct udp_report *r);
void bench_udp_print_json(const struct bench_opts *o, const struct udp_report *r);
void bench_udp_print_text(const struct bench_opts *o, const struct udp_report *r);

#endif

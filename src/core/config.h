/* SPDX-License-Identifier: GPL-2.0-only */
/* Configuration: every option of echosrv in one table (core/config.c), so that
 * parsing, defaults, bounds, --help and the statistics agree.
 *
 * config_parse() fills a struct config from argv, config_finish() resolves
 * the values that depend on the machine (auto workers, the descriptor limit,
 * somaxconn).  Both return 0, or -EINVAL with one line in err naming the
 * option and what is wrong: main prints it and exits 2. */
#ifndef ECHOSRV_CONFIG_H
#define ECHOSRV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/acl.h"
#include "core/addr.h"

#define CONFIG_MAX_LISTEN 16
#define CONFIG_AUTO UINT32_MAX	/* "auto"/"max": resolved by config_finish */
#define UDP_PAYLOAD_MAX 65527	/* the largest UDP payload (IPv6; IPv4 allows 65507) */

enum engine_kind {
	ENGINE_AUTO,
	ENGINE_EPOLL,
	ENGINE_URING,
	ENGINE_SOCKMAP,
};

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

struct config {
	struct listen_addr listen[CONFIG_MAX_LISTEN];
	unsigned n_listen;
	bool listen_default;	/* no --listen: [::]:40007, may fall back to IPv4 */
	const char *port_file;
	uint32_t backlog;
	uint32_t workers;
	bool cpu_affinity;
	uint32_t engine;	/* enum engine_kind */
	uint32_t conn_buffer;	/* bytes */
	uint32_t max_conns;
	uint32_t max_conns_per_ip;
	uint32_t idle_timeout;	/* seconds, 0 = none */
	uint32_t keepalive;	/* seconds of silence before TCP keepalive probes, 0 = off */
	uint32_t drain_timeout;	/* seconds */
	uint32_t trace;
	const char *trace_file;
	const char *ctl_path;		/* control socket; NULL = none */
	struct listen_addr metrics;	/* len 0: no metrics endpoint */
	bool busy_poll;
	/* UDP echo (docs/udp.md); no --udp-listen: UDP is off. */
	struct listen_addr udp_listen[CONFIG_MAX_LISTEN];
	unsigned n_udp_listen;
	uint32_t udp_max_size;	/* bytes: larger datagrams are dropped */
	uint32_t udp_rate;	/* datagrams per second per source, 0 = unlimited */
	uint32_t udp_sources;	/* entries of the per-source rate table */
	bool udp_allow_low_ports;
	bool udp_df;		/* replies carry Don't Fragment */
	bool check;
	bool help;
	bool version;
	struct acl acl;
};

int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen);
int config_finish(struct config *cfg, char *err, size_t errlen);
void config_usage(FILE *out);
const char *engine_name(enum engine_kind k);

#endif

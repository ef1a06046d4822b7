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
#define CONFIG_MAX_CONNS 10000000	/* --max-conns at most */
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
	bool proxy;	/* --proxy-listen: connections begin with a PROXY header */
};

struct config {
	const char *config_file;	/* --config; NULL: none */
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
	uint32_t ctl_mode;		/* its permissions (0600, 0660 or 0666) */
	const char *ctl_group;		/* its group (name or number); NULL = ours */
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
	/* PROXY protocol (core/proxy.h): the balancers trusted to send a
	 * header on a --proxy-listen listener, and how long one may take. */
	struct cidr proxy_from[ACL_MAX_RULES];
	unsigned n_proxy_from;
	uint32_t proxy_timeout;	/* seconds */
	uint64_t given;		/* options set by the command line (bit: table row) */
	char *text;		/* the file's text the strings point into (owned) */
};

static inline bool config_has_proxy(const struct config *cfg)
{
	for (unsigned i = 0; i < cfg->n_listen; i++)
		if (cfg->listen[i].proxy)
			return true;
	return false;
}

int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen);

/* The configuration file (core/config_file.c).  CONFIG_FILE_MAX bounds its
 * size, so a wrong path (a log, a device) is refused rather than read.
 *
 * config_load(): the defaults, then cli->config_file's options, then what
 * the command line gave (cli->given) over them; into out, which then owns
 * the file's text (config_free()).  Not config_finish()ed.  0, or -errno
 * with "FILE:LINE: --option: what is wrong" (or "FILE: why") in err. */
#define CONFIG_FILE_MAX (64 * 1024)
int config_load(struct config *out, const struct config *cli, char *err, size_t errlen);
/* The parser alone: text[0, len) (modified: values are cut out in place),
 * named name in errors, applied over cfg. */
int config_parse_text(struct config *cfg, const char *name, char *text, size_t len, char *err,
		      size_t errlen);
void config_free(struct config *cfg);
/* cfg as a configuration file would say it (every option, one per line),
 * so that it can be saved and loaded again. */
struct sbuf;
void config_write(const struct config *cfg, struct sbuf *out);
/* What changed from a to b, "; "-separated in out, in the file's words:
 * "max-conns 5000 -> 8000; allow 10.0.0.0/8; no longer deny 10.1.0.0/16";
 * nothing appended when nothing changed (core/config_diff.c). */
void config_diff(const struct config *a, const struct config *b, struct sbuf *out);
/* Is name (as in the file) an option that may be given several times? */
bool config_repeatable(const char *name);
int config_finish(struct config *cfg, char *err, size_t errlen);
void config_usage(FILE *out);
const char *engine_name(enum engine_kind k);

#endif

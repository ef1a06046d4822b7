/* SPDX-License-Identifier: GPL-2.0-only */
/* The option table and its parsers; see config.h.
 *
 * Each option is one row: long name, short name, type, bounds, default and
 * the field it sets.  Defaults are strings run through the same parser as
 * the command line, so --help shows exactly what a default means. */
#include "core/config.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/config_opts.h"
#include "core/trace.h"
#include "core/util.h"

#define DEFAULT_PORT 40007

#define F(field) offsetof(struct config, field)
#define SECS_MAX (365ULL * 86400)
#define KEEPALIVE_MAX 32767	/* the kernel's limit for TCP_KEEPIDLE */

static const struct opt_def opts[] = {
	{ "config", 0, T_STRING, "FILE",
	  "read options from FILE, one per line (see echosrv(8)); the command line overrides "
	  "it, SIGHUP and `echosrvctl reload` read it again", NULL, 0, 0, F(config_file) },
	{ "listen", 'l', T_LISTEN, "ADDR:PORT",
	  "listen here (repeatable); IPv6 in brackets, port 0 = any free port",
	  NULL, 0, 0, 0 },
	{ "port-file", 0, T_STRING, "PATH",
	  "write each bound address, one per line, once listening", NULL, 0, 0, F(port_file) },
	{ "backlog", 0, T_UINT_AUTO, "N", "listen backlog (max = net.core.somaxconn)",
	  "max", 1, 1u << 20, F(backlog) },
	{ "workers", 'w', T_UINT_AUTO, "N|auto",
	  "worker threads; auto = one per online CPU", "1", 1, 1024, F(workers) },
	{ "cpu-affinity", 0, T_FLAG, NULL, "pin worker i to CPU i", NULL, 0, 0, F(cpu_affinity) },
	{ "engine", 'e', T_ENGINE, "auto|io_uring|epoll|sockmap",
	  "event engine; auto = io_uring where the kernel allows it, else epoll",
	  "auto", 0, 0, F(engine) },
	{ "conn-buffer", 0, T_SIZE, "BYTES",
	  "most unsent data held per connection, in bytes (k, M suffixes)",
	  "64k", 1024, 64u << 20, F(conn_buffer) },
	{ "max-conns", 'm', T_UINT_AUTO, "N",
	  "most open connections; auto = what the descriptor limit allows",
	  "auto", 1, 10000000, F(max_conns) },
	{ "max-conns-per-ip", 0, T_UINT, "N", "most connections from one address; 0 = no limit",
	  "0", 0, 10000000, F(max_conns_per_ip) },
	{ "idle-timeout", 0, T_SECS, "SECS",
	  "close a connection that received nothing for SECS seconds; 0 = never",
	  "300", 0, SECS_MAX, F(idle_timeout) },
	{ "keepalive", 0, T_SECS, "SECS",
	  "TCP keepalive: probe a connection silent for SECS seconds, drop it after about "
	  "2*SECS if the peer is gone; 0 = off", "0", 0, KEEPALIVE_MAX, F(keepalive) },
	{ "allow", 0, T_ALLOW, "CIDR", "serve only peers matching an allow rule (repeatable)",
	  NULL, 0, 0, 0 },
	{ "deny", 0, T_DENY, "CIDR", "refuse peers matching (repeatable; deny wins)",
	  NULL, 0, 0, 0 },
	{ "proxy-listen", 0, T_PROXY_LISTEN, "ADDR:PORT",
	  "listen here for connections that begin with a PROXY protocol v1/v2 header "
	  "(repeatable; needs --proxy-from)", NULL, 0, 0, 0 },
	{ "proxy-from", 0, T_PROXY_FROM, "CIDR",
	  "load balancers trusted to send PROXY headers (repeatable); others are reset",
	  NULL, 0, 0, 0 },
	{ "proxy-timeout", 0, T_SECS, "SECS",
	  "close a proxied connection whose header is not complete after SECS seconds",
	  "3", 1, 3600, F(proxy_timeout) },
	{ "drain-timeout", 0, T_SECS, "SECS",
	  "on SIGTERM/SIGINT, let connections finish for up to SECS seconds",
	  "10", 0, 86400, F(drain_timeout) },
	{ "trace", 't', T_TRACE, "FLAGS",
	  "trace categories: 0x1 error, 0x2 info, 0x4 conn, 0x8 data (hex, decimal or names)",
	  "0x1", 0, 0, F(trace) },
	{ "trace-file", 0, T_STRING, "PATH", "trace to PATH instead of stderr (SIGHUP reopens)",
	  NULL, 0, 0, F(trace_file) },
	{ "ctl", 0, T_STRING, "PATH",
	  "control socket for echosrvctl (a stale one is replaced)",
	  NULL, 0, 0, F(ctl_path) },
	{ "ctl-mode", 0, T_MODE, "MODE",
	  "permissions of the control socket: 0600 (owner), 0660 (and its group), 0666",
	  "0600", 0, 0, F(ctl_mode) },
	{ "ctl-group", 0, T_STRING, "GROUP",
	  "group of the control socket (name or number; echosrv must be a member)",
	  NULL, 0, 0, F(ctl_group) },
	{ "metrics", 0, T_ADDR, "ADDR:PORT",
	  "serve Prometheus metrics at http://ADDR:PORT/metrics", NULL, 0, 0, F(metrics) },
	{ "busy-poll", 0, T_FLAG, NULL,
	  "poll instead of sleeping: lowest latency, but each worker keeps a CPU 100% busy",
	  NULL, 0, 0, F(busy_poll) },
	{ "udp-listen", 0, T_UDP_LISTEN, "ADDR:PORT",
	  "also echo UDP datagrams here (repeatable; default: no UDP)", NULL, 0, 0, 0 },
	{ "udp-max-size", 0, T_SIZE, "BYTES",
	  "largest UDP datagram echoed; larger ones are dropped", "65527", 0, UDP_PAYLOAD_MAX,
	  F(udp_max_size) },
	{ "udp-rate", 0, T_UINT, "N",
	  "UDP datagrams per second per source address (burst N); 0 = unlimited",
	  "1000", 0, 10000000, F(udp_rate) },
	{ "udp-sources", 0, T_UINT, "N",
	  "sources the UDP rate table tracks (a bounded table; the oldest entries go)",
	  "65536", 64, 1u << 24, F(udp_sources) },
	{ "udp-allow-low-ports", 0, T_FLAG, NULL,
	  "echo UDP datagrams from source ports below 1024 too", NULL, 0, 0,
	  F(udp_allow_low_ports) },
	{ "udp-df", 0, T_FLAG, NULL,
	  "UDP replies carry Don't Fragment; one that does not fit is dropped and counted",
	  NULL, 0, 0, F(udp_df) },
	{ "check", 0, T_FLAG, NULL, "validate the options and exit", NULL, 0, 0, F(check) },
	{ "help", 'h', T_FLAG, NULL, "show this help", NULL, 0, 0, F(help) },
	{ "version", 'V', T_FLAG, NULL, "show the version", NULL, 0, 0, F(version) },
};

static const char *const engine_names[] = {
	[ENGINE_AUTO] = "auto",
	[ENGINE_EPOLL] = "epoll",
	[ENGINE_URING] = "io_uring",
	[ENGINE_SOCKMAP] = "sockmap",
};

const char *engine_name(enum engine_kind k)
{
	return k < ARRAY_SIZE(engine_names) ? engine_names[k] : "?";
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*v = x;
	return 0;
}

static int parse_size(const char *s, uint64_t *v)
{
	char num[32];
	size_t n = strlen(s);
	unsigned shift = 0;

	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	}
	if (shift)
		num[n - 1] = '\0';
	if (parse_u64(num, v) || *v > (UINT64_MAX >> shift))
		return -EINVAL;
	*v <<= shift;
	return 0;
}

static int set_number(const struct opt_def *o, const char *arg, struct config *cfg,
		      char *err, size_t errlen)
{
	uint64_t v;
	int r;

	if (o->type == T_UINT_AUTO && (!strcmp(arg, "auto") || !strcmp(arg, "max"))) {
		*(uint32_t *)((char *)cfg + o->off) = CONFIG_AUTO;
		return 0;
	}
	r = o->type == T_SIZE ? parse_size(arg, &v) : parse_u64(arg, &v);
	if (r) {
		snprintf(err, errlen, "--%s: '%s' is not %s", o->name, arg,
			 o->type == T_SIZE ? "a size in bytes" :
			 o->type == T_SECS ? "a number of seconds" : "a whole number");
		return -EINVAL;
	}
	if (v < o->min || v > o->max) {
		snprintf(err, errlen, "--%s: %s is out of range (%llu to %llu)", o->name, arg,
			 (unsigned long long)o->min, (unsigned long long)o->max);
		return -EINVAL;
	}
	*(uint32_t *)((char *)cfg + o->off) = (uint32_t)v;
	return 0;
}

static int add_listen(struct config *cfg, const char *arg, enum opt_type type, char *err,
		      size_t errlen)
{
	bool udp = type == T_UDP_LISTEN, proxy = type == T_PROXY_LISTEN;
	const char *name = udp ? "--udp-listen" : proxy ? "--proxy-listen" : "--listen";
	unsigned *n = udp ? &cfg->n_udp_listen : &cfg->n_listen;
	char why[160];

	if (*n == CONFIG_MAX_LISTEN) {
		snprintf(err, errlen, "%s: at most %d addresses%s", name, CONFIG_MAX_LISTEN,
			 udp ? "" : " in all");
		return -EINVAL;
	}
	struct listen_addr *l = udp ? &cfg->udp_listen[*n] : &cfg->listen[*n];
	if (addr_parse_listen(arg, &l->ss, &l->len, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", name, why);
		return -EINVAL;
	}
	l->proxy = proxy;
	(*n)++;
	return 0;
}

static int add_cidr(struct config *cfg, enum opt_type type, const char *arg, char *err,
		    size_t errlen)
{
	struct cidr *list = type == T_ALLOW ? cfg->acl.allow
			  : type == T_DENY ? cfg->acl.deny : cfg->proxy_from;
	unsigned *n = type == T_ALLOW ? &cfg->acl.n_allow
		    : type == T_DENY ? &cfg->acl.n_deny : &cfg->n_proxy_from;
	const char *name = type == T_ALLOW ? "allow" : type == T_DENY ? "deny" : "proxy-from";
	char why[160];

	if (*n == ACL_MAX_RULES) {
		snprintf(err, errlen, "--%s: at most %d rules", name, ACL_MAX_RULES);
		return -EINVAL;
	}
	if (cidr_parse(arg, &list[*n], why, sizeof(why))) {
		snprintf(err, errlen, "--%s: %s", name, why);
		return -EINVAL;
	}
	(*n)++;
	return 0;
}

static int apply(const struct opt_def *o, const char *arg, struct config *cfg,
		 char *err, size_t errlen)
{
	void *field = (char *)cfg + o->off;
	char why[160];

	switch (o->type) {
	case T_FLAG:
		*(bool *)field = true;
		return 0;
	case T_UINT: case T_UINT_AUTO: case T_SIZE: case T_SECS:
		return set_number(o, arg, cfg, err, errlen);
	case T_STRING:
		if (!*arg) {
			snprintf(err, errlen, "--%s: empty value", o->name);
			return -EINVAL;
		}
		*(const char **)field = arg;
		return 0;
	case T_LISTEN: case T_PROXY_LISTEN: case T_UDP_LISTEN:
		return add_listen(cfg, arg, o->type, err, errlen);
	case T_ALLOW: case T_DENY: case T_PROXY_FROM:
		return add_cidr(cfg, o->type, arg, err, errlen);
	case T_ENGINE:
		for (unsigned i = 0; i < ARRAY_SIZE(engine_names); i++) {
			if (!strcmp(arg, engine_names[i])) {
				*(uint32_t *)field = i;
				return 0;
			}
		}
		snprintf(err, errlen, "--engine: '%s' is not one of auto, io_uring, epoll, sockmap",
			 arg);
		return -EINVAL;
	case T_ADDR: {
		struct listen_addr *l = field;
		if (addr_parse_listen(arg, &l->ss, &l->len, why, sizeof(why))) {
			snprintf(err, errlen, "--%s: %s", o->name, why);
			return -EINVAL;
		}
		return 0;
	}
	case T_MODE: {
		char *end;
		unsigned long m = strtoul(arg, &end, 8);
		if (*arg < '0' || *arg > '7' || *end || (m != 0600 && m != 0660 && m != 0666)) {
			snprintf(err, errlen, "--%s: '%s' is not 0600, 0660 or 0666", o->name, arg);
			return -EINVAL;
		}
		*(uint32_t *)field = (uint32_t)m;
		return 0;
	}
	case T_TRACE:
		if (trace_parse_flags(arg, (uint32_t *)field, why, sizeof(why))) {
			snprintf(err, errlen, "--trace: %s", why);
			return -EINVAL;
		}
		return 0;
	}
	return -EINVAL;
}

void config_defaults(struct config *cfg)
{
	char err[8];

	memset(cfg, 0, sizeof(*cfg));
	for (unsigned i = 0; i < ARRAY_SIZE(opts); i++)
		if (opts[i].def)
			apply(&opts[i], opts[i].def, cfg, err, sizeof(err));
}

const struct opt_def *config_opt(unsigned i)
{
	return i < ARRAY_SIZE(opts) ? &opts[i] : NULL;
}

unsigned config_opt_index(const struct opt_def *o)
{
	return (unsigned)(o - opts);
}

const struct opt_def *config_opt_find(const char *name)
{
	for (unsigned i = 0; i < ARRAY_SIZE(opts); i++)
		if (!strcmp(opts[i].name, name))
			return &opts[i];
	return NULL;
}

int config_opt_apply(const struct opt_def *o, const char *arg, struct config *cfg, char *err,
		     size_t errlen)
{
	return apply(o, arg, cfg, err, errlen);
}

/* Build getopt_long's tables from opts[]; long options map to their row
 * index + 256 so that a short name and a row never collide. */
static void build_getopt(struct option *lo, char *so)
{
	size_t n = 0;

	so[n++] = ':';	/* report a missing argument as ':' */
	for (unsigned i = 0; i < ARRAY_SIZE(opts); i++) {
		lo[i] = (struct option){ opts[i].name,
					 opts[i].type == T_FLAG ? no_argument : required_argument,
					 NULL, (int)(256 + i) };
		if (opts[i].short_name) {
			so[n++] = opts[i].short_name;
			if (opts[i].type != T_FLAG)
				so[n++] = ':';
		}
	}
	so[n] = '\0';
	lo[ARRAY_SIZE(opts)] = (struct option){ 0 };
}

static const struct opt_def *find_short(int c)
{
	for (unsigned i = 0; i < ARRAY_SIZE(opts); i++)
		if (opts[i].short_name == c)
			return &opts[i];
	return NULL;
}

int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	struct option lo[ARRAY_SIZE(opts) + 1];
	char so[2 * ARRAY_SIZE(opts) + 2];
	int c;

	config_defaults(cfg);
	build_getopt(lo, so);
	opterr = 0;
	/* 0, not 1: glibc then forgets where an earlier scan stopped inside a
	 * cluster like "-hZl..."; with 1 a second config_parse() went on from
	 * the previous argv (found by fuzz/fuzz_config.c). */
	optind = 0;
	while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		const char *bad = argv[optind - 1];
		const struct opt_def *o = c >= 256 ? &opts[c - 256] : find_short(c);

		if (c == '?') {
			/* A long option given a value it does not take ("--help=x"):
			 * getopt puts its row (256 + i) in optopt, not a character. */
			if (optopt >= 256 && optopt < 256 + (int)ARRAY_SIZE(opts))
				snprintf(err, errlen, "option '--%s' takes no argument",
					 opts[optopt - 256].name);
			else if (optopt > 0x20 && optopt < 0x7f)
				snprintf(err, errlen, "unknown option '-%c'", optopt);
			else
				snprintf(err, errlen, "unknown option '%s'", bad);
			return -EINVAL;
		}
		if (c == ':') {
			snprintf(err, errlen, "option '%s' needs an argument", bad);
			return -EINVAL;
		}
		if (apply(o, optarg, cfg, err, errlen))
			return -EINVAL;
		cfg->given |= 1ull << (o - opts);	/* the file may not override it */
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* Descriptors echosrv itself needs besides connections: listeners, epoll or
 * ring, wake-up and control sockets per worker, plus stdio and trace file,
 * and the control socket's (24 clients, listener, eventfd) and the metrics
 * endpoint's (16 connections, listener, eventfd, libmicrohttpd's epoll). */
static uint64_t fd_reserve(const struct config *cfg)
{
	return 32 + 48 + (uint64_t)cfg->workers * (cfg->n_listen + cfg->n_udp_listen + 5);
}

/* Does a socket bound to a take connections meant for b (same port)?  The
 * wildcard of a family covers its addresses, and [::] covers IPv4 too,
 * since listeners are dual-stack; a v4-mapped address is its IPv4 one. */
static bool addr_covers(const struct sockaddr *a, const struct sockaddr *b)
{
	struct ipaddr ia, ib, any = { 0 };

	addr_to_ip(a, &ia);
	addr_to_ip(b, &ib);
	if (ipaddr_equal(&ia, &ib))
		return true;
	any.family = ia.family;
	if (!ipaddr_equal(&ia, &any))
		return false;		/* a names one address, and not b's */
	if (ia.family == AF_INET6)
		return true;		/* [::] */
	return ib.family == AF_INET;	/* 0.0.0.0 */
}

static uint16_t addr_port(const struct sockaddr *sa)
{
	return ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
					      : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

/* Two --listen (or two --udp-listen) that would take the same connections
 * (datagrams) fail at bind with EADDRINUSE, which reads like another
 * process; say what it is instead.  UDP binds the first socket of an
 * address without SO_REUSEPORT as TCP does (udp_listener.c), so the same
 * pairs conflict. */
static int check_overlap(const struct listen_addr *ls, unsigned n, const char *opt,
			 const char *what, char *err, size_t errlen)
{
	for (unsigned i = 0; i < n; i++) {
		const struct sockaddr *a = (const struct sockaddr *)&ls[i].ss;
		for (unsigned j = i + 1; j < n; j++) {
			const struct sockaddr *b = (const struct sockaddr *)&ls[j].ss;
			char ta[ADDR_TEXT_MAX], tb[ADDR_TEXT_MAX];
			if (addr_port(a) == 0 || addr_port(a) != addr_port(b) ||
			    !(addr_covers(a, b) || addr_covers(b, a)))
				continue;
			addr_format(a, ta, sizeof(ta));
			addr_format(b, tb, sizeof(tb));
			if (!strcmp(ta, tb))
				snprintf(err, errlen, "--%s: %s is given twice", opt, ta);
			else
				snprintf(err, errlen, "--%s: %s and %s overlap (%s takes the "
					 "other's %s%s)", opt, ta, tb, addr_covers(a, b) ? ta : tb, what,
					 a->sa_family != b->sa_family ? ": [::] is dual-stack" : "");
			return -EINVAL;
		}
	}
	return 0;
}

static int check_listen_overlap(const struct config *cfg, char *err, size_t errlen)
{
	int r = check_overlap(cfg->listen, cfg->n_listen, "listen", "connections", err, errlen);

	return r ? r : check_overlap(cfg->udp_listen, cfg->n_udp_listen, "udp-listen",
				     "datagrams", err, errlen);
}

/* An explicit --max-conns beyond what the descriptor limit leaves is
 * kept (the limit may be raised later for a restart) but said, as nginx
 * warns of worker_connections beyond RLIMIT_NOFILE: past that many,
 * accepts fail with EMFILE and pause. */
static void warn_max_conns(const struct config *cfg, uint64_t lim, uint64_t res)
{
	uint64_t usable = lim > res ? lim - res : 0;

	if (cfg->max_conns != CONFIG_AUTO && cfg->max_conns > usable)
		log_notice("warning: --max-conns %u is more than the descriptor limit allows "
			   "(RLIMIT_NOFILE %llu): about %llu connections are usable",
			   cfg->max_conns, (unsigned long long)lim, (unsigned long long)usable);
}

int config_finish(struct config *cfg, char *err, size_t errlen)
{
	struct rlimit rl;

	if (cfg->n_listen == 0) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&cfg->listen[0].ss;
		memset(a6, 0, sizeof(*a6));
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(DEFAULT_PORT);
		cfg->listen[0].len = sizeof(*a6);
		cfg->n_listen = 1;
		cfg->listen_default = true;
	}
	if (cfg->workers == CONFIG_AUTO) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->workers = n > 0 ? (uint32_t)MIN(n, 1024) : 1;
	}
	if (check_listen_overlap(cfg, err, errlen))
		return -EINVAL;
	/* Trust is never implicit: a header from anyone would let anyone
	 * claim any address, past every ACL and per-address limit. */
	if (config_has_proxy(cfg) && !cfg->n_proxy_from) {
		snprintf(err, errlen, "--proxy-listen needs --proxy-from CIDR: the load balancers "
			 "trusted to send PROXY headers");
		return -EINVAL;
	}
	/* A mode or group for a control socket that is not there is a
	 * mistake (most often a --ctl line lost in an edit), not a no-op. */
	if (!cfg->ctl_path && ((cfg->ctl_mode && cfg->ctl_mode != 0600) || cfg->ctl_group)) {
		snprintf(err, errlen, "--%s needs --ctl PATH: there is no control socket to give it to",
			 cfg->ctl_group ? "ctl-group" : "ctl-mode");
		return -EINVAL;
	}
	/* --backlog max stays CONFIG_AUTO: listen() is then given INT_MAX,
	 * which the kernel clamps to net.core.somaxconn of the listener's
	 * network namespace.  No file to read, so it holds where /proc/sys is
	 * hidden (the unit's ProcSubset=pid), and it is the value at listen()
	 * time, not a copy taken earlier. */
	uint64_t lim = getrlimit(RLIMIT_NOFILE, &rl) ? 1024 : rl.rlim_cur;
	uint64_t res = fd_reserve(cfg);
	warn_max_conns(cfg, lim, res);
	if (cfg->max_conns == CONFIG_AUTO) {
		if (lim <= res + 1) {
			snprintf(err, errlen,
				 "--max-conns: the descriptor limit (%llu) leaves no room for connections",
				 (unsigned long long)lim);
			return -EINVAL;
		}
		cfg->max_conns = (uint32_t)MIN(lim - res, 10000000);
	}
	return 0;
}

void config_usage(FILE *out)
{
	fprintf(out, "Usage: echosrv [OPTION]...\n"
		     "TCP echo server: sends back every byte it receives until the peer closes.\n"
		     "Serves [::]:40007 (IPv4 and IPv6) with one worker when given no options.\n\n");
	for (unsigned i = 0; i < ARRAY_SIZE(opts); i++) {
		const struct opt_def *o = &opts[i];
		char lhs[64];
		int n = o->short_name ? snprintf(lhs, sizeof(lhs), "-%c, ", o->short_name)
				      : snprintf(lhs, sizeof(lhs), "    ");
		snprintf(lhs + n, sizeof(lhs) - (size_t)n, "--%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		if (strlen(lhs) > 30)	/* long placeholders get a line of their own */
			fprintf(out, "  %s\n  %-30s %s", lhs, "", o->help);
		else
			fprintf(out, "  %-30s %s", lhs, o->help);
		if (o->def)
			fprintf(out, " [%s]", o->def);
		fputc('\n', out);
	}
	fprintf(out, "\nSignals: TERM/INT drain and exit (a second one exits at once), HUP reloads\n"
		     "the --config file and reopens the trace file.  Exit status: 0 clean stop, 1 runtime failure, 2 bad usage.\n");
}

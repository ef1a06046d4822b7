/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bench_opts.c - echosrv-bench's command line: every option is checked here,
 * once, so the load threads can trust struct bench_opts; a bad one ends the
 * run with exit status 2 and a line saying which and why.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
"Usage: echosrv-bench [OPTION]...\n"
"Load a TCP echo server (or with --udp a UDP one) and check every byte it\n"
"sends back.\n"
"\n"
"  -a, --address HOST:PORT  server to load; IPv6 as [ADDR]:PORT [127.0.0.1:40007]\n"
"  -c, --connections N      connections [1]\n"
"  -s, --size BYTES         message size (k, M suffixes) [128]\n"
"  -p, --pipeline K         messages in flight per connection (closed loop) [1]\n"
"  -d, --duration SECS      measured time [5]\n"
"  -w, --warmup SECS        load before the measurement starts [1]\n"
"  -r, --rate MSGS_PER_S    open loop: this many messages per second in all,\n"
"                           latency counted from each message's intended time\n"
"  -t, --threads N          load threads, each with its own epoll loop [1]\n"
"      --give-up SECS       drain: count what is owed as missing once nothing\n"
"                           has come back for this long [2]\n"
"      --server-pid PID     also report the server's CPU time per message\n"
"      --cpu LIST           also account these CPUs alone (/proc/stat), e.g. 0\n"
"      --percentiles LIST   latency percentiles to report [50,90,99,99.9,99.99]\n"
"      --histogram FILE     write the latency histogram as CSV buckets\n"
"      --interval SECS      a line per interval: rate, p50, p99, errors\n"
"      --bind ADDR[,ADDR]   source addresses to spread connections over\n"
"      --connect-rate N     churn: open N connections per second, each for\n"
"                           --lifetime, using at most --connections at once\n"
"      --lifetime N|SECSs   churn: messages per connection, or seconds with\n"
"                           an s suffix (2s, 0.5s) [1]\n"
"      --proxy v1|v2        begin each connection with a PROXY header naming\n"
"                           its own addresses (to load a proxy listener)\n"
"      --placement NAME     how server and load are placed, for the JSON\n"
"                           [loopback or network, from the address]\n"
"      --json               print one JSON object instead of text\n"
"\n"
"      --udp                UDP mode: numbered, checksummed datagrams instead\n"
"                           of connections; -a, -s (28..65507, IPv6 65527),\n"
"                           -d, -w, -r (datagrams/s in all), --give-up (a\n"
"                           datagram not back by then is lost), --server-pid,\n"
"                           --cpu, --percentiles, --histogram, --bind (sources\n"
"                           spread over the list), --placement and --json\n"
"                           apply; -c, -p, -t, --interval, --connect-rate,\n"
"                           --lifetime and --proxy do not\n"
"      --window K           --udp: datagrams in flight per source [8]\n"
"      --sources S          --udp: source sockets, each its own port [1]\n"
"      --gso N              --udp: up to N datagrams per send, which the kernel\n"
"                           cuts apart (UDP_SEGMENT); not with -r [1]\n"
"      --version            print the version\n"
"  -h, --help               show this help\n"
"\n"
"Exit status: 0 all bytes echoed correctly, 1 errors or mismatches,\n"
"2 bad usage, 3 could not connect or set up.  --udp: 1 when a datagram came\n"
"back corrupted or twice, none came back, or port unreachable came back\n"
"(the server went away); loss and reordering are reported, not failures:\n"
"UDP allows both.\n";

void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("echosrv-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	exit(EXIT_USAGE);
}

/* An unsigned number with an optional k/M/G (binary) suffix, in [lo, hi]. */
static uint64_t parse_count(const char *opt, const char *s, uint64_t lo, uint64_t hi)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno || *s == '-')
		usage_error("%s: '%s' is not a number", opt, s);
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end)
		usage_error("%s: '%s' is not a number", opt, s);
	/* A shift past 64 bits would wrap a huge value back into range. */
	if (v > hi >> shift)
		usage_error("%s: '%s' is out of range [%llu, %llu]", opt, s,
			    (unsigned long long)lo, (unsigned long long)hi);
	v <<= shift;
	if (v < lo || v > hi)
		usage_error("%s: %llu is out of range [%llu, %llu]", opt, v,
			    (unsigned long long)lo, (unsigned long long)hi);
	return v;
}

static double parse_secs(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !(v >= lo && v <= hi))
		usage_error("%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
	return v;
}

/* HOST:PORT or [IPV6]:PORT; names are resolved, the first address is used. */
static void parse_address(struct bench_opts *o, const char *s)
{
	char host[256];
	const char *colon = strrchr(s, ':'), *h = s;
	size_t hlen;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *ai;
	int r;

	if (!colon || !colon[1])
		usage_error("--address: '%s' has no :PORT", s);
	hlen = (size_t)(colon - s);
	if (*s == '[') {
		if (hlen < 2 || s[hlen - 1] != ']')
			usage_error("--address: '%s': write IPv6 as [ADDR]:PORT", s);
		h = s + 1;
		hlen -= 2;
	} else if (memchr(s, ':', hlen)) {
		usage_error("--address: '%s': write IPv6 as [ADDR]:PORT", s);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		usage_error("--address: '%s' has no host", s);
	memcpy(host, h, hlen);
	host[hlen] = 0;
	parse_count("--address", colon + 1, 1, 65535);
	r = getaddrinfo(host, colon + 1, &hints, &ai);
	if (r)
		usage_error("--address: %s: %s", s, gai_strerror(r));
	memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
	o->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	snprintf(o->addr_text, sizeof(o->addr_text), "%s", s);
}

/*
 * The report names a percentile by %g ("p99.9" in text, "p999" in JSON), so
 * one with more digits than %g keeps would be shown as another (99.9999999
 * as p100), and two whose names lose the dot alike (9.99 and 99.9 are both
 * "p999") would be two JSON keys of one name: both are refused.
 */
static void check_pct_name(const struct bench_opts *o, const char *tok, double v)
{
	char text[32], key[40], prev[40];

	snprintf(text, sizeof(text), "%g", v);
	if (strtod(text, NULL) != v)
		usage_error("--percentiles: '%s': at most 6 significant digits", tok);
	bench_pct_key(v, key, sizeof(key));
	for (unsigned i = 0; i < o->npcts; i++) {
		bench_pct_key(o->pcts[i], prev, sizeof(prev));
		if (!strcmp(key, prev))
			usage_error("--percentiles: %g and %g would both be reported "
				    "as %s", o->pcts[i], v, key);
	}
}

/* A comma list of percentiles in (0, 100), kept ascending. */
static void parse_pcts(struct bench_opts *o, const char *s)
{
	char buf[256], *tok, *save, *end;

	if (strlen(s) >= sizeof(buf))
		usage_error("--percentiles: '%s' is too long", s);
	snprintf(buf, sizeof(buf), "%s", s);
	o->npcts = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		double v = strtod(tok, &end);

		if (end == tok || *end || !(v > 0 && v < 100))
			usage_error("--percentiles: '%s' is not a number in (0, 100)", tok);
		if (o->npcts == BENCH_MAX_PCTS)
			usage_error("--percentiles: at most %d", BENCH_MAX_PCTS);
		if (o->npcts && v <= o->pcts[o->npcts - 1])
			usage_error("--percentiles: list them ascending, each once");
		check_pct_name(o, tok, v);
		o->pcts[o->npcts++] = v;
	}
	if (!o->npcts)
		usage_error("--percentiles: empty list");
}

/* --bind: numeric source addresses, all of the server address's family. */
static void parse_bind(struct bench_opts *o, const char *s)
{
	char buf[2048], *tok, *save;

	if (strlen(s) >= sizeof(buf))
		usage_error("--bind: list too long");
	snprintf(buf, sizeof(buf), "%s", s);
	o->nbind = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct sockaddr_storage *ss = &o->bind[o->nbind];
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		size_t n = strlen(tok);

		if (o->nbind == BENCH_MAX_BIND)
			usage_error("--bind: at most %d addresses", BENCH_MAX_BIND);
		memset(ss, 0, sizeof(*ss));
		if (n > 2 && tok[0] == '[' && tok[n - 1] == ']') {
			tok[n - 1] = 0;
			tok++;
		}
		if (inet_pton(AF_INET, tok, &in->sin_addr) == 1)
			in->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, tok, &in6->sin6_addr) == 1)
			in6->sin6_family = AF_INET6;
		else
			usage_error("--bind: '%s' is not a numeric address", tok);
		if (ss->ss_family != o->addr.ss_family)
			usage_error("--bind: '%s' is not of the server address's family", tok);
		o->nbind++;
	}
	if (!o->nbind)
		usage_error("--bind: empty list");
	o->bind_text = s;
}

static void parse_cpus(struct bench_opts *o, const char *s)
{
	char buf[256], *tok, *save;
	long n = sysconf(_SC_NPROCESSORS_CONF);

	if (strlen(s) >= sizeof(buf))
		usage_error("--cpu: list too long");
	snprintf(buf, sizeof(buf), "%s", s);
	o->ncpus = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int cpu;

		if (o->ncpus == BENCH_MAX_CPUS)
			usage_error("--cpu: at most %d CPUs", BENCH_MAX_CPUS);
		cpu = (int)parse_count("--cpu", tok, 0, n > 0 ? (uint64_t)n - 1 : 0);
		/* The JSON keys its per-CPU figures by number: each once. */
		for (unsigned i = 0; i < o->ncpus; i++)
			if (o->cpus[i] == cpu)
				usage_error("--cpu: CPU %d is listed twice", cpu);
		o->cpus[o->ncpus++] = cpu;
	}
	if (!o->ncpus)
		usage_error("--cpu: empty list");
}

/* --lifetime N (messages) or N.Ns (seconds). */
static void parse_lifetime(struct bench_opts *o, const char *s)
{
	size_t n = strlen(s);
	char buf[64];

	if (n && n < sizeof(buf) && s[n - 1] == 's') {
		memcpy(buf, s, n - 1);
		buf[n - 1] = 0;
		o->life_ns = (uint64_t)(parse_secs("--lifetime", buf, 0.001, 86400) * 1e9);
		o->life_msgs = 0;
	} else {
		o->life_msgs = parse_count("--lifetime", s, 1, UINT64_C(1) << 40);
		o->life_ns = 0;
	}
}

/* Loopback when the server is on 127/8 or ::1, "network" otherwise. */
static void default_placement(struct bench_opts *o)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)&o->addr;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&o->addr;
	bool lo = o->addr.ss_family == AF_INET ?
		  (ntohl(in->sin_addr.s_addr) >> 24) == 127 :
		  IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);

	snprintf(o->placement, sizeof(o->placement), "%s", lo ? "loopback" : "network");
}

#define UDP_HDR 28           /* bench_udp.c's header: the least a datagram holds */

/* --udp takes a datagram's options; tcp_only names the first option given
 * that only means something for connections (NULL: none). */
static void check_udp(struct bench_opts *o, const char *tcp_only, bool udp_only)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&o->addr;
	/* A v4-mapped address is an IPv4 path: IPv4's limit, not IPv6's. */
	uint64_t max = o->addr.ss_family == AF_INET6 &&
		       !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) ? 65527 : 65507;

	if (!o->udp) {
		if (udp_only)
			usage_error("--window, --sources and --gso need --udp");
		return;
	}
	if (tcp_only)
		usage_error("%s means nothing with --udp (datagrams, not connections)", tcp_only);
	if (o->size < UDP_HDR || o->size > max)
		usage_error("--size %llu: --udp sends %d to %llu bytes", (unsigned long long)o->size,
			    UDP_HDR, (unsigned long long)max);
	if (o->rate > 0 && o->window)
		usage_error("--rate and --window exclude each other (open loop has no fixed window)");
	if (o->rate > 0 && o->gso > 1)
		usage_error("--gso is for the closed loop (--window), not --rate");
	if (o->gso * o->size > max)
		usage_error("--gso %u x --size %llu: more than %llu bytes in one send", o->gso,
			    (unsigned long long)o->size, (unsigned long long)max);
	if (!o->window && o->rate == 0)
		o->window = 8;
}

static void check_combinations(struct bench_opts *o, bool pipeline_set, bool life_set)
{
	if (o->rate > 0 && pipeline_set)
		usage_error("--rate and --pipeline exclude each other (open loop has no fixed window)");
	if (o->connect_rate > 0 && o->rate > 0)
		usage_error("--connect-rate and --rate exclude each other (churn is a closed loop)");
	if (life_set && o->connect_rate == 0)
		usage_error("--lifetime needs --connect-rate");
	/* A connection never has more in flight than it will ever send: the
	 * report would show a window the run did not use. */
	if (o->connect_rate > 0 && o->life_msgs && o->pipeline > o->life_msgs)
		usage_error("--pipeline %u is more than --lifetime's %llu messages",
			    o->pipeline, (unsigned long long)o->life_msgs);
	if (o->interval > o->duration)
		usage_error("--interval %g is longer than --duration %g", o->interval, o->duration);
	if (o->interval > 0 && o->duration / o->interval > 100000)
		usage_error("--interval: more than 100000 intervals");
	if (o->threads > o->conns)
		o->threads = o->conns;
}

void parse_options(struct bench_opts *o, int argc, char **argv)
{
	enum { OPT_SERVER_PID = 256, OPT_JSON, OPT_GIVE_UP, OPT_VERSION, OPT_PCTS,
	       OPT_HIST, OPT_INTERVAL, OPT_BIND, OPT_CRATE, OPT_LIFE, OPT_PLACE,
	       OPT_CPU, OPT_PROXY, OPT_UDP, OPT_WINDOW, OPT_SOURCES,
	       OPT_GSO };
	static const struct option longs[] = {
		{ "address",      required_argument, NULL, 'a' },
		{ "connections",  required_argument, NULL, 'c' },
		{ "size",         required_argument, NULL, 's' },
		{ "pipeline",     required_argument, NULL, 'p' },
		{ "duration",     required_argument, NULL, 'd' },
		{ "warmup",       required_argument, NULL, 'w' },
		{ "rate",         required_argument, NULL, 'r' },
		{ "threads",      required_argument, NULL, 't' },
		{ "server-pid",   required_argument, NULL, OPT_SERVER_PID },
		{ "json",         no_argument,       NULL, OPT_JSON },
		{ "give-up",      required_argument, NULL, OPT_GIVE_UP },
		{ "version",      no_argument,       NULL, OPT_VERSION },
		{ "percentiles",  required_argument, NULL, OPT_PCTS },
		{ "histogram",    required_argument, NULL, OPT_HIST },
		{ "interval",     required_argument, NULL, OPT_INTERVAL },
		{ "bind",         required_argument, NULL, OPT_BIND },
		{ "connect-rate", required_argument, NULL, OPT_CRATE },
		{ "lifetime",     required_argument, NULL, OPT_LIFE },
		{ "placement",    required_argument, NULL, OPT_PLACE },
		{ "cpu",          required_argument, NULL, OPT_CPU },
		{ "proxy",        required_argument, NULL, OPT_PROXY },
		{ "udp",          no_argument,       NULL, OPT_UDP },
		{ "window",       required_argument, NULL, OPT_WINDOW },
		{ "sources",      required_argument, NULL, OPT_SOURCES },
		{ "gso",          required_argument, NULL, OPT_GSO },
		{ "help",         no_argument,       NULL, 'h' },
		{ 0 }
	};
	const char *addr = "127.0.0.1:40007", *bind = NULL, *place = NULL;
	bool pipeline_set = false, life_set = false, udp_only = false;
	const char *tcp_only = NULL;   /* the first option --udp has no use for */
	int ch;

	*o = (struct bench_opts){ .conns = 1, .threads = 1, .pipeline = 1,
				  .size = 128, .duration = 5, .warmup = 1,
				  .give_up_ns = (uint64_t)(BENCH_DRAIN_IDLE_S * NS_PER_S),
				  .pcts = { 50, 90, 99, 99.9, 99.99 }, .npcts = 5,
				  .life_msgs = 1, .sources = 1, .gso = 1 };
	while ((ch = getopt_long(argc, argv, "a:c:s:p:d:w:r:t:h", longs, NULL)) != -1) {
		if (!tcp_only && (ch == 'c' || ch == 'p' || ch == 't'))
			tcp_only = ch == 'c' ? "--connections" : ch == 'p' ? "--pipeline" : "--threads";
		if (!tcp_only && (ch == OPT_INTERVAL || ch == OPT_CRATE || ch == OPT_LIFE ||
				  ch == OPT_PROXY))
			tcp_only = ch == OPT_INTERVAL ? "--interval" : ch == OPT_CRATE ?
				   "--connect-rate" : ch == OPT_LIFE ? "--lifetime" : "--proxy";
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'c': o->conns = (unsigned)parse_count("--connections", optarg, 1, BENCH_MAX_CONNS); break;
		case 's': o->size = parse_count("--size", optarg, 1, UINT64_C(1) << 30); break;
		case 'p': o->pipeline = (unsigned)parse_count("--pipeline", optarg, 1, BENCH_MAX_PIPELINE);
			  pipeline_set = true; break;
		case 'd': o->duration = parse_secs("--duration", optarg, 0.001, 86400); break;
		case 'w': o->warmup = parse_secs("--warmup", optarg, 0, 86400); break;
		case 'r': o->rate = parse_secs("--rate", optarg, 0.001, 1e9); break;
		case 't': o->threads = (unsigned)parse_count("--threads", optarg, 1, BENCH_MAX_THREADS); break;
		case OPT_SERVER_PID:
			o->server_pid = (pid_t)parse_count("--server-pid", optarg, 1, INT32_MAX); break;
		case OPT_JSON: o->json = true; break;
		case OPT_GIVE_UP:
			o->give_up_ns = (uint64_t)(parse_secs("--give-up", optarg, 0.001, 3600) * NS_PER_S);
			break;
		case OPT_VERSION: printf("echosrv-bench %s\n", BENCH_VERSION); exit(0);
		case OPT_PCTS: parse_pcts(o, optarg); break;
		case OPT_HIST: o->histogram = optarg; break;
		case OPT_INTERVAL: o->interval = parse_secs("--interval", optarg, 0.01, 86400); break;
		case OPT_BIND: bind = optarg; break;
		case OPT_CRATE: o->connect_rate = parse_secs("--connect-rate", optarg, 0.001, 1e7); break;
		case OPT_LIFE: parse_lifetime(o, optarg); life_set = true; break;
		case OPT_PLACE: place = optarg; break;
		case OPT_CPU: parse_cpus(o, optarg); break;
		case OPT_PROXY:
			if (strcmp(optarg, "v1") && strcmp(optarg, "v2"))
				usage_error("--proxy: '%s': v1 or v2", optarg);
			o->proxy = optarg[1] - '0';
			break;
		case OPT_UDP: o->udp = true; break;
		case OPT_WINDOW:
			o->window = (unsigned)parse_count("--window", optarg, 1, BENCH_UDP_MAX_WINDOW);
			udp_only = true; break;
		case OPT_SOURCES:
			o->sources = (unsigned)parse_count("--sources", optarg, 1, BENCH_UDP_MAX_SOURCES);
			udp_only = true; break;
		case OPT_GSO:
			o->gso = (unsigned)parse_count("--gso", optarg, 1, 64);
			udp_only = true; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		default: usage_error("bad option");
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	parse_address(o, addr);
	check_udp(o, tcp_only, udp_only);
	check_combinations(o, pipeline_set, life_set);
	if (bind)
		parse_bind(o, bind);
	if (place) {
		if (!*place || strlen(place) >= sizeof(o->placement) || strpbrk(place, "\"\\"))
			usage_error("--placement: '%s': up to 31 characters, no quotes", place);
		snprintf(o->placement, sizeof(o->placement), "%s", place);
	} else {
		default_placement(o);
	}
}

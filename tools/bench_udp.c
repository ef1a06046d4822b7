/* SPDX-License-Identifier: GPL-2.0-only */
/* echosrv-bench-udp: a UDP echo load generator that checks every datagram.
 *
 * Each of --sources sockets keeps --window numbered datagrams in flight to
 * the server.  A datagram carries its source, its sequence number, its send
 * time and a checksum over all its bytes; the payload is a pattern of the
 * sequence number, so any changed byte shows.  What comes back is sorted
 * into echoed, duplicated (a sequence number already seen), reordered (one
 * older than the newest already back), corrupted (bad checksum or from
 * another source) and lost (not back within --give-up, which also frees
 * its window slot; a reply later than that stays lost).  Round-trip times
 * go into the histogram of tools/hist.c.  Single-threaded: one poll loop
 * over every socket, so it measures one client CPU's worth.
 *
 * This is its own program beside echosrv-bench (tools/bench*.c), which is
 * TCP; folding it in as `echosrv-bench --udp` is a later, small step. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"

#define MAGIC 0x55445045u	/* "UDPE" */
#define HDR 28
#define MAX_SOURCES 1024
#define MAX_SIZE 65507

struct hdr {
	uint32_t magic, src;
	uint64_t seq, sent_ns;
	uint32_t csum;
} __attribute__((packed));

struct source {
	int fd;
	uint64_t next;		/* next sequence number to send */
	uint64_t oldest;	/* first not yet back nor given up */
	uint64_t newest;	/* highest sequence number back so far + 1 */
	unsigned inflight;
	uint8_t *state;		/* per seq: 0 out, 1 back, 2 lost */
	uint64_t *sent;		/* per seq: ns */
};

struct totals {
	uint64_t sent, echoed, lost, dup, reordered, corrupted;
};

static struct {
	struct sockaddr_storage to;
	socklen_t to_len;
	unsigned size, window, sources;
	unsigned gso;		/* datagrams per send (UDP_SEGMENT); 1: a send each */
	uint64_t count;		/* per source */
	uint64_t give_up_ns;
	const char *bind_base;	/* first source address; the next ones count up */
} opt = { .size = 64, .window = 8, .sources = 1, .gso = 1, .count = 10000,
	  .give_up_ns = 1000000000ull };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void fill(uint8_t *buf, unsigned src, uint64_t seq, uint64_t t)
{
	struct hdr h = { MAGIC, src, seq, t, 0 };

	for (unsigned i = HDR; i < opt.size; i++)
		buf[i] = (uint8_t)(seq * 31 + i);
	memcpy(buf, &h, HDR);
	h.csum = fnv(buf, opt.size);
	memcpy(buf, &h, HDR);
}

static int open_source(unsigned i, struct source *s)
{
	int fam = opt.to.ss_family;

	s->fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	s->state = calloc(opt.count, 1);
	s->sent = calloc(opt.count, sizeof(*s->sent));
	if (s->fd < 0 || !s->state || !s->sent)
		return -1;
	int big = 4 << 20;
	setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (opt.bind_base && fam == AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		if (inet_pton(AF_INET, opt.bind_base, &a.sin_addr) != 1)
			return -1;
		a.sin_addr.s_addr = htonl(ntohl(a.sin_addr.s_addr) + i);
		if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)))
			return -1;
	}
	return connect(s->fd, (struct sockaddr *)&opt.to, opt.to_len);
}

/* n datagrams of opt.size at buf in one send; with --gso, UDP_SEGMENT
 * makes the kernel cut them apart (a receiver with UDP_GRO may get them
 * back together as one receive). */
static ssize_t send_n(int fd, uint8_t *buf, unsigned n)
{
	union {
		char b[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} cs = { 0 };
	struct iovec iov = { buf, (size_t)n * opt.size };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	uint16_t seg = (uint16_t)opt.size;

	if (n > 1) {
		struct cmsghdr *c = (struct cmsghdr *)cs.b;
		c->cmsg_level = SOL_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(seg));
		memcpy(CMSG_DATA(c), &seg, sizeof(seg));
		m.msg_control = cs.b;
		m.msg_controllen = sizeof(cs.b);
	}
	return sendmsg(fd, &m, 0);
}

static void send_some(struct source *s, unsigned idx, struct totals *t, uint8_t *buf)
{
	while (s->inflight < opt.window && s->next < opt.count) {
		uint64_t ts = now_ns(), left = opt.count - s->next;
		unsigned n = opt.gso, room = opt.window - s->inflight;

		n = n < room ? n : room;
		n = n < left ? n : (unsigned)left;
		for (unsigned j = 0; j < n; j++)
			fill(buf + (size_t)j * opt.size, idx, s->next + j, ts);
		if (send_n(s->fd, buf, n) < 0)
			return;	/* the send queue is full: try on the next turn */
		for (unsigned j = 0; j < n; j++)
			s->sent[s->next++] = ts;
		s->inflight += n;
		t->sent += n;
	}
}

static void on_reply(struct source *s, unsigned idx, const uint8_t *buf, ssize_t n,
		     struct totals *t, struct hist *rtt)
{
	struct hdr h;

	if (n != (ssize_t)opt.size) {
		t->corrupted++;
		return;
	}
	memcpy(&h, buf, HDR);
	/* The checksum covers every byte, its own field taken as 0. */
	static uint8_t copy[MAX_SIZE];
	memcpy(copy, buf, opt.size);
	memset(copy + offsetof(struct hdr, csum), 0, sizeof(h.csum));
	if (h.magic != MAGIC || h.src != idx || h.seq >= s->next || fnv(copy, opt.size) != h.csum) {
		t->corrupted++;
		return;
	}
	if (s->state[h.seq] == 1) {
		t->dup++;
		return;
	}
	if (s->state[h.seq] == 2)
		return;	/* later than --give-up: stays lost */
	s->state[h.seq] = 1;
	s->inflight--;
	t->echoed++;
	if (h.seq + 1 < s->newest)
		t->reordered++;
	else
		s->newest = h.seq + 1;
	hist_record(rtt, now_ns() - s->sent[h.seq]);
}

static void give_up(struct source *s, uint64_t now, struct totals *t)
{
	while (s->oldest < s->next &&
	       (s->state[s->oldest] || now - s->sent[s->oldest] > opt.give_up_ns)) {
		if (!s->state[s->oldest]) {
			s->state[s->oldest] = 2;
			s->inflight--;
			t->lost++;
		}
		s->oldest++;
	}
}

static int parse_target(const char *host, unsigned port)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&opt.to;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&opt.to;

	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		opt.to_len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		opt.to_len = sizeof(*a6);
		return 0;
	}
	return -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: echosrv-bench-udp --host ADDR --port N [--size BYTES (%u..%u)] "
		"[--window K] [--sources S] [--bind FIRST-IPv4] [--count N per source] "
		"[--give-up MS] [--gso N (datagrams per send, UDP_SEGMENT; N x size <= %u)]\n",
		HDR, MAX_SIZE, MAX_SIZE);
	exit(2);
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", 1, 0, 'H' }, { "port", 1, 0, 'p' }, { "size", 1, 0, 's' },
		{ "window", 1, 0, 'k' }, { "sources", 1, 0, 'S' }, { "bind", 1, 0, 'b' },
		{ "count", 1, 0, 'n' }, { "give-up", 1, 0, 'g' }, { "gso", 1, 0, 'G' },
		{ 0, 0, 0, 0 },
	};
	const char *host = NULL;
	unsigned port = 0;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'H': host = optarg; break;
		case 'p': port = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': opt.size = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'k': opt.window = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': opt.sources = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'b': opt.bind_base = optarg; break;
		case 'n': opt.count = strtoull(optarg, NULL, 10); break;
		case 'g': opt.give_up_ns = strtoull(optarg, NULL, 10) * 1000000ull; break;
		case 'G': opt.gso = (unsigned)strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (!host || !port || port > 65535 || parse_target(host, port) || opt.size < HDR ||
	    opt.size > MAX_SIZE || !opt.window || !opt.sources || opt.sources > MAX_SOURCES ||
	    !opt.count || !opt.gso || opt.gso > 64 || (uint64_t)opt.gso * opt.size > MAX_SIZE)
		usage();
}

int main(int argc, char **argv)
{
	static struct source src[MAX_SOURCES];
	static struct pollfd pfd[MAX_SOURCES];
	static uint8_t buf[MAX_SIZE + 1];
	static struct hist rtt;
	struct totals t = { 0 };

	parse(argc, argv);
	hist_init(&rtt);
	for (unsigned i = 0; i < opt.sources; i++) {
		if (open_source(i, &src[i])) {
			perror("echosrv-bench-udp: source socket");
			return 1;
		}
		pfd[i] = (struct pollfd){ .fd = src[i].fd, .events = POLLIN };
	}
	uint64_t start = now_ns();
	for (;;) {
		bool busy = false;
		for (unsigned i = 0; i < opt.sources; i++) {
			send_some(&src[i], i, &t, buf);
			give_up(&src[i], now_ns(), &t);	/* after the sends: no time runs backwards */
			busy |= src[i].oldest < opt.count;
		}
		if (!busy)
			break;
		if (poll(pfd, opt.sources, 10) < 0 && errno != EINTR)
			return 1;
		for (unsigned i = 0; i < opt.sources; i++) {
			ssize_t n;
			for (int k = 0; k < 64 && (n = recv(src[i].fd, buf, sizeof(buf), 0)) >= 0; k++)
				on_reply(&src[i], i, buf, n, &t, &rtt);
		}
	}
	double secs = (double)(now_ns() - start) / 1e9;
	printf("{\"sent\": %llu, \"echoed\": %llu, \"echoed_per_sec\": %.0f, \"lost\": %llu, "
	       "\"duplicated\": %llu, \"reordered\": %llu, \"corrupted\": %llu, "
	       "\"rtt_p50_us\": %.1f, \"rtt_p99_us\": %.1f, \"rtt_max_us\": %.1f, \"seconds\": %.3f}\n",
	       (unsigned long long)t.sent, (unsigned long long)t.echoed, (double)t.echoed / secs,
	       (unsigned long long)t.lost, (unsigned long long)t.dup,
	       (unsigned long long)t.reordered, (unsigned long long)t.corrupted,
	       (double)hist_quantile(&rtt, 0.5) / 1e3, (double)hist_quantile(&rtt, 0.99) / 1e3,
	       (double)rtt.max / 1e3, secs);
	return 0;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* bench_udp.c - echosrv-bench --udp: a UDP echo load that checks every
 * datagram.
 *
 * Each of --sources sockets keeps --window numbered datagrams in flight to
 * the server (or, with --rate, sends on a fixed schedule spread over the
 * sources).  A datagram carries its source, its sequence number, its send
 * time and a checksum over all its bytes; the payload is a pattern of the
 * sequence number, so any changed byte shows (--gso: up to N datagrams in
 * one send, cut apart by the kernel).  What comes back is sorted
 * into echoed, duplicated (a sequence number already seen), reordered (one
 * older than the newest already back), corrupted (bad length or checksum,
 * or from another source) and lost (not back within --give-up, which also
 * frees its window slot; a reply later than that stays lost).  Round-trip
 * times go into the histogram of tools/hist.c.  Single-threaded: one poll
 * loop over every socket, so it measures one client CPU's worth.
 *
 * The run follows echosrv-bench's clock: --warmup, then --duration
 * measured (the datagrams sent in it are the ones counted), then a drain
 * of at most --give-up for the last replies.  The options are
 * bench_opts.c's, the report bench_udp_out.c's. */
#include "bench_udp.h"

#include <errno.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x55445045u	/* "UDPE" */
#define HDR 28
#define MAX_SIZE 65527
#define RING_TOTAL (1u << 18)	/* datagram records over all sources */

struct hdr {
	uint32_t magic, src;
	uint64_t seq, sent_ns;
	uint32_t csum;
} __attribute__((packed));

_Static_assert(sizeof(struct hdr) == HDR, "the header is HDR bytes");

/* One datagram's record, kept until the ring comes round to it again. */
struct slot {
	uint64_t seq, sent;	/* sent: ns (with --rate, when it was due) */
	uint8_t state;		/* 0 out, 1 back, 2 lost */
	bool measured;		/* sent inside the measured window */
};

struct source {
	int fd;
	uint64_t next;		/* next sequence number to send */
	uint64_t oldest;	/* first not yet back nor given up */
	uint64_t newest;	/* highest sequence number back so far + 1 */
	unsigned inflight;
	struct slot *ring;	/* seq & mask; [oldest, next) is never overwritten */
};

static struct {
	const struct bench_opts *o;
	struct source *src;
	struct pollfd *pfd;
	uint64_t mask;
	uint64_t go, measure, end;	/* the clock, CLOCK_MONOTONIC ns */
	uint64_t due;			/* --rate: datagrams scheduled so far */
	int send_err;			/* a send error that retrying cannot cure */
	struct udp_report *r;
} run;

static uint64_t now_ns(void)
{
	return bench_now_ns();
}

/* FNV-1a over 8-byte words (the tail bytewise), the checksum's own field
 * (bytes 24..27) taken as 0: a word at a time, so that the checksum of a
 * 64 KiB datagram costs the load generator little next to its echo.  Each
 * step is a bijection of the hash, so one changed word always changes it. */
static uint32_t checksum(const uint8_t *p, size_t n)
{
	const size_t at = offsetof(struct hdr, csum);
	uint64_t h = 1469598103934665603ull, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint8_t word[8];

		memcpy(word, p + i, 8);
		if (i == at)
			memset(word, 0, sizeof(uint32_t));
		memcpy(&w, word, 8);
		h = (h ^ w) * 1099511628211ull;
	}
	for (; i < n; i++)
		h = (h ^ (i >= at && i < at + 4 ? 0 : p[i])) * 1099511628211ull;
	return (uint32_t)(h ^ (h >> 32));
}

/* The payload: bytes counting up from one that depends on the number, so
 * any changed byte shows; copied from a ramp rather than made byte by byte. */
static void fill(uint8_t *buf, unsigned size, unsigned src, uint64_t seq, uint64_t t)
{
	static uint8_t ramp[MAX_SIZE + 256];
	struct hdr h = { MAGIC, src, seq, t, 0 };

	if (!ramp[1])
		for (size_t i = 0; i < sizeof(ramp); i++)
			ramp[i] = (uint8_t)i;
	memcpy(buf + HDR, ramp + ((seq * 31 + HDR) & 0xff), size - HDR);
	memcpy(buf, &h, HDR);
	h.csum = checksum(buf, size);
	memcpy(buf, &h, HDR);
}

static bool in_window(uint64_t t)
{
	return t >= run.measure && t < run.end;
}

/* A power of two, at least 4 windows, else the source's share of the total. */
static uint64_t ring_size(const struct bench_opts *o)
{
	uint64_t want = RING_TOTAL / o->sources, n = 64;

	if (want < 4ull * o->window)
		want = 4ull * o->window;
	while (n < want)
		n <<= 1;
	return n;
}

static int open_source(const struct bench_opts *o, unsigned i, struct source *s)
{
	int big = 4 << 20;

	s->fd = socket(o->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	s->ring = calloc(run.mask + 1, sizeof(*s->ring));
	if (s->fd < 0 || !s->ring)
		return -(errno ? errno : ENOMEM);
	setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (o->nbind) {
		const struct sockaddr_storage *b = &o->bind[i % o->nbind];
		socklen_t len = b->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
							   sizeof(struct sockaddr_in6);
		if (bind(s->fd, (const struct sockaddr *)b, len))
			return -errno;
	}
	if (connect(s->fd, (const struct sockaddr *)&o->addr, o->addrlen))
		return -errno;
	return 0;
}

/* n datagrams of size at buf in one send; n > 1 (--gso) asks the kernel to
 * cut them apart (UDP_SEGMENT), so a receiver with UDP_GRO may get them
 * back together in one receive. */
static ssize_t send_n(int fd, const uint8_t *buf, unsigned size, unsigned n)
{
	union {
		char b[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} cs = { 0 };
	struct iovec iov = { (void *)buf, (size_t)n * size };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	uint16_t seg = (uint16_t)size;

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

/* n datagrams out in one send, numbered from s->next and stamped ts; false
 * if they did not go. */
static bool send_batch(struct source *s, unsigned idx, uint64_t ts, uint8_t *buf, unsigned n)
{
	struct udp_totals *t = &run.r->t;
	unsigned size = (unsigned)run.o->size;

	if (s->next + n - s->oldest > run.mask + 1)
		return false;	/* the ring is full of unsettled datagrams: wait */
	for (unsigned j = 0; j < n; j++)
		fill(buf + (size_t)j * size, size, idx, s->next + j, ts);
	if (send_n(s->fd, buf, size, n) < 0) {
		if (errno == ECONNREFUSED)
			t->refused++;
		/* A full send queue clears; anything else (EINVAL or EMSGSIZE:
		 * --gso's datagrams do not fit the path's MTU) would fail
		 * every send of the run, which would then measure nothing. */
		else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS &&
			 errno != EINTR && !run.send_err)
			run.send_err = errno;
		return false;	/* the send queue is full: try on the next turn */
	}
	for (unsigned j = 0; j < n; j++) {
		struct slot *sl = &s->ring[s->next & run.mask];

		*sl = (struct slot){ .seq = s->next, .sent = ts, .measured = in_window(ts) };
		s->next++;
		t->sent += sl->measured;
	}
	s->inflight += n;
	return true;
}

static bool send_one(struct source *s, unsigned idx, uint64_t ts, uint8_t *buf)
{
	return send_batch(s, idx, ts, buf, 1);
}

static void send_some(struct source *s, unsigned idx, uint8_t *buf)
{
	while (s->inflight < run.o->window && now_ns() < run.end) {
		unsigned n = run.o->gso, room = run.o->window - s->inflight;

		if (!send_batch(s, idx, now_ns(), buf, n < room ? n : room))
			return;
	}
}

/* --rate: every datagram that is due, each stamped with when it was due, so
 * a server (or a client) that falls behind shows in the latency. */
static void send_due(uint8_t *buf)
{
	const struct bench_opts *o = run.o;
	uint64_t now = now_ns();

	for (int k = 0; k < 1024; k++) {
		uint64_t at = run.go + (uint64_t)((double)run.due * 1e9 / o->rate);
		unsigned idx = (unsigned)(run.due % o->sources);

		if (at > now || at >= run.end || !send_one(&run.src[idx], idx, at, buf))
			return;
		run.due++;
	}
}

static void on_reply(struct source *s, unsigned idx, const uint8_t *buf, ssize_t n)
{
	struct udp_totals *t = &run.r->t;
	unsigned size = (unsigned)run.o->size;
	struct hdr h;

	if (n != (ssize_t)size) {
		t->corrupted++;
		t->bad_size++;
		return;
	}
	memcpy(&h, buf, HDR);
	/* The checksum covers every byte, its own field taken as 0. */
	bool intact = checksum(buf, size) == h.csum;
	if (h.magic != MAGIC || h.src != idx || h.seq >= s->next || !intact) {
		t->corrupted++;
		/* Intact, but another source's: the server answered the wrong peer. */
		t->bad_source += h.magic == MAGIC && h.src != idx && intact;
		return;
	}
	struct slot *sl = &s->ring[h.seq & run.mask];
	if (sl->seq != h.seq || sl->state == 2)
		return;	/* later than --give-up: stays lost */
	if (sl->state == 1) {
		t->dup += sl->measured;
		return;
	}
	sl->state = 1;
	s->inflight--;
	if (h.seq + 1 < s->newest)
		t->reordered += sl->measured;
	else
		s->newest = h.seq + 1;
	if (sl->measured) {
		t->echoed++;
		hist_record(&run.r->rtt, now_ns() - sl->sent);
	}
}

static void give_up(struct source *s, uint64_t now)
{
	while (s->oldest < s->next) {
		struct slot *sl = &s->ring[s->oldest & run.mask];

		if (!sl->state && now - sl->sent <= run.o->give_up_ns)
			break;
		if (!sl->state) {
			sl->state = 2;
			s->inflight--;
			run.r->t.lost += sl->measured;
		}
		s->oldest++;
	}
}

static void receive_all(uint8_t *buf, size_t len)
{
	for (unsigned i = 0; i < run.o->sources; i++) {
		ssize_t n;
		for (int k = 0; k < 64; k++) {
			n = recv(run.src[i].fd, buf, len, 0);
			if (n < 0) {
				if (errno == ECONNREFUSED)
					run.r->t.refused++;
				break;
			}
			on_reply(&run.src[i], i, buf, n);
		}
	}
}

static uint64_t cpu_self_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* The figures at one end of the measured window (0 start, 1 end). */
static void sample(int end)
{
	const struct bench_opts *o = run.o;
	struct udp_report *r = run.r;
	static uint64_t self0;

	if (o->server_pid)
		r->srv_cpu[end] = proc_tree_cpu_ns(o->server_pid);
	r->stat_ok[end] = cpustat_read(NULL, &r->all[end], o->cpus, r->cpu[end], o->ncpus) == 0;
	if (!end)
		self0 = cpu_self_ns();
	else
		r->client_ns = cpu_self_ns() - self0;
}

/* How long poll may sleep: to the next phase, datagram due, or 10 ms. */
static struct timespec wait_for(uint64_t now, int phase)
{
	uint64_t until = now + 10 * 1000 * 1000, edge = phase == 0 ? run.measure : run.end;

	if (phase < 2 && edge < until)
		until = edge;
	if (run.o->rate > 0 && phase < 2) {
		uint64_t at = run.go + (uint64_t)((double)run.due * 1e9 / run.o->rate);
		if (at < until)
			until = at > now ? at : now;
	}
	return (struct timespec){ .tv_sec = (time_t)((until - now) / NS_PER_S),
				  .tv_nsec = (long)((until - now) % NS_PER_S) };
}

/* Warm-up, measurement, drain; 0, or -errno when poll or a send failed
 * (run.send_err tells which). */
static int run_load(void)
{
	static uint8_t buf[MAX_SIZE + 1];
	const struct bench_opts *o = run.o;
	int phase = 0;	/* 0 warm-up, 1 measuring, 2 draining */

	run.go = now_ns();
	run.measure = run.go + (uint64_t)(o->warmup * 1e9);
	run.end = run.measure + (uint64_t)(o->duration * 1e9);
	for (;;) {
		uint64_t now = now_ns();
		bool busy = false;

		if (phase == 0 && now >= run.measure) {
			sample(0);
			phase = 1;
		}
		if (phase == 1 && now >= run.end) {
			sample(1);
			phase = 2;
		}
		if (o->rate > 0)
			send_due(buf);
		for (unsigned i = 0; i < o->sources; i++) {
			if (o->rate == 0)
				send_some(&run.src[i], i, buf);
			give_up(&run.src[i], now_ns());	/* after the sends: no time runs backwards */
			busy |= run.src[i].oldest < run.src[i].next;
		}
		if (run.send_err)
			return -run.send_err;
		if (phase == 2 && !busy)
			return 0;
		struct timespec ts = wait_for(now_ns(), phase);
		if (ppoll(run.pfd, o->sources, &ts, NULL) < 0 && errno != EINTR)
			return -errno;
		receive_all(buf, sizeof(buf));
	}
}

static void started_at(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int setup(const struct bench_opts *o, struct udp_report *r)
{
	int err;

	run.o = o;
	run.r = r;
	run.mask = ring_size(o) - 1;
	run.src = calloc(o->sources, sizeof(*run.src));
	run.pfd = calloc(o->sources, sizeof(*run.pfd));
	if (!run.src || !run.pfd) {
		fprintf(stderr, "echosrv-bench: out of memory\n");
		return EXIT_SETUP;
	}
	*r = (struct udp_report){ .srv_cpu = { -1, -1 } };
	hist_init(&r->rtt);
	for (unsigned i = 0; i < o->sources; i++) {
		run.src[i].fd = -1;
		if ((err = open_source(o, i, &run.src[i])) < 0) {
			fprintf(stderr, "echosrv-bench: UDP source %u to %s: %s\n", i, o->addr_text,
				strerror(-err));
			return EXIT_SETUP;
		}
		run.pfd[i] = (struct pollfd){ .fd = run.src[i].fd, .events = POLLIN };
	}
	return 0;
}

int bench_udp_main(const struct bench_opts *o)
{
	static struct udp_report r;
	FILE *hist_f = NULL;
	int rc, err;

	if (o->histogram && !(hist_f = fopen(o->histogram, "we"))) {
		fprintf(stderr, "echosrv-bench: --histogram %s: %s\n", o->histogram,
			strerror(errno));
		return EXIT_SETUP;
	}
	if ((rc = setup(o, &r)))
		return rc;
	started_at(r.started, sizeof(r.started));
	if ((err = run_load()) < 0) {
		if (run.send_err)
			fprintf(stderr, "echosrv-bench: UDP send to %s: %s%s\n", o->addr_text,
				strerror(-err), o->gso > 1 && (err == -EINVAL || err == -EMSGSIZE) ?
				" (--gso: are --size bytes more than the path's MTU takes?)" : "");
		else
			fprintf(stderr, "echosrv-bench: poll: %s\n", strerror(-err));
		return EXIT_SETUP;
	}
	r.secs = (double)(run.end - run.measure) / 1e9;
	if (!r.t.echoed && r.t.refused) {
		fprintf(stderr, "echosrv-bench: nothing echoed: %s answers port unreachable "
			"(no UDP server there)\n", o->addr_text);
		return EXIT_SETUP;
	}
	if (hist_f && (err = bench_write_histogram(hist_f, &r.rtt)) < 0) {
		fprintf(stderr, "echosrv-bench: --histogram %s: %s\n", o->histogram,
			strerror(-err));
		rc = EXIT_ERRORS;
	}
	if (o->json)
		bench_udp_print_json(o, &r);
	else
		bench_udp_print_text(o, &r);
	fflush(stdout);
	for (unsigned i = 0; i < o->sources; i++) {
		close(run.src[i].fd);
		free(run.src[i].ring);
	}
	free(run.src);
	free(run.pfd);
	return bench_udp_failed(&r) || rc ? EXIT_ERRORS : 0;
}

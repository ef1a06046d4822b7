/* SPDX-License-Identifier: GPL-2.0-only */
/* connhold: open many connections to an echo server, keep every one of them
 * echoing, and report the server's memory and descriptors while they are
 * held and after they close.  Used by `make scale` (tests/scale/scale.py).
 *
 * One process may hold at most RLIMIT_NOFILE descriptors and one loopback
 * source address has about 28,000 ephemeral ports towards one server port,
 * so the connections are spread over --procs child processes and
 * --sources source addresses (127.0.0.2 and up; bound with
 * IP_BIND_ADDRESS_NO_PORT so that the port is picked per 4-tuple).
 *
 * The children run in lock-step with the parent through pipes:
 *   1. connect every connection and echo one message on each (the time this
 *      takes over all children gives the accept rate: new connections per
 *      second, each accepted and served);
 *   2. --rounds more messages on every connection, all at once;
 *   3. close everything.
 * Between the phases the parent samples /proc/PID of the server (--pid).
 * Every byte that comes back is checked; any mismatch, reset or timeout is
 * an error and makes the exit status 1.  Every phase has a deadline. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 64
#define MAX_MSG 65536
#define CONNECT_WINDOW 256	/* handshakes in flight per child */
#define PHASE_SECS 120

struct opts {
	struct sockaddr_in dst;
	unsigned conns, procs, sources, msg, rounds;
	int pid;
};

struct hconn {
	int fd;
	uint32_t id;
	uint32_t sent, got;	/* bytes of the current message */
	uint32_t round;
	bool connected, done;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t pattern(uint32_t id, uint32_t round, uint32_t j)
{
	return (uint8_t)(id * 131u + round * 7u + j * 13u + (j >> 8));
}

/* --- child ------------------------------------------------------------------ */

struct child {
	const struct opts *o;
	unsigned index;
	struct hconn *c;
	unsigned n, pending, next;	/* next: first not yet connecting */
	int ep;
	uint64_t errors;
	uint8_t buf[MAX_MSG];
};

static void fail(struct child *ch, struct hconn *c, const char *why, int err)
{
	if (ch->errors++ < 5)
		fprintf(stderr, "connhold: conn %u: %s%s%s\n", c->id, why, err ? ": " : "",
			err ? strerror(err) : "");
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->done = true;
	ch->pending--;
}

static int start_connect(struct child *ch, struct hconn *c)
{
	const struct opts *o = ch->o;
	struct sockaddr_in src = { .sin_family = AF_INET };
	int one = 1;

	src.sin_addr.s_addr = htonl(0x7f000002u + (c->id % o->sources));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	setsockopt(c->fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
	if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) ||
	    (connect(c->fd, (struct sockaddr *)&o->dst, sizeof(o->dst)) && errno != EINPROGRESS))
		return -errno;
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
	return epoll_ctl(ch->ep, EPOLL_CTL_ADD, c->fd, &ev) ? -errno : 0;
}

static void send_some(struct child *ch, struct hconn *c)
{
	uint8_t out[MAX_MSG];
	uint32_t n = ch->o->msg - c->sent;

	for (uint32_t j = 0; j < n; j++)
		out[j] = pattern(c->id, c->round, c->sent + j);
	ssize_t s = send(c->fd, out, n, MSG_NOSIGNAL);
	if (s < 0 && errno != EAGAIN)
		return fail(ch, c, "send", errno);
	if (s > 0)
		c->sent += (uint32_t)s;
	struct epoll_event ev = { .events = EPOLLIN | (c->sent < ch->o->msg ? EPOLLOUT : 0),
				  .data.ptr = c };
	epoll_ctl(ch->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_event(struct child *ch, struct hconn *c, uint32_t events)
{
	if (!c->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (!(events & EPOLLOUT))
			return;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			return fail(ch, c, "connect", err);
		c->connected = true;
	}
	if ((events & EPOLLOUT) && c->sent < ch->o->msg)
		send_some(ch, c);
	if (c->done || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	ssize_t r = recv(c->fd, ch->buf, sizeof(ch->buf), 0);
	if (r == 0)
		return fail(ch, c, "unexpected EOF", 0);
	if (r < 0)
		return errno == EAGAIN ? (void)0 : fail(ch, c, "recv", errno);
	for (ssize_t j = 0; j < r; j++)
		if (c->got + j >= c->sent || ch->buf[j] != pattern(c->id, c->round, c->got + (uint32_t)j))
			return fail(ch, c, "echoed bytes differ from those sent", 0);
	c->got += (uint32_t)r;
	if (c->got == ch->o->msg) {
		c->done = true;
		ch->pending--;
	}
}

/* Run until every connection has finished its message (or failed). */
static void run_phase(struct child *ch, bool connecting)
{
	struct epoll_event evs[512];
	double deadline = now_s() + PHASE_SECS;

	while (ch->pending) {
		while (connecting && ch->next < ch->n &&
		       ch->next - (ch->n - ch->pending) < CONNECT_WINDOW) {
			struct hconn *c = &ch->c[ch->next++];
			int r = start_connect(ch, c);
			if (r)
				fail(ch, c, "socket/connect", -r);
		}
		int n = epoll_wait(ch->ep, evs, 512, 1000);
		for (int i = 0; i < n; i++)
			on_event(ch, evs[i].data.ptr, evs[i].events);
		if (now_s() > deadline) {
			for (unsigned i = 0; i < ch->n; i++)
				if (!ch->c[i].done && ch->c[i].fd >= 0)
					fail(ch, &ch->c[i], "phase deadline passed", 0);
			break;
		}
	}
}

static void next_round(struct child *ch)
{
	ch->pending = 0;
	for (unsigned i = 0; i < ch->n; i++) {
		struct hconn *c = &ch->c[i];
		if (c->fd < 0)
			continue;
		c->round++;
		c->sent = c->got = 0;
		c->done = false;
		ch->pending++;
		send_some(ch, c);
	}
}

static void report(int fd, const struct child *ch)
{
	uint64_t e = ch->errors;
	if (write(fd, &e, sizeof(e)) != sizeof(e))
		_exit(3);
}

static void await_go(int fd)
{
	char go;
	if (read(fd, &go, 1) != 1)
		_exit(3);	/* parent gone */
}

static int child_main(const struct opts *o, unsigned index, unsigned first, unsigned n,
		      int up, int down)
{
	struct child *ch = calloc(1, sizeof(*ch));

	ch->o = o;
	ch->index = index;
	ch->n = ch->pending = n;
	ch->c = calloc(n, sizeof(*ch->c));
	ch->ep = epoll_create1(0);
	for (unsigned i = 0; i < n; i++)
		ch->c[i] = (struct hconn){ .fd = -1, .id = first + i };
	await_go(down);
	run_phase(ch, true);		/* 1: connect + first echo */
	report(up, ch);
	await_go(down);
	for (unsigned r = 0; r < o->rounds; r++) {	/* 2: all echoing */
		next_round(ch);
		run_phase(ch, false);
	}
	report(up, ch);
	await_go(down);
	for (unsigned i = 0; i < n; i++)		/* 3: close */
		if (ch->c[i].fd >= 0)
			close(ch->c[i].fd);
	report(up, ch);
	return ch->errors ? 1 : 0;
}

/* --- parent ----------------------------------------------------------------- */

static long proc_value(int pid, const char *key)
{
	char path[64], line[256];
	long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return v;
}

static long fd_count(int pid)
{
	char path[64];
	long n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void sample(const struct opts *o, const char *when)
{
	if (o->pid > 0)
		printf("server %s: rss_kib=%ld fds=%ld\n", when, proc_value(o->pid, "VmRSS:"),
		       fd_count(o->pid));
	fflush(stdout);
}

static uint64_t gather(int *up, unsigned procs)
{
	uint64_t total = 0, e;

	for (unsigned i = 0; i < procs; i++)
		if (read(up[i], &e, sizeof(e)) == sizeof(e))
			total += e;
		else
			total++;
	return total;
}

static void go(int *down, unsigned procs)
{
	for (unsigned i = 0; i < procs; i++)
		if (write(down[i], "g", 1) != 1)
			perror("connhold: write");
}

static int parse(struct opts *o, int argc, char **argv)
{
	int c;

	*o = (struct opts){ .conns = 1000, .procs = 2, .sources = 1, .msg = 64, .rounds = 3 };
	o->dst.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &o->dst.sin_addr);
	while ((c = getopt(argc, argv, "a:p:n:P:s:m:r:S:")) != -1) {
		switch (c) {
		case 'a': if (inet_pton(AF_INET, optarg, &o->dst.sin_addr) != 1) return -1; break;
		case 'p': o->dst.sin_port = htons((uint16_t)atoi(optarg)); break;
		case 'n': o->conns = (unsigned)atoi(optarg); break;
		case 'P': o->procs = (unsigned)atoi(optarg); break;
		case 's': o->sources = (unsigned)atoi(optarg); break;
		case 'm': o->msg = (unsigned)atoi(optarg); break;
		case 'r': o->rounds = (unsigned)atoi(optarg); break;
		case 'S': o->pid = atoi(optarg); break;
		default: return -1;
		}
	}
	if (!o->dst.sin_port || !o->conns || !o->procs || o->procs > MAX_PROCS || !o->sources ||
	    o->sources > 250 || !o->msg || o->msg > MAX_MSG)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	int up[MAX_PROCS], down[MAX_PROCS];
	pid_t kids[MAX_PROCS];
	struct rlimit rl;

	if (parse(&o, argc, argv)) {
		fprintf(stderr, "usage: connhold -p PORT [-a 127.0.0.1] [-n CONNS] [-P PROCS] "
				"[-s SOURCES] [-m MSGBYTES] [-r ROUNDS] [-S SERVERPID]\n");
		return 2;
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	for (unsigned i = 0; i < o.procs; i++) {
		int u[2], d[2];
		unsigned first = (unsigned)((uint64_t)o.conns * i / o.procs);
		unsigned last = (unsigned)((uint64_t)o.conns * (i + 1) / o.procs);
		if (pipe(u) || pipe(d))
			return perror("pipe"), 1;
		kids[i] = fork();
		if (kids[i] == 0) {
			close(u[0]);
			close(d[1]);
			_exit(child_main(&o, i, first, last - first, u[1], d[0]));
		}
		close(u[1]);
		close(d[0]);
		up[i] = u[0];
		down[i] = d[1];
	}
	sample(&o, "before");
	double t0 = now_s();
	go(down, o.procs);
	uint64_t err = gather(up, o.procs);
	double t1 = now_s();
	printf("connected+echoed %u conns in %.3f s: %.0f conns/s, errors=%llu\n", o.conns,
	       t1 - t0, o.conns / (t1 - t0), (unsigned long long)err);
	sample(&o, "connected");
	go(down, o.procs);
	err = gather(up, o.procs);
	double t2 = now_s();
	printf("%u rounds of %u bytes on every conn in %.3f s, errors=%llu\n", o.rounds, o.msg,
	       t2 - t1, (unsigned long long)err);
	sample(&o, "holding");
	go(down, o.procs);
	err = gather(up, o.procs);
	int bad = err != 0;
	for (unsigned i = 0; i < o.procs; i++) {
		int st;
		waitpid(kids[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	printf("closed; errors=%llu\n", (unsigned long long)err);
	fflush(stdout);
	return bad;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * baseline_epoll.c - the plainest correct epoll echo server, the yardstick
 * `make bench` measures echosrv against.
 *
 * One thread, one level-triggered epoll set, one 16 KiB buffer per
 * connection: recv() once, send() once.  When a send is short the rest waits
 * in the buffer and the connection watches EPOLLOUT instead of EPOLLIN until
 * it is gone, which is all it takes to be correct.  No limits, timeouts,
 * statistics or tracing: whatever echosrv costs beyond this line is the price
 * of its features, and whatever it saves is what its engines are for.  Like
 * any echo server meant for latency it sets TCP_NODELAY; without it, Nagle's
 * algorithm and delayed ACKs would make the baseline meaningless.
 *
 * Usage: bench-baseline [ADDR:PORT [PORT_FILE]]   (default 127.0.0.1:0; the
 * bound address is printed, and written to PORT_FILE when given).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE   16384
#define MAX_EVENTS 256

struct conn {
	int fd;
	size_t off, len;        /* unsent bytes are buf[off, len) */
	char buf[BUF_SIZE];
};

static int die(const char *what)
{
	perror(what);
	exit(1);
}

static int listen_on(const char *spec, const char *port_file)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char host[64];
	const char *colon = strrchr(spec, ':');
	socklen_t len = sizeof(sa);
	int fd, one = 1;
	FILE *f;

	if (!colon || (size_t)(colon - spec) >= sizeof(host)) {
		fprintf(stderr, "bench-baseline: bad address '%s' (IPv4 ADDR:PORT)\n", spec);
		exit(2);
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "bench-baseline: bad address '%s' (IPv4 ADDR:PORT)\n", spec);
		exit(2);
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind");
	if (listen(fd, SOMAXCONN) < 0)
		die("listen");
	getsockname(fd, (struct sockaddr *)&sa, &len);
	inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
	printf("bench-baseline: listening on %s:%u\n", host, ntohs(sa.sin_port));
	fflush(stdout);
	if (port_file) {
		f = fopen(port_file, "w");
		if (!f)
			die(port_file);
		fprintf(f, "%s:%u\n", host, ntohs(sa.sin_port));
		fclose(f);
	}
	return fd;
}

static void watch(int ep, int op, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	epoll_ctl(ep, op, c->fd, &ev);
}

static void drop(struct conn *c)
{
	close(c->fd);
	free(c);
}

static void accept_all(int ep, int lfd, struct conn *lc)
{
	int one = 1;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0)
			return;          /* EAGAIN, or EMFILE: try again on the next event */
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->off = c->len = 0;
		watch(ep, EPOLL_CTL_ADD, c, EPOLLIN);
	}
	(void)lc;
}

/* Sends what is buffered; 0 when all of it went, 1 when some waits, -1 on error. */
static int flush(struct conn *c)
{
	ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

	if (n < 0)
		return errno == EAGAIN ? 1 : -1;
	c->off += (size_t)n;
	return c->off < c->len;
}

static void serve(int ep, struct conn *c, uint32_t events)
{
	ssize_t n;
	int r;

	if (c->off < c->len) {          /* waiting to send the rest */
		r = flush(c);
		if (r < 0)
			drop(c);
		else if (r == 0)
			watch(ep, EPOLL_CTL_MOD, c, EPOLLIN);
		return;
	}
	n = recv(c->fd, c->buf, BUF_SIZE, 0);
	if (n <= 0) {
		if (n == 0 || errno != EAGAIN)
			drop(c);        /* EOF: everything read was already sent */
		return;
	}
	c->off = 0;
	c->len = (size_t)n;
	r = flush(c);
	if (r < 0)
		drop(c);
	else if (r > 0)
		watch(ep, EPOLL_CTL_MOD, c, EPOLLOUT);
	(void)events;
}

int main(int argc, char **argv)
{
	struct epoll_event ev[MAX_EVENTS];
	struct conn listener;
	struct rlimit rl;
	int ep, lfd;

	signal(SIGPIPE, SIG_IGN);
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	lfd = listen_on(argc > 1 ? argv[1] : "127.0.0.1:0", argc > 2 ? argv[2] : NULL);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	listener.fd = lfd;
	watch(ep, EPOLL_CTL_ADD, &listener, EPOLLIN);
	for (;;) {
		int n = epoll_wait(ep, ev, MAX_EVENTS, -1);

		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct conn *c = ev[i].data.ptr;

			if (c == &listener)
				accept_all(ep, lfd, c);
			else
				serve(ep, c, ev[i].events);
		}
	}
}

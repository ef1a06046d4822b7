/* SPDX-License-Identifier: GPL-2.0-only */
/* The metrics endpoint's thread; see ops/metrics_http.h for why it accepts
 * connections itself instead of letting libmicrohttpd do it.
 *
 * libmicrohttpd runs in its epoll mode without a thread of its own
 * (MHD_USE_EPOLL, MHD_USE_NO_LISTEN_SOCKET): this thread polls the
 * listener, the daemon's epoll descriptor and a stop eventfd, hands each
 * accepted socket over with MHD_add_connection() and calls MHD_run().
 * Everything, the notification callbacks included, runs in this thread, so
 * the connection table needs no lock.
 *
 * A connection is ended early by shutdown(SHUT_RDWR) on its socket: the
 * socket stays libmicrohttpd's, which sees the end of the stream at its
 * next read and closes and frees the connection the usual way.
 *
 * When the process runs out of descriptors (the workers' connections took
 * them), a probe must still be answered: a liveness probe that times out
 * gets the process killed for what is an overload.  So this thread holds
 * one spare descriptor; on EMFILE or ENFILE it closes the spare and
 * accepts into its place, and takes a descriptor back as the spare as soon
 * as one is free again. */
#include "ops/metrics_http.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/trace.h"
#include "core/util.h"

/* Slots beyond MHTTP_CONNS hold connections already told to close, until
 * libmicrohttpd has closed them: room for new scrapers meanwhile. */
#define SLOTS (2 * MHTTP_CONNS)
#define POOL_BYTES (16u << 10)		/* request headers per connection */
#define ACCEPT_PAUSE_NS (100 * NSEC_PER_MSEC)
#define ACCEPT_BATCH 16

struct hconn {
	int fd;			/* -1: free */
	bool ending;		/* shut down; waiting for libmicrohttpd's close */
	uint64_t since;		/* ns, accepted at */
	struct ipaddr ip;
};

static struct {
	struct MHD_Daemon *d;
	int lfd, stop_fd;
	int spare;		/* -1: lent to a connection accepted out of descriptors */
	pthread_t thread;
	bool running;
	uint64_t accept_resume;	/* ns; 0 = accepting */
	struct hconn conns[SLOTS];
} h = { .lfd = -1, .stop_fd = -1, .spare = -1 };

/* --- the connection table ------------------------------------------------------ */

static void end_conn(struct hconn *c, const char *why)
{
	TRACE(TR_INFO, "metrics: closing a connection: %s", why);
	shutdown(c->fd, SHUT_RDWR);
	c->ending = true;
}

/* The oldest open connection (from ip, when given) old enough to end. */
static struct hconn *oldest(const struct ipaddr *ip, uint64_t now, unsigned *live)
{
	struct hconn *best = NULL;

	*live = 0;
	for (unsigned i = 0; i < SLOTS; i++) {
		struct hconn *c = &h.conns[i];
		if (c->fd < 0 || c->ending || (ip && !ipaddr_equal(ip, &c->ip)))
			continue;
		(*live)++;
		if (now - c->since >= MHTTP_EVICT_AGE_NS && (!best || c->since < best->since))
			best = c;
	}
	return best;
}

/* Admit a scraper from ip: a slot for it, making room by ending the oldest
 * connection of its address or of all where it is at its limit; NULL when
 * every holder is younger than MHTTP_EVICT_AGE_NS (a flood, not a slow
 * client) or the table is full of connections being closed. */
static struct hconn *admit(const struct ipaddr *ip, uint64_t now)
{
	unsigned live;
	struct hconn *old = oldest(ip, now, &live);

	if (live >= MHTTP_PER_IP) {
		if (!old)
			return NULL;
		end_conn(old, "making room: its address is at the limit");
	}
	old = oldest(NULL, now, &live);
	if (live >= MHTTP_CONNS) {
		if (!old)
			return NULL;
		end_conn(old, "making room: the endpoint is full");
	}
	for (unsigned i = 0; i < SLOTS; i++)
		if (h.conns[i].fd < 0)
			return &h.conns[i];
	return NULL;
}

/* End connections past their whole-life deadline; the ns until the next. */
static uint64_t expire(uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (unsigned i = 0; i < SLOTS; i++) {
		struct hconn *c = &h.conns[i];
		if (c->fd < 0 || c->ending)
			continue;
		if (now - c->since >= MHTTP_LIFE_NS)
			end_conn(c, "open too long");
		else
			next = MIN(next, c->since + MHTTP_LIFE_NS - now);
	}
	return next;
}

/* libmicrohttpd's view: a connection starts inside MHD_add_connection() and
 * is closed in MHD_run(); the slot goes with it. */
static void on_notify(void *cls, struct MHD_Connection *mc, void **socket_ctx,
		      enum MHD_ConnectionNotificationCode code)
{
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct hconn *c = *socket_ctx;
		if (c)
			c->fd = -1;
		return;
	}
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	for (unsigned i = 0; info && i < SLOTS; i++)
		if (h.conns[i].fd == info->connect_fd)
			*socket_ctx = &h.conns[i];
}

/* --- the loop ------------------------------------------------------------------ */

static int take_spare(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_some(uint64_t now)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(h.lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE) && h.spare >= 0) {
			TRACE(TR_INFO, "metrics: out of descriptors: accepting into the spare");
			close(h.spare);
			h.spare = -1;
			len = sizeof(ss);
			fd = accept4(h.lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		}
		if (fd < 0) {
			int e = errno;
			if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
				/* The listener stays readable: retrying now would spin. */
				TRACE(TR_ERROR, "metrics: accept: %s; pausing accepts for %llu ms",
				      strerror(e), (unsigned long long)(ACCEPT_PAUSE_NS / NSEC_PER_MSEC));
				h.accept_resume = now + ACCEPT_PAUSE_NS;
			}
			return;
		}
		struct ipaddr ip;
		addr_to_ip((struct sockaddr *)&ss, &ip);
		struct hconn *c = admit(&ip, now);
		if (!c) {
			TRACE(TR_INFO, "metrics: refusing a connection: no room");
			close(fd);
			continue;
		}
		*c = (struct hconn){ .fd = fd, .since = now, .ip = ip };
		if (MHD_add_connection(h.d, fd, (struct sockaddr *)&ss, len) != MHD_YES)
			c->fd = -1;	/* libmicrohttpd has closed it */
	}
}

static int poll_timeout(uint64_t now)
{
	MHD_UNSIGNED_LONG_LONG mhd_ms;
	uint64_t ns = expire(now);

	if (h.accept_resume && h.accept_resume <= now)
		h.accept_resume = 0;
	if (h.accept_resume)
		ns = MIN(ns, h.accept_resume - now);
	if (MHD_get_timeout(h.d, &mhd_ms) == MHD_YES)
		ns = MIN(ns, (uint64_t)mhd_ms * NSEC_PER_MSEC);
	if (ns == UINT64_MAX)
		return -1;
	return (int)MIN(ns / NSEC_PER_MSEC + (ns % NSEC_PER_MSEC != 0), 60000);
}

static void *mhttp_main(void *arg)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h.d, MHD_DAEMON_INFO_EPOLL_FD);
	int epfd = info ? info->epoll_fd : -1;

	pthread_setname_np(pthread_self(), "echosrv-metrics");
	/* As the control thread: below the workers when CPU is short. */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), 10))
		TRACE(TR_INFO, "metrics: cannot lower priority: %s", strerror(errno));
	for (;;) {
		if (h.spare < 0)	/* fails while descriptors are still short */
			h.spare = take_spare();
		int timeout = poll_timeout(mono_ns());
		struct pollfd p[3] = {
			{ .fd = h.stop_fd, .events = POLLIN },
			{ .fd = h.accept_resume ? -1 : h.lfd, .events = POLLIN },
			{ .fd = epfd, .events = POLLIN },
		};
		if (poll(p, 3, timeout) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN)
			accept_some(mono_ns());
		MHD_run(h.d);
	}
	return NULL;
}

/* --- start and stop -------------------------------------------------------------- */

static int open_listener(const struct listen_addr *addr, uint16_t *port)
{
	int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, zero = 0, r = 0;
	struct sockaddr_storage bound;
	socklen_t len = sizeof(bound);

	if (fd < 0)
		return ERR();
	/* [::] also takes IPv4 scrapers, as it did with MHD_USE_DUAL_STACK. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (addr->ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero))) ||
	    bind(fd, (const struct sockaddr *)&addr->ss, addr->len) ||
	    listen(fd, MHTTP_CONNS) ||
	    getsockname(fd, (struct sockaddr *)&bound, &len))
		r = ERR();
	if (r) {
		close(fd);
		return r;
	}
	/* The port sits at the same offset in sockaddr_in and sockaddr_in6. */
	*port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
	h.lfd = fd;
	return 0;
}

/* libmicrohttpd's own messages, traced as INFO (a hostile client could
 * otherwise fill the log with them). */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[200];

	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	TRACE(TR_INFO, "metrics: %s", line);
}

int mhttp_start(const struct listen_addr *addr, MHD_AccessHandlerCallback handler,
		uint16_t *port, char *err, size_t errlen)
{
	int r;

	for (unsigned i = 0; i < SLOTS; i++)
		h.conns[i].fd = -1;
	if ((r = open_listener(addr, port))) {
		snprintf(err, errlen, "%s", strerror(-r));
		return r;
	}
	h.d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG,
			       0, NULL, NULL, handler, NULL,
			       /* First: libmicrohttpd warns (on its own logger)
			        * about options given before its logger. */
			       MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			       MHD_OPTION_CONNECTION_LIMIT, (unsigned)SLOTS,
			       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)MHTTP_IDLE_S,
			       MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)POOL_BYTES,
			       MHD_OPTION_NOTIFY_CONNECTION, on_notify, NULL,
			       MHD_OPTION_END);
	h.stop_fd = eventfd(0, EFD_CLOEXEC);
	h.spare = take_spare();
	if (!h.d || h.stop_fd < 0 || h.spare < 0) {
		snprintf(err, errlen, "%s", h.d ? strerror(errno) : "libmicrohttpd did not start");
		r = -ENOMEM;
		goto fail;
	}
	if ((r = -pthread_create(&h.thread, NULL, mhttp_main, NULL))) {
		snprintf(err, errlen, "cannot start its thread: %s", strerror(-r));
		goto fail;
	}
	h.running = true;
	return 0;
fail:
	mhttp_stop();
	return r;
}

const char *mhttp_lib_version(void)
{
	return MHD_get_version();
}

void mhttp_stop(void)
{
	uint64_t one = 1;

	if (h.running && write(h.stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(h.thread, NULL);
	h.running = false;
	if (h.d)
		MHD_stop_daemon(h.d);	/* closes the connections it holds */
	if (h.lfd >= 0)
		close(h.lfd);
	if (h.stop_fd >= 0)
		close(h.stop_fd);
	if (h.spare >= 0)
		close(h.spare);
	h.d = NULL;
	h.lfd = h.stop_fd = h.spare = -1;
}

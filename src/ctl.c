/* The control socket server; see ctl.h for the protocol and the design.
 *
 * One thread, one poll loop, at most CTL_CLIENTS clients at a time, each
 * with a bounded request buffer and a deadline: a client that sends too
 * much, sends binary, or sends nothing gets an error line or is closed, and
 * the others are served meanwhile.  Replies are sent without blocking. */
#include "ctl.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "report.h"
#include "sbuf.h"
#include "server.h"
#include "trace.h"
#include "util.h"

#define CTL_CLIENTS 16
#define CTL_READ_NS (2 * NSEC_PER_SEC)		/* to send the request line */
#define CTL_TOTAL_NS (10 * NSEC_PER_SEC)	/* to take the whole reply */
#define CTL_REPLY_MAX (64u << 20)
/* `conns` costs every worker a walk of its table; answers given within
 * this long of the last walk reuse it, so a flood of `conns` requests costs
 * the workers at most ten walks a second. */
#define CTL_CONNS_REUSE_NS (100 * NSEC_PER_MSEC)

struct client {
	int fd;			/* -1: slot free */
	size_t len;		/* request bytes so far */
	char req[CTL_REQ_MAX + 1];
	char *reply;		/* NULL while reading */
	size_t reply_len, sent;
	uint64_t read_by, done_by;	/* ns deadlines */
	int action;		/* server request to make once answered */
};

static struct {
	struct server *srv;
	int fd, stop_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t thread;
	bool running;
	char *conns;		/* last `conns` body, and when it was taken */
	uint64_t conns_at;
	struct client clients[CTL_CLIENTS];
} ctl = { .fd = -1, .stop_fd = -1 };

/* --- binding ---------------------------------------------------------------- */

/* Is a server answering on the socket at addr?  Decides whether an existing
 * socket file is stale (its server died without removing it). */
static bool someone_listens(const struct sockaddr_un *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool yes;

	if (fd < 0)
		return true;	/* cannot tell: do not remove anything */
	yes = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0 || errno != ECONNREFUSED;
	close(fd);
	return yes;
}

static int bind_ctl(int fd, const struct sockaddr_un *addr, char *err, size_t errlen)
{
	struct stat st;

	for (int tries = 0; tries < 2; tries++) {
		/* umask, not chmod after bind: no moment exists in which the
		 * socket is open to others.  Workers have not started yet. */
		mode_t old = umask(0177);
		int r = bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) ? ERR() : 0;
		umask(old);
		if (r != -EADDRINUSE) {
			if (r)
				snprintf(err, errlen, "--ctl %s: %s", addr->sun_path, strerror(-r));
			return r;
		}
		if (lstat(addr->sun_path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "--ctl %s: exists and is not a socket; not replacing it",
				 addr->sun_path);
			return -EEXIST;
		}
		if (someone_listens(addr)) {
			snprintf(err, errlen, "--ctl %s: another server is answering on it",
				 addr->sun_path);
			return -EADDRINUSE;
		}
		log_notice("control socket %s: removing stale socket", addr->sun_path);
		if (unlink(addr->sun_path) && errno != ENOENT) {
			r = ERR();
			snprintf(err, errlen, "--ctl %s: cannot remove stale socket: %s",
				 addr->sun_path, strerror(-r));
			return r;
		}
	}
	snprintf(err, errlen, "--ctl %s: address keeps being taken", addr->sun_path);
	return -EADDRINUSE;
}

/* --- requests --------------------------------------------------------------- */

static char *dup_text(const char *s, size_t *len)
{
	*len = strlen(s);
	return strdup(s);
}

static void conns_json(struct sbuf *out)
{
	uint64_t now = mono_ns();

	if (!ctl.conns || now - ctl.conns_at >= CTL_CONNS_REUSE_NS) {
		struct sbuf fresh = { .max = CTL_REPLY_MAX };
		free(ctl.conns);
		report_conns_json(ctl.srv, &fresh);
		ctl.conns = sbuf_take(&fresh, NULL);
		ctl.conns_at = now;
	}
	if (ctl.conns)
		sbuf_printf(out, "%s", ctl.conns);
	else
		out->failed = true;
}

/* Build the reply for one parsed request ("ok\n" + body, or an error). */
static char *answer(struct client *c, const struct ctl_req *req, size_t *len)
{
	struct sbuf b = { .max = CTL_REPLY_MAX };
	char flags[64];
	int phase = server_phase(ctl.srv);

	sbuf_printf(&b, "ok\n");
	switch (req->cmd) {
	case CTL_STATS:
		report_stats_json(ctl.srv, &b);
		break;
	case CTL_CONNS:
		conns_json(&b);
		break;
	case CTL_TRACE_SET:
		trace_set(req->trace);
		trace_format_flags(req->trace, flags, sizeof(flags));
		log_notice("trace flags set to %s (control socket)", flags);
		/* fall through */
	case CTL_TRACE_GET:
		trace_format_flags(trace_get(), flags, sizeof(flags));
		sbuf_printf(&b, "%s\n", flags);
		break;
	case CTL_DRAIN:
		if (phase != PHASE_RUNNING) {
			sbuf_printf(&b, "already %s\n", phase == PHASE_DRAINING ? "draining" : "stopping");
			break;
		}
		sbuf_printf(&b, "draining for up to %us\n", ctl.srv->cfg.drain_timeout);
		c->action = SERVER_REQ_DRAIN;
		break;
	case CTL_STOP:
		sbuf_printf(&b, "stopping\n");
		c->action = SERVER_REQ_STOP;
		break;
	}
	char *s = sbuf_take(&b, len);
	return s ? s : dup_text("error reply too large or out of memory\n", len);
}

static void set_reply(struct client *c, char *text, size_t len)
{
	c->reply = text;
	c->reply_len = text ? len : 0;
	c->sent = 0;
}

static void error_reply(struct client *c, const char *why)
{
	char line[CTL_REQ_MAX];
	size_t len;

	snprintf(line, sizeof(line), "error %s\n", why);
	char *text = dup_text(line, &len);
	set_reply(c, text, len);
}

/* A whole line (or too much without one) has arrived. */
static void handle_request(struct client *c, size_t line_len)
{
	struct ctl_req req;
	char why[160];
	size_t len;

	if (ctl_parse(c->req, line_len, &req, why, sizeof(why))) {
		TRACE(TR_INFO, "control: bad request: %s", why);
		error_reply(c, why);
		return;
	}
	TRACE(TR_INFO, "control: request %.*s", (int)MIN(line_len, 64), c->req);
	char *text = answer(c, &req, &len);
	set_reply(c, text, len);
}

/* --- the loop --------------------------------------------------------------- */

static void client_close(struct client *c)
{
	if (c->action)
		server_request(ctl.srv, c->action);
	close(c->fd);
	free(c->reply);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void on_accept(void)
{
	int fd = accept4(ctl.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	for (unsigned i = 0; i < CTL_CLIENTS; i++) {
		struct client *c = &ctl.clients[i];
		if (c->fd >= 0)
			continue;
		uint64_t now = mono_ns();
		c->fd = fd;
		c->read_by = now + CTL_READ_NS;
		c->done_by = now + CTL_TOTAL_NS;
		return;
	}
	static const char busy[] = "error too many control clients; try again\n";
	ssize_t r = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)r;
	close(fd);
}

static void on_readable(struct client *c)
{
	ssize_t n = recv(c->fd, c->req + c->len, sizeof(c->req) - c->len, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 0 && c->len > 0) {	/* "stats" then EOF: take it as the line */
		handle_request(c, c->len);
		return;
	}
	if (n <= 0) {	/* gone before sending anything */
		client_close(c);
		return;
	}
	c->len += (size_t)n;
	char *nl = memchr(c->req, '\n', c->len);
	if (nl)
		handle_request(c, (size_t)(nl - c->req));
	else if (c->len == sizeof(c->req))
		error_reply(c, "request too long");
	if (nl || c->len == sizeof(c->req))
		shutdown(c->fd, SHUT_RD);	/* one request per connection */
}

static void on_writable(struct client *c)
{
	if (!c->reply) {
		client_close(c);
		return;
	}
	ssize_t n = send(c->fd, c->reply + c->sent, c->reply_len - c->sent,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0 || (c->sent += (size_t)n) == c->reply_len)
		client_close(c);
}

/* Close clients past their deadline; the poll timeout until the next one. */
static int expire(uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (unsigned i = 0; i < CTL_CLIENTS; i++) {
		struct client *c = &ctl.clients[i];
		if (c->fd < 0)
			continue;
		uint64_t by = c->reply ? c->done_by : MIN(c->read_by, c->done_by);
		if (by <= now) {
			TRACE(TR_INFO, "control: client timed out");
			client_close(c);
			continue;
		}
		next = MIN(next, by);
	}
	if (next == UINT64_MAX)
		return -1;
	return (int)((next - now) / NSEC_PER_MSEC + 1);
}

static void *ctl_main(void *arg)
{
	struct pollfd pfd[CTL_CLIENTS + 2];
	int idx[CTL_CLIENTS + 2];

	pthread_setname_np(pthread_self(), "echosrv-ctl");
	/* Below the workers: a flood of requests should take CPU from the
	 * control thread first.  (Linux nice values are per thread.) */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), 10))
		TRACE(TR_INFO, "control: cannot lower priority: %s", strerror(errno));
	for (;;) {
		int timeout = expire(mono_ns());
		nfds_t n = 0;
		pfd[n++] = (struct pollfd){ .fd = ctl.stop_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = ctl.fd, .events = POLLIN };
		for (int i = 0; i < CTL_CLIENTS; i++) {
			struct client *c = &ctl.clients[i];
			if (c->fd < 0)
				continue;
			idx[n] = i;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = c->reply ? POLLOUT : POLLIN };
		}
		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		if (pfd[1].revents & POLLIN)
			on_accept();
		for (nfds_t k = 2; k < n; k++) {
			struct client *c = &ctl.clients[idx[k]];
			if (!pfd[k].revents || c->fd != pfd[k].fd)
				continue;
			if (c->reply)
				on_writable(c);
			else
				on_readable(c);
		}
	}
	return NULL;
}

/* --- start and stop ----------------------------------------------------------- */

int ctl_start(struct server *srv, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int r;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "--ctl %s: path longer than %zu bytes", path,
			 sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(addr.sun_path, path);
	for (unsigned i = 0; i < CTL_CLIENTS; i++)
		ctl.clients[i].fd = -1;
	ctl.srv = srv;
	ctl.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ctl.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (ctl.fd < 0 || ctl.stop_fd < 0) {
		r = ERR();
		snprintf(err, errlen, "--ctl: %s", strerror(-r));
		goto fail;
	}
	if ((r = bind_ctl(ctl.fd, &addr, err, errlen)))
		goto fail;
	strcpy(ctl.path, path);
	r = listen(ctl.fd, CTL_CLIENTS) ? ERR() : -pthread_create(&ctl.thread, NULL, ctl_main, NULL);
	if (r) {
		snprintf(err, errlen, "--ctl %s: %s", path, strerror(-r));
		unlink(ctl.path);
		goto fail;
	}
	ctl.running = true;
	return 0;
fail:
	if (ctl.fd >= 0)
		close(ctl.fd);
	if (ctl.stop_fd >= 0)
		close(ctl.stop_fd);
	ctl.fd = ctl.stop_fd = -1;
	return r;
}

void ctl_unlink(void)
{
	if (ctl.running)
		unlink(ctl.path);
}

void ctl_stop(void)
{
	uint64_t one = 1;

	if (!ctl.running)
		return;
	if (write(ctl.stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(ctl.thread, NULL);
	ctl.running = false;
	for (unsigned i = 0; i < CTL_CLIENTS; i++) {
		struct client *c = &ctl.clients[i];
		if (c->fd >= 0) {
			c->action = 0;
			client_close(c);
		}
	}
	free(ctl.conns);
	ctl.conns = NULL;
	unlink(ctl.path);
	close(ctl.fd);
	close(ctl.stop_fd);
	ctl.fd = ctl.stop_fd = -1;
}

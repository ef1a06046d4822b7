/* SPDX-License-Identifier: GPL-2.0-only */
/* The control socket server; see ctl.h for the protocol and the design.
 *
 * One thread, one poll loop, at most CTL_CLIENTS clients at a time, each
 * with a bounded request buffer and a deadline: a client that sends too
 * much, sends binary, or sends nothing gets an error line or is closed, and
 * the others are served meanwhile.  Replies are sent without blocking.
 *
 * Every client reads its answer, even a refused one: a Unix socket closed
 * with unread input resets its peer, whose read then fails instead of
 * showing the line, so after the reply the server shuts down its sending
 * side and keeps reading (and discarding) until the client has gone or a
 * short linger ends.  Clients beyond CTL_CLIENTS get the "too many" line
 * from one of CTL_SPARE slots kept for that.  Out of descriptors, accepting
 * pauses for CTL_ACCEPT_PAUSE_NS, as the workers' accepts do, so that a
 * waiting client cannot make the thread spin on EMFILE. */
#include "ops/ctl.h"

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

#include "core/preflight.h"
#include "ops/kill.h"
#include "ops/reload.h"
#include "ops/report.h"
#include "core/sbuf.h"
#include "server/server.h"
#include "core/trace.h"
#include "core/util.h"

#define CTL_CLIENTS 16
#define CTL_SPARE 8				/* slots that only say "too many" */
#define CTL_SLOTS (CTL_CLIENTS + CTL_SPARE)
#define CTL_READ_NS (2 * NSEC_PER_SEC)		/* to send the request line */
#define CTL_TOTAL_NS (10 * NSEC_PER_SEC)	/* to take the whole reply */
#define CTL_LINGER_NS (1 * NSEC_PER_SEC)	/* for the client to read and close */
#define CTL_ACCEPT_PAUSE_NS (100 * NSEC_PER_MSEC)
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
	bool spare;		/* holds a spare slot: refused with "too many" */
	bool lingering;		/* answered; waiting for the client to close */
	bool rd_eof;		/* the client has shut down its sending side */
};

static struct {
	struct server *srv;
	int fd, stop_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t thread;
	bool running;
	char *conns;		/* last `conns` body, and when it was taken */
	uint64_t conns_at;
	uint64_t accept_resume;	/* ns; 0 = accepting */
	struct client clients[CTL_SLOTS];
} ctl = { .fd = -1, .stop_fd = -1 };

/* --- binding ---------------------------------------------------------------- */

enum probe { PROBE_STALE, PROBE_ANSWERS, PROBE_FULL, PROBE_UNKNOWN };

/* Is a server listening on the socket at addr?  Decides whether an existing
 * socket file is stale (its server died without removing it).  The connect
 * is non-blocking: on a Unix socket a blocking one waits, with every signal
 * still blocked at start-up, for as long as a listener that never accepts
 * keeps its backlog full; non-blocking, that listener is EAGAIN at once. */
static enum probe probe_listener(const struct sockaddr_un *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	enum probe p;

	if (fd < 0)
		return PROBE_UNKNOWN;	/* cannot tell: do not remove anything */
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0)
		p = PROBE_ANSWERS;
	else if (errno == ECONNREFUSED)
		p = PROBE_STALE;
	else if (errno == EAGAIN)
		p = PROBE_FULL;
	else
		p = PROBE_UNKNOWN;
	close(fd);
	return p;
}

static int bind_ctl(int fd, const struct sockaddr_un *addr, char *err, size_t errlen)
{
	struct stat st;

	for (int tries = 0; tries < 2; tries++) {
		/* umask, not chmod after bind: no moment exists in which the
		 * socket is open to others.  Workers have not started yet. */
		mode_t old = umask(0777 & ~(ctl.srv->cfg.ctl_mode ? ctl.srv->cfg.ctl_mode : 0600));
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
		enum probe p = probe_listener(addr);
		if (p != PROBE_STALE) {
			snprintf(err, errlen, "--ctl %s: %s", addr->sun_path,
				 p == PROBE_ANSWERS ? "another server is answering on it" :
				 p == PROBE_FULL ? "in use: a process listens on it but accepts "
						   "nothing (its backlog is full)" :
				 "cannot tell whether another server uses it; not replacing it");
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

static char *kill_answer(const struct ctl_req *req, size_t *len)
{
	char line[CTL_REQ_MAX], why[160];
	unsigned by;

	if (kill_conn(ctl.srv, req->conn, req->worker, &by, why, sizeof(why)))
		snprintf(line, sizeof(line), "error %s\n", why);
	else {
		snprintf(line, sizeof(line), "ok\nclosed connection %llx on worker %u\n",
			 (unsigned long long)req->conn, by);
		log_notice("connection %llx on worker %u closed (control socket: kill)",
			   (unsigned long long)req->conn, by);
	}
	ctl.conns_at = 0;	/* the next `conns` walks again: it is gone */
	return dup_text(line, len);
}

/* Build the reply for one parsed request ("ok\n" + body, or an error). */
static char *answer(struct client *c, const struct ctl_req *req, size_t *len)
{
	struct sbuf b = { .max = CTL_REPLY_MAX };
	char flags[64];
	int phase = server_phase(ctl.srv);

	if (req->cmd == CTL_KILL)
		return kill_answer(req, len);
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
		sbuf_printf(&b, "draining for up to %us\n", reload_drain_timeout(ctl.srv));
		c->action = SERVER_REQ_DRAIN;
		break;
	case CTL_STOP:
		sbuf_printf(&b, "stopping\n");
		c->action = SERVER_REQ_STOP;
		break;
	case CTL_KILL:
		break;	/* kill_answer() */
	case CTL_SHOW_CONFIG:
		reload_show(ctl.srv, &b);
		break;
	case CTL_RELOAD:
		sbuf_printf(&b, "reloaded\n");	/* handle_request() ran it */
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

/* Reload in this thread: the reply is its outcome, and the other clients
 * wait at most the reload's bounded wait for the workers.  True when the
 * reply (an error) is set. */
static bool reload_now(struct client *c)
{
	char why[CTL_REQ_MAX - 16];

	if (!ctl.srv->cfg.config_file) {
		error_reply(c, "echosrv was started without --config: nothing to reload");
		return true;
	}
	if (!reload_run(ctl.srv, why, sizeof(why)))
		return false;
	error_reply(c, why);
	return true;
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
	if (req.cmd == CTL_RELOAD && reload_now(c))
		return;
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

static struct client *free_slot(bool spare)
{
	unsigned serving = 0;
	struct client *slot = NULL;

	for (unsigned i = 0; i < CTL_SLOTS; i++) {
		struct client *c = &ctl.clients[i];
		if (c->fd >= 0)
			serving += !c->spare;
		else if (!slot)
			slot = c;
	}
	return spare || serving < CTL_CLIENTS ? slot : NULL;
}

/* Out of descriptors: stop accepting for a while (the listener stays
 * readable, so retrying at once would spin), then try again by itself. */
static void accept_failed(int err, uint64_t now)
{
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
		return;
	TRACE(TR_ERROR, "control: accept: %s; pausing accepts for %llu ms", strerror(err),
	      (unsigned long long)(CTL_ACCEPT_PAUSE_NS / NSEC_PER_MSEC));
	ctl.accept_resume = now + CTL_ACCEPT_PAUSE_NS;
}

static void on_accept(uint64_t now)
{
	static const char busy[] = "error too many control clients; try again\n";
	int fd = accept4(ctl.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		accept_failed(errno, now);
		return;
	}
	struct client *c = free_slot(false);
	if (c) {
		c->fd = fd;
		c->read_by = now + CTL_READ_NS;
		c->done_by = now + CTL_TOTAL_NS;
		return;
	}
	c = free_slot(true);
	if (!c) {	/* the spare slots are taken too: nothing left to say it with */
		close(fd);
		return;
	}
	size_t len;
	char *text = dup_text(busy, &len);
	c->fd = fd;
	c->spare = true;
	c->done_by = now + CTL_LINGER_NS;
	set_reply(c, text, len);
}

/* Input after the request line (or after too much of it) is read and
 * dropped, so that the client's send completes and no reset follows. */
static void discard_input(struct client *c)
{
	char junk[4096];
	ssize_t n = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		return;
	c->rd_eof = true;
	if (c->lingering || n < 0)	/* the client has read its answer, or is gone */
		client_close(c);
}

static void on_readable(struct client *c)
{
	if (c->reply) {
		discard_input(c);
		return;
	}
	ssize_t n = recv(c->fd, c->req + c->len, sizeof(c->req) - c->len, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 0 && c->len > 0) {	/* "stats" then EOF: take it as the line */
		c->rd_eof = true;
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
}

/* The whole reply is out: say so with a FIN and wait for the client. */
static void start_linger(struct client *c)
{
	if (c->action)
		server_request(ctl.srv, c->action);
	c->action = 0;
	shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	c->done_by = MIN(c->done_by, mono_ns() + CTL_LINGER_NS);
	if (c->rd_eof)
		client_close(c);
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
	if (n < 0)
		client_close(c);
	else if ((c->sent += (size_t)n) == c->reply_len)
		start_linger(c);
}

/* Close clients past their deadline; the poll timeout until the next one
 * (or until accepting resumes). */
static int expire(uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (unsigned i = 0; i < CTL_SLOTS; i++) {
		struct client *c = &ctl.clients[i];
		if (c->fd < 0)
			continue;
		uint64_t by = c->reply ? c->done_by : MIN(c->read_by, c->done_by);
		if (by <= now) {
			if (!c->lingering)
				TRACE(TR_INFO, "control: client timed out");
			client_close(c);
			continue;
		}
		next = MIN(next, by);
	}
	if (ctl.accept_resume && ctl.accept_resume <= now)
		ctl.accept_resume = 0;
	if (ctl.accept_resume)
		next = MIN(next, ctl.accept_resume);
	if (next == UINT64_MAX)
		return -1;
	return (int)((next - now) / NSEC_PER_MSEC + 1);
}

static short client_events(const struct client *c)
{
	short ev = c->rd_eof ? 0 : POLLIN;

	if (c->reply && !c->lingering)
		ev |= POLLOUT;
	return ev;
}

static void *ctl_main(void *arg)
{
	struct pollfd pfd[CTL_SLOTS + 2];
	int idx[CTL_SLOTS + 2];

	pthread_setname_np(pthread_self(), "echosrv-ctl");
	/* Below the workers: a flood of requests should take CPU from the
	 * control thread first.  (Linux nice values are per thread.) */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), 10))
		TRACE(TR_INFO, "control: cannot lower priority: %s", strerror(errno));
	for (;;) {
		int timeout = expire(mono_ns());
		nfds_t n = 0;
		pfd[n++] = (struct pollfd){ .fd = ctl.stop_fd, .events = POLLIN };
		/* While paused the listener is left out (fd -1 is ignored). */
		pfd[n++] = (struct pollfd){ .fd = ctl.accept_resume ? -1 : ctl.fd, .events = POLLIN };
		for (int i = 0; i < CTL_SLOTS; i++) {
			struct client *c = &ctl.clients[i];
			if (c->fd < 0)
				continue;
			idx[n] = i;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = client_events(c) };
		}
		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		if (pfd[1].revents & POLLIN)
			on_accept(mono_ns());
		for (nfds_t k = 2; k < n; k++) {
			struct client *c = &ctl.clients[idx[k]];
			short rev = pfd[k].revents;
			if (!rev || c->fd != pfd[k].fd)
				continue;
			if ((rev & (POLLIN | POLLHUP | POLLERR)) && !c->rd_eof)
				on_readable(c);
			else if ((rev & (POLLHUP | POLLERR)) && c->lingering)
				client_close(c);
			if (c->fd == pfd[k].fd && c->reply && !c->lingering &&
			    (rev & (POLLOUT | POLLHUP | POLLERR)))
				on_writable(c);
		}
	}
	return NULL;
}

/* --- start and stop ----------------------------------------------------------- */

/* --ctl-group: the socket's group, for a monitoring group to reach it
 * with --ctl-mode 0660.  The socket exists for a moment with our own
 * group first, which is no wider than what was asked. */
static int set_group(char *err, size_t errlen)
{
	const char *name = ctl.srv->cfg.ctl_group;
	gid_t gid;

	if (!name)
		return 0;
	if (ctl_group_id(name, &gid)) {
		snprintf(err, errlen, "--ctl-group %s: no such group", name);
		return -ENOENT;
	}
	if (lchown(ctl.path, (uid_t)-1, gid)) {
		int r = ERR();
		snprintf(err, errlen, "--ctl-group %s: cannot give %s to it: %s%s", name, ctl.path,
			 strerror(-r), r == -EPERM ? " (echosrv must be a member of the group)" : "");
		return r;
	}
	return 0;
}

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
	for (unsigned i = 0; i < CTL_SLOTS; i++)
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
	if ((r = set_group(err, errlen)))
		goto fail_unlink;
	r = listen(ctl.fd, CTL_CLIENTS) ? ERR() : -pthread_create(&ctl.thread, NULL, ctl_main, NULL);
	if (r) {
		snprintf(err, errlen, "--ctl %s: %s", path, strerror(-r));
		goto fail_unlink;
	}
	ctl.running = true;
	return 0;
fail_unlink:
	unlink(ctl.path);
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
	for (unsigned i = 0; i < CTL_SLOTS; i++) {
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

/* SPDX-License-Identifier: GPL-2.0-only */
/* The control socket: a Unix stream socket (--ctl PATH, mode 0600) on which
 * echosrvctl asks for statistics, the open connections, the trace flags, a
 * drain or a stop.
 *
 * Protocol (also in echosrvctl(8)): the client sends one request line of at
 * most CTL_REQ_MAX bytes ending in "\n"; the server answers "ok\n" followed
 * by the body, or one line "error MESSAGE\n", and closes.  One request per
 * connection keeps the server free of sessions and the client trivial.
 *
 * Everything runs in one thread of its own with a poll loop, so slow or
 * hostile clients delay only each other (each has a deadline and a bounded
 * buffer) and never an echo worker: the thread reads atomics, and for the
 * connection list it leaves a request in each worker's mailbox. */
#ifndef ECHOSRV_CTL_H
#define ECHOSRV_CTL_H

#include <stddef.h>
#include <stdint.h>

#define CTL_REQ_MAX 256

enum ctl_cmd {
	CTL_STATS,
	CTL_TRACE_GET,
	CTL_TRACE_SET,
	CTL_CONNS,
	CTL_DRAIN,
	CTL_STOP,
	CTL_RELOAD,		/* read the --config file again (ops/reload.h) */
	CTL_SHOW_CONFIG,	/* the configuration in force, as a file */
	CTL_KILL,		/* the last: fuzz/fuzz_ctl.c checks against it */
};

struct ctl_req {
	enum ctl_cmd cmd;
	uint32_t trace;		/* CTL_TRACE_SET */
	uint64_t conn;		/* CTL_KILL: the connection id (hex in `conns`) */
	uint32_t worker;	/* CTL_KILL: its worker, or UINT32_MAX for any */
};

/* Parse one request line: buf[0, len) without the "\n" (a trailing "\r" is
 * allowed).  Pure: no allocation, no global state, any bytes accepted as
 * input.  0, or -EINVAL with a one-line reason in err. */
int ctl_parse(const char *buf, size_t len, struct ctl_req *out, char *err, size_t errlen);

struct server;

/* Bind path (replacing a stale socket left by a dead server, never any
 * other file) and start the control thread.  0, or -errno with a message. */
int ctl_start(struct server *srv, const char *path, char *err, size_t errlen);
/* Stop the thread, close and unlink the socket.  Safe if never started. */
void ctl_stop(void);
/* Only unlink the socket, for an exit that cannot wait for the thread (a
 * second signal): a socket file left behind looks like a server. */
void ctl_unlink(void);

#endif

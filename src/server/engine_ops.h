/* SPDX-License-Identifier: GPL-2.0-only */
/* The engine interface, as the server drives it: one struct of operations
 * per backend, at the level of connections (accept, echo, close, run), not
 * readiness masks, so that a readiness loop (epoll) and a completion loop
 * (io_uring) both fit.
 *
 * An engine owns the event loop of one worker and the I/O on its sockets.
 * Everything that is policy -- limits, ACLs, timers, draining, statistics,
 * tracing -- lives in worker.c and is reached through the worker_*() calls,
 * so every engine behaves the same.
 *
 * It is declared here, in the server's layer, and implemented a layer
 * above (src/engine/): the worker calls an engine only through this
 * struct, so the server needs nothing from the engines' folder, and the
 * arrows run one way (engine -> server).  The engines themselves and the
 * choice between them are in engine/engine.h. */
#ifndef ECHOSRV_ENGINE_OPS_H
#define ECHOSRV_ENGINE_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/conn.h"

struct worker;

struct engine_ops {
	const char *name;
	/* Can this engine run here?  0, or -errno with the reason in why.
	 * Called once in the main thread before any worker starts. */
	int (*probe)(const struct config *cfg, char *why, size_t len);
	/* Set up the worker's loop (in the worker's thread).  0 or -errno. */
	int (*init)(struct worker *w);
	/* Run until worker_done(); 0 or -errno on a fatal loop error. */
	int (*run)(struct worker *w);
	/* Serve c, just admitted on its plain descriptor c->fd (accepted by
	 * this worker or handed to it by another, worker_accepted()). */
	void (*adopt)(struct worker *w, struct conn *c);
	/* Optional: adopt c, whose first n bytes were read by the worker
	 * (with a PROXY header; at most a few KiB) and are to be echoed
	 * before anything the socket still holds.  The engine copies them.
	 * Without it the worker sends them itself, then calls adopt. */
	void (*adopt_with)(struct worker *w, struct conn *c, const uint8_t *data, uint32_t n);
	/* Begin closing c (worker_closing() first); the engine calls
	 * worker_closed() once nothing can refer to the slot any more. */
	void (*close)(struct worker *w, struct conn *c, enum close_reason why);
	/* Pause or resume accepting (descriptor exhaustion). */
	void (*set_accepting)(struct worker *w, bool on);
	/* A reload changed this worker's UDP sockets (worker_live.c): serve
	 * fd in slot of its row (udp_listener.h), or with fd -1 stop serving
	 * slot and close its socket.  0, or -errno with fd closed.  The
	 * engine watches the worker's UDP set from then on, also when this
	 * is the worker's first UDP socket. */
	int (*udp_socket)(struct worker *w, unsigned slot, int fd);
	/* Draining: stop accepting for good; the worker then closes its
	 * listening sockets. */
	void (*stop_accepting)(struct worker *w);
	/* Release the worker's loop; called after a failed init too, so it
	 * takes whatever part init set up (w->eng may be NULL). */
	void (*fini)(struct worker *w);
	/* Optional, for an engine whose byte counters lag behind the data
	 * (sockmap reads them from TCP_INFO): bring c->bytes_in/out and the
	 * statistics up to date now.  Called in the worker's thread before it
	 * answers a report (report_refresh(), the connection listing). */
	void (*sync)(struct worker *w);
	/* Optional, for an engine that keeps its own idle deadlines instead
	 * of the worker's idle list (sockmap never sees a receive): a reload
	 * set the idle timeout to ns (0: off).  Without it, w->idle_ns. */
	void (*set_idle)(struct worker *w, uint64_t ns);
};

#endif

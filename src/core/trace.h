/* SPDX-License-Identifier: GPL-2.0-only */
/* Tracing: the WSK sample's WPP flags (ERROR 0x1, INFO 0x2) plus CONN 0x4 and
 * DATA 0x8, switchable at any time, and the USDT probes.
 *
 * The mask is one atomic word read with relaxed ordering: a category that is
 * off costs one load and one predictable branch, and the arguments are not
 * even evaluated.  A change made by another thread is seen by every worker on
 * its next check, with no lock anywhere.  Lines are formatted into a stack
 * buffer by the thread that logs and handed whole to the log queue (logq.h):
 * one writer thread writes them, so lines never interleave and no worker
 * ever waits on a slow or blocked sink (a full queue drops and counts). */
#ifndef ECHOSRV_TRACE_H
#define ECHOSRV_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#define SDT_USE_VARIADIC 1
#include <sys/sdt.h>

#include "core/util.h"

enum trace_cat {
	TR_ERROR = 0x1,
	TR_INFO  = 0x2,
	TR_CONN  = 0x4,
	TR_DATA  = 0x8,
	TR_ALL   = 0xF,
};

extern _Atomic uint32_t trace_mask;

static inline bool trace_on(uint32_t cat)
{
	return unlikely(atomic_load_explicit(&trace_mask, memory_order_relaxed) & cat);
}

#define TRACE(cat, ...)                                                        \
	do {                                                                   \
		if (trace_on(cat))                                             \
			trace_emit((cat), __VA_ARGS__);                        \
	} while (0)

/* USDT probes: a nop in the instruction stream until a tracer attaches.
 * Provider "echosrv"; names and arguments are listed in man/echosrv.8. */
#define PROBE(name, ...) STAP_PROBEV(echosrv, name, __VA_ARGS__)

void trace_emit(uint32_t cat, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A line of category cat written with another syslog priority and tag than
 * the category's own: rejections are traced under ERROR (0x1, the sample's
 * flag) but are expected events, so they go to the journal as warning (4,
 * a limit reached) or notice (5, an ACL doing its job), not as errors. */
#define TRACE_AS(cat, prio, tag, ...)                                          \
	do {                                                                   \
		if (trace_on(cat))                                             \
			trace_emit_as((prio), (tag), __VA_ARGS__);             \
	} while (0)

void trace_emit_as(int prio, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Lifecycle lines an operator always needs (listening address, engine,
 * fallbacks, stop): printed whatever the mask. */
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Why echosrv cannot start (or --check refuses): one line "echosrv: ..."
 * straight to stderr, whatever --trace-file says, with the <3> priority
 * when stderr is the journal, so `journalctl -p err` shows it. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse "0x3", "3" or "error,info" (also "all", "none").  Returns 0, or
 * -EINVAL with a reason in err. */
int trace_parse_flags(const char *s, uint32_t *out, char *err, size_t errlen);

/* Format mask as "0x3 (error,info)". */
void trace_format_flags(uint32_t mask, char *buf, size_t len);

/* Direct output to path (NULL: stderr).  Returns 0 or -errno. */
int trace_open(const char *path);
/* SIGHUP: reopen the trace file (a no-op on stderr).  The writer thread
 * does it and logs the outcome; 0 or -errno. */
int trace_reopen(void);
/* A reload named another trace file: open it (as trace_open() does, no
 * links, no foreign files) and write there from now on.  -EOPNOTSUPP when
 * echosrv started without a trace file or path is NULL (the log then goes
 * to stderr, and that needs a restart); -errno if it cannot be opened. */
int trace_switch(const char *path);
/* The trace file's path, NULL for stderr. */
const char *trace_path(void);

/* Hand output to the writer thread (until then lines are written by the
 * thread that logs them).  Also flushes at exit().  0 or -errno. */
int trace_start(void);

/* How long exit, or a flush, waits for the sink to take queued lines. */
#define TRACE_FLUSH_MS 1000

/* Wait (bounded) until what was logged so far is written.  0 or -ETIMEDOUT. */
int trace_flush(void);

/* Write what is queued (bounded wait) and stop the writer: before _exit. */
void trace_finish(void);

struct trace_queue_stats {
	uint64_t dropped;	/* lines dropped since start */
	uint64_t lines;		/* lines queued now */
	uint64_t bytes;		/* their bytes */
	uint64_t capacity;	/* bytes the queue holds at most */
};

void trace_queue_stats(struct trace_queue_stats *st);

static inline void trace_set(uint32_t mask)
{
	atomic_store_explicit(&trace_mask, mask, memory_order_relaxed);
}

static inline uint32_t trace_get(void)
{
	return atomic_load_explicit(&trace_mask, memory_order_relaxed);
}

#endif

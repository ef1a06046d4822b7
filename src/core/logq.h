/* SPDX-License-Identifier: GPL-2.0-only */
/* The log queue: trace lines go from any thread into a bounded byte ring,
 * and one writer thread alone writes them to the sink (stderr or the trace
 * file).  A thread that logs never waits on the sink: it takes a mutex for
 * one memcpy, and when the ring is full the line is dropped and counted.
 * The writer reports each run of drops with one line at the place where the
 * first line went missing, once the sink takes lines again.
 *
 * The writer writes whole lines, at most PIPE_BUF bytes per write(2), so a
 * line never interleaves with another process's writes to the same pipe.
 * It waits for the sink with poll() and a timeout, so it notices a stop even
 * when the sink never drains.
 *
 * This file knows nothing about line formats: core/trace.c formats the lines,
 * including the drop report, and gives the writer its reopen. */
#ifndef ECHOSRV_LOGQ_H
#define ECHOSRV_LOGQ_H

#include <stddef.h>
#include <stdint.h>

#define LOGQ_BYTES (256u << 10)	/* ring size: about 1,500 CONN lines */
#define LOGQ_CHUNK 4096u	/* most bytes per write: PIPE_BUF, atomic on a pipe */

struct logq_ops {
	int fd;
	/* Called on the writer thread, between writes, after logq_reopen(). */
	void (*reopen)(void);
	/* Format the report of n dropped lines into buf (newline included);
	 * returns its length.  Called on the writer thread. */
	size_t (*dropped)(char *buf, size_t len, uint64_t n);
};

struct logq_stats {
	uint64_t dropped;	/* lines dropped since start */
	uint64_t lines;		/* lines waiting now */
	uint64_t bytes;		/* their bytes */
	uint64_t capacity;	/* LOGQ_BYTES */
};

/* Start the writer thread.  Returns 0 or -errno. */
int logq_start(const struct logq_ops *ops);

/* Queue one line (len <= LOGQ_CHUNK, ending in '\n').  Returns 0 when the
 * line was queued or dropped; when no writer runs the caller writes the line
 * itself: -ENOTCONN before logq_start (start-up, --check), where it may wait
 * on the sink, and -ESHUTDOWN after logq_stop, where it must not. */
int logq_put(const char *line, size_t len);

/* Ask the writer to call ops->reopen.  -ENOTCONN when no writer runs. */
int logq_reopen(void);

/* Wait up to ms for every queued line to be written.  0, or -ETIMEDOUT. */
int logq_flush(unsigned ms);

/* Write what is queued for up to ms, then stop the writer.  Lines logged
 * after this are written only when the sink takes them at once. */
void logq_stop(unsigned ms);

/* From any thread, without taking the queue's lock (a scrape must not
 * wait on a worker putting a line): each field is current, not all at one
 * instant. */
void logq_get_stats(struct logq_stats *st);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* Files echosrv creates by path: the port file and the trace file.
 *
 * echosrv often runs as root, and these paths may sit in a directory that
 * someone else can write (/tmp).  So a file is never opened through a
 * symbolic link, never taken over from another owner, and the port file is
 * written under a random name with O_EXCL and renamed into place: whoever
 * planted something at the path gets a refusal, not a truncated target.
 * The directory that holds the file is checked too: one that another
 * non-root user owns, or that everyone may write without the sticky bit,
 * lets others swap entries at will, so it is refused.  A refusal says why
 * in safefile_refusal(), for the caller to log: this file logs nothing, so
 * that the log itself (core/trace.c) can open its file through it. */
#ifndef ECHOSRV_SAFEFILE_H
#define ECHOSRV_SAFEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* What was created, so that removal touches only our own file. */
struct safefile {
	bool made;
	dev_t dev;
	ino_t ino;
};

/* Replace path atomically with len bytes of data (mode 0644).  0 or
 * -errno: -ELOOP for a symbolic link at path, -EPERM for a file of another
 * owner or an unsafe directory, -EISDIR or -EEXIST for anything at path but
 * a regular file (a device node, a FIFO, a socket is never replaced). */
int safefile_replace(const char *path, const void *data, size_t len,
		     struct safefile *f);

/* open(2)-like: a descriptor for appending to path (created with mode if
 * missing), or -1 with errno set.  Refuses a symbolic link (ELOOP), a
 * file owned by anyone but this user or root (EPERM), and a FIFO with no
 * reader (ENXIO) rather than wait for one. */
int safefile_open_append(const char *path, mode_t mode);

/* Would safefile_replace() (append false) or safefile_open_append()
 * (append true) refuse path?  The same checks without creating anything,
 * for --check; 0 or their -errno, with the reason in safefile_refusal(). */
int safefile_check(const char *path, bool append);

/* Why the last safefile_replace(), safefile_open_append() or
 * safefile_check() of this thread refused its path (one line, no path in
 * it), or NULL when it was not refused (any other failure comes back as -errno alone). */
const char *safefile_refusal(void);

/* Remove path if it is still the file safefile_replace() made (another
 * instance may have replaced it since).  Async-signal-safe: only syscalls. */
void safefile_remove(const char *path, struct safefile *f);

#endif

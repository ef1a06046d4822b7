/* SPDX-License-Identifier: GPL-2.0-only */
/* Trace line output and flag parsing; see trace.h for the design. */
#include "core/trace.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/logq.h"
#include "core/safefile.h"

_Atomic uint32_t trace_mask = TR_ERROR;

static int out_fd = STDERR_FILENO;
/* The trace file's path, a copy: a reload frees the configuration it came
 * from.  The lock is for a reload changing it while the writer reopens. */
static char path_buf[4096];
static const char *out_path;
static pthread_mutex_t path_lock = PTHREAD_MUTEX_INITIALIZER;
static bool journal;

static const struct {
	const char *name;
	const char *tag;
	uint32_t bit;
	int prio;	/* syslog priority for the journal prefix */
} cats[] = {
	{ "error", "ERROR", TR_ERROR, 3 },
	{ "info", "INFO", TR_INFO, 6 },
	{ "conn", "CONN", TR_CONN, 7 },
	{ "data", "DATA", TR_DATA, 7 },
};

/* systemd sets JOURNAL_STREAM to "dev:ino" of the stream it connected to
 * stderr; only when they match is stderr really the journal. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

static int open_file(const char *path)
{
	int fd = safefile_open_append(path, 0640);	/* no links, no foreign files */

	if (fd < 0 && safefile_refusal()) {
		int e = errno;
		log_notice("refusing %s: %s", path, safefile_refusal());
		errno = e;
	}
	return fd;
}

int trace_open(const char *path)
{
	/* strftime() calls tzset(), which reads the zone file on first use:
	 * do it now, at start-up, rather than with a descriptor opened for a
	 * moment in whichever thread traces first (tests count descriptors). */
	tzset();
	if (!path) {
		out_fd = STDERR_FILENO;
		journal = stderr_is_journal();
		return 0;
	}
	int fd = open_file(path);
	if (fd < 0)
		return ERR();
	out_fd = fd;
	snprintf(path_buf, sizeof(path_buf), "%s", path);
	out_path = path_buf;
	journal = false;
	return 0;
}

int trace_switch(const char *path)
{
	if (!out_path || !path)
		return -EOPNOTSUPP;	/* stderr <-> file: the writer has one descriptor */
	if (strlen(path) >= sizeof(path_buf))
		return -ENAMETOOLONG;
	int fd = open_file(path);
	if (fd < 0)
		return ERR();
	pthread_mutex_lock(&path_lock);
	int r = dup3(fd, out_fd, O_CLOEXEC) < 0 ? ERR() : 0;
	if (!r)
		snprintf(path_buf, sizeof(path_buf), "%s", path);
	pthread_mutex_unlock(&path_lock);
	close(fd);
	return r;
}

const char *trace_path(void)
{
	return out_path;
}

static int reopen_locked(void)
{
	int fd = open_file(out_path);
	if (fd < 0)
		return ERR();
	/* dup3 swaps the file under the same descriptor number atomically, so
	 * the writer keeps one descriptor for its whole life. */
	if (dup3(fd, out_fd, O_CLOEXEC) < 0) {
		int e = ERR();
		close(fd);
		return e;
	}
	close(fd);
	return 0;
}

/* On the writer thread when there is one: an open that waits (a FIFO with
 * no reader) then stalls only the log, never the main thread. */
static void reopen_and_log(void)
{
	char path[sizeof(path_buf)];

	pthread_mutex_lock(&path_lock);
	int r = reopen_locked();
	snprintf(path, sizeof(path), "%s", out_path);	/* a reload may change it */
	pthread_mutex_unlock(&path_lock);
	if (r)
		TRACE(TR_ERROR, "cannot reopen trace file %s: %s", path, strerror(-r));
	else
		TRACE(TR_INFO, "trace file reopened");
}

int trace_reopen(void)
{
	if (!out_path)
		return 0;
	if (logq_reopen() == -ENOTCONN)
		reopen_and_log();
	return 0;
}

/* One line with timestamp, tag and (for the journal) priority prefix, always
 * ending in a newline; returns its length. */
__attribute__((format(printf, 5, 0)))
static size_t format_line(char *line, size_t len, int prio, const char *tag, const char *fmt,
			  va_list ap)
{
	struct timeval tv;
	struct tm tm;
	int n = 0;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	if (journal)
		n = snprintf(line, len, "<%d>", prio);
	n += (int)strftime(line + n, len - (size_t)n, "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, len - (size_t)n, ".%06ldZ %s ", (long)tv.tv_usec, tag);
	int m = vsnprintf(line + n, len - (size_t)n - 1, fmt, ap);
	n = (m < 0) ? n : MIN(n + m, (int)len - 2);
	line[n++] = '\n';
	return (size_t)n;
}

/* The sink only at exit, after the writer stopped: write if it takes the
 * line now, since a dead sink must not hold up the exit. */
static void write_if_ready(const char *line, size_t n)
{
	struct pollfd pfd = { .fd = out_fd, .events = POLLOUT };

	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT)) {
		ssize_t r = write(out_fd, line, n);
		(void)r;
	}
}

__attribute__((format(printf, 3, 0)))
static void emit(int prio, const char *tag, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n = format_line(line, sizeof(line), prio, tag, fmt, ap);

	/* The line goes whole to the writer, or is dropped and counted there.
	 * Without a writer (start-up, --check) it is written here with one
	 * write and may wait for the sink, as nothing is being served yet; a
	 * failed trace write has nowhere to be reported. */
	int r = logq_put(line, n);
	if (r == -ENOTCONN) {
		ssize_t w = write(out_fd, line, n);
		(void)w;
	} else if (r == -ESHUTDOWN) {
		write_if_ready(line, n);
	}
}

__attribute__((format(printf, 3, 4)))
static size_t format_warning(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	size_t n = format_line(buf, len, 4, "WARNING", fmt, ap);
	va_end(ap);
	return n;
}

static size_t dropped_line(char *buf, size_t len, uint64_t n)
{
	return format_warning(buf, len, "dropped %llu log line%s: the log output did not keep up",
			  (unsigned long long)n, n == 1 ? "" : "s");
}

static void finish_at_exit(void)
{
	trace_finish();
}

int trace_start(void)
{
	const struct logq_ops ops = { .fd = out_fd, .reopen = reopen_and_log,
				      .dropped = dropped_line };
	int r = logq_start(&ops);

	if (!r)
		atexit(finish_at_exit);
	return r;
}

int trace_flush(void)
{
	return logq_flush(TRACE_FLUSH_MS);
}

void trace_finish(void)
{
	logq_stop(TRACE_FLUSH_MS);
}

void trace_queue_stats(struct trace_queue_stats *st)
{
	struct logq_stats ls;

	logq_get_stats(&ls);
	*st = (struct trace_queue_stats){ .dropped = ls.dropped, .lines = ls.lines,
					  .bytes = ls.bytes, .capacity = ls.capacity };
}

void trace_emit(uint32_t cat, const char *fmt, ...)
{
	va_list ap;
	unsigned i = 0;

	while (i < ARRAY_SIZE(cats) - 1 && cats[i].bit != cat)
		i++;
	va_start(ap, fmt);
	emit(cats[i].prio, cats[i].tag, fmt, ap);
	va_end(ap);
}

void trace_emit_as(int prio, const char *tag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(prio, tag, fmt, ap);
	va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n = snprintf(line, sizeof(line), "%s", stderr_is_journal() ? "<3>echosrv: " : "echosrv: ");

	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = m < 0 ? n : MIN(n + m, (int)sizeof(line) - 2);
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

void log_notice(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(5, "NOTICE", fmt, ap);
	va_end(ap);
}

static int parse_name(const char *tok, size_t len, uint32_t *mask, char *err, size_t errlen)
{
	char name[16];

	if (len == 0) {
		snprintf(err, errlen, "empty item in the flag list");
		return -EINVAL;
	}
	if (len < sizeof(name)) {
		memcpy(name, tok, len);
		name[len] = '\0';
		if (!strcasecmp(name, "all")) {
			*mask |= TR_ALL;
			return 0;
		}
		if (!strcasecmp(name, "none"))
			return 0;
		for (unsigned i = 0; i < ARRAY_SIZE(cats); i++) {
			if (!strcasecmp(name, cats[i].name)) {
				*mask |= cats[i].bit;
				return 0;
			}
		}
	}
	snprintf(err, errlen, "unknown trace flag '%.*s' (use error, info, conn, data, all, none "
		 "or a number)", (int)MIN(len, 32), tok);
	return -EINVAL;
}

/* A comma-separated list of names; every item must be one ("," or
 * "error,,info" are mistakes, not "none"). */
static int parse_names(const char *s, uint32_t *out, char *err, size_t errlen)
{
	uint32_t mask = 0;

	for (;;) {
		size_t len = strcspn(s, ",");
		if (parse_name(s, len, &mask, err, errlen))
			return -EINVAL;
		if (!s[len])
			break;
		s += len + 1;
	}
	*out = mask;
	return 0;
}

/* Hex with 0x, else decimal: "010" is ten, as the manual says, not octal. */
int trace_parse_flags(const char *s, uint32_t *out, char *err, size_t errlen)
{
	if (!s || !*s) {
		snprintf(err, errlen, "empty trace flags");
		return -EINVAL;
	}
	if (*s < '0' || *s > '9')
		return parse_names(s, out, err, errlen);

	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	const char *digits = hex ? s + 2 : s;
	char c = (char)(*digits | 0x20), *end;
	errno = 0;
	unsigned long v = strtoul(digits, &end, hex ? 16 : 10);
	/* strtoul would also take blanks and a sign after "0x". */
	if (!((c >= '0' && c <= '9') || (hex && c >= 'a' && c <= 'f')) || errno || *end) {
		snprintf(err, errlen, "'%s' is not a number (hex 0x.. or decimal) or a list of "
			 "flag names", s);
		return -EINVAL;
	}
	if (v & ~(unsigned long)TR_ALL) {
		snprintf(err, errlen, "'%s' sets bits other than 0x1-0x8", s);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

void trace_format_flags(uint32_t mask, char *buf, size_t len)
{
	int n = snprintf(buf, len, "0x%x (", mask);
	const char *sep = "";

	for (unsigned i = 0; i < ARRAY_SIZE(cats) && n > 0 && (size_t)n < len; i++) {
		if (!(mask & cats[i].bit))
			continue;
		n += snprintf(buf + n, len - (size_t)n, "%s%s", sep, cats[i].name);
		sep = ",";
	}
	if (n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "%s)", mask ? "" : "none");
}

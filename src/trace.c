/* Trace line output and flag parsing; see trace.h for the design. */
#include "trace.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "safefile.h"

_Atomic uint32_t trace_mask = TR_ERROR;

static int out_fd = STDERR_FILENO;
static const char *out_path;
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
	return safefile_open_append(path, 0640);	/* no links, no foreign files */
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
	out_path = path;
	journal = false;
	return 0;
}

int trace_reopen(void)
{
	if (!out_path)
		return 0;
	int fd = open_file(out_path);
	if (fd < 0)
		return ERR();
	/* dup3 swaps the file under the same descriptor number atomically, so a
	 * worker writing at this moment writes to the old or the new file. */
	if (dup3(fd, out_fd, O_CLOEXEC) < 0) {
		int e = ERR();
		close(fd);
		return e;
	}
	close(fd);
	return 0;
}

__attribute__((format(printf, 3, 0)))
static void emit(int prio, const char *tag, const char *fmt, va_list ap)
{
	char line[1024];
	struct timeval tv;
	struct tm tm;
	int n = 0;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	if (journal)
		n = snprintf(line, sizeof(line), "<%d>", prio);
	n += (int)strftime(line + n, sizeof(line) - (size_t)n, "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, ".%06ldZ %s ", (long)tv.tv_usec, tag);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	n = (m < 0) ? n : MIN(n + m, (int)sizeof(line) - 2);
	line[n++] = '\n';
	/* One write per line; a failed trace write has nowhere to be reported. */
	ssize_t r = write(out_fd, line, (size_t)n);
	(void)r;
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

/* Hex with 0x, else decimal: "010" is ten, as SPEC 7 says, not octal. */
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

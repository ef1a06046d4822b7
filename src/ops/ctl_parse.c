/* SPDX-License-Identifier: GPL-2.0-only */
/* The control request parser, kept apart from the socket code so that unit
 * tests and a fuzzer can drive it with arbitrary bytes.  It only accepts
 * printable ASCII words separated by blanks; anything else is an error. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ctl.h"
#include "core/trace.h"
#include "core/util.h"

#define MAX_WORDS 3

struct word {
	const char *s;
	size_t len;
};

static bool word_is(const struct word *w, const char *s)
{
	return w->len == strlen(s) && !memcmp(w->s, s, w->len);
}

/* Split into at most MAX_WORDS words; -E2BIG for more, -EINVAL for a byte
 * that is not printable ASCII. */
static int split(const char *buf, size_t len, struct word *w, unsigned *n)
{
	*n = 0;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)buf[i];
		if (c == ' ' || c == '\t') {
			i++;
			continue;
		}
		if (c < 0x21 || c > 0x7e)
			return -EINVAL;
		if (*n == MAX_WORDS)
			return -E2BIG;
		size_t start = i;
		while (i < len && buf[i] != ' ' && buf[i] != '\t') {
			c = (unsigned char)buf[i];
			if (c < 0x21 || c > 0x7e)
				return -EINVAL;
			i++;
		}
		w[(*n)++] = (struct word){ buf + start, i - start };
	}
	return 0;
}

static int fail(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

/* A number of at most 16 hex digits (base 16) or a decimal worker index. */
static int parse_num(const struct word *w, int base, uint64_t max, uint64_t *v)
{
	char text[24], *end;

	if (w->len == 0 || w->len >= sizeof(text))
		return -EINVAL;
	memcpy(text, w->s, w->len);
	text[w->len] = '\0';
	for (size_t i = 0; i < w->len; i++)
		if (!(base == 16 ? isxdigit((unsigned char)text[i]) : isdigit((unsigned char)text[i])))
			return -EINVAL;
	errno = 0;
	unsigned long long x = strtoull(text, &end, base);
	if (errno || *end || x > max)
		return -EINVAL;
	*v = x;
	return 0;
}

/* kill ID [WORKER]: ID as `conns` shows it (hex), WORKER its worker. */
static int parse_kill(const struct word *w, unsigned n, struct ctl_req *out, char *err,
		      size_t errlen)
{
	uint64_t v;

	if (n < 2 || n > 3)
		return fail(err, errlen, "kill takes a connection id and optionally its worker");
	if (parse_num(&w[1], 16, UINT64_MAX, &out->conn))
		return fail(err, errlen, "the connection id is the hex id that conns shows");
	out->worker = UINT32_MAX;
	if (n == 3) {
		if (parse_num(&w[2], 10, UINT32_MAX - 1, &v))
			return fail(err, errlen, "the worker is a number, as conns shows it");
		out->worker = (uint32_t)v;
	}
	out->cmd = CTL_KILL;
	return 0;
}

int ctl_parse(const char *buf, size_t len, struct ctl_req *out, char *err, size_t errlen)
{
	struct word w[MAX_WORDS];
	unsigned n;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > CTL_REQ_MAX)
		return fail(err, errlen, "request too long");
	if (len && buf[len - 1] == '\r')
		len--;
	if ((r = split(buf, len, w, &n)))
		return fail(err, errlen, r == -E2BIG ? "too many words" : "request is not printable text");
	if (n == 0)
		return fail(err, errlen, "empty request");

	static const struct { const char *name; enum ctl_cmd cmd; } simple[] = {
		{ "stats", CTL_STATS }, { "conns", CTL_CONNS },
		{ "drain", CTL_DRAIN }, { "stop", CTL_STOP }, { "reload", CTL_RELOAD },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(simple); i++) {
		if (!word_is(&w[0], simple[i].name))
			continue;
		if (n != 1)
			return fail(err, errlen, "this command takes no argument");
		out->cmd = simple[i].cmd;
		return 0;
	}
	if (word_is(&w[0], "kill"))
		return parse_kill(w, n, out, err, errlen);
	if (word_is(&w[0], "show")) {
		if (n != 2 || !word_is(&w[1], "config"))
			return fail(err, errlen, "show takes one argument: config");
		out->cmd = CTL_SHOW_CONFIG;
		return 0;
	}
	if (!word_is(&w[0], "trace"))
		return fail(err, errlen, "unknown command (stats, trace [FLAGS], conns, kill ID "
					 "[WORKER], drain, stop, reload, show config)");
	if (n == 1) {
		out->cmd = CTL_TRACE_GET;
		return 0;
	}
	if (n > 2)
		return fail(err, errlen, "trace takes one argument");

	char flags[CTL_REQ_MAX + 1], why[128];
	memcpy(flags, w[1].s, w[1].len);
	flags[w[1].len] = '\0';
	if (trace_parse_flags(flags, &out->trace, why, sizeof(why))) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	out->cmd = CTL_TRACE_SET;
	return 0;
}

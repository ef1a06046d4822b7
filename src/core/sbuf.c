/* SPDX-License-Identifier: GPL-2.0-only */
/* Growable text buffer; see sbuf.h. */
#include "core/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define SBUF_DEFAULT_MAX (1u << 20)

static bool grow(struct sbuf *b, size_t need)
{
	size_t max = b->max ? b->max : SBUF_DEFAULT_MAX;
	size_t cap = b->cap ? b->cap : 1024;

	if (need > max) {
		b->failed = true;
		return false;
	}
	while (cap < need)
		cap *= 2;
	if (cap > max)
		cap = max;
	char *s = realloc(b->s, cap);
	if (!s) {
		b->failed = true;
		return false;
	}
	b->s = s;
	b->cap = cap;
	return true;
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->failed)
		return;
	for (int tries = 0; tries < 2; tries++) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		if (!grow(b, b->len + (size_t)n + 1))
			return;
	}
}

char *sbuf_take(struct sbuf *b, size_t *len)
{
	if (!b->failed && !b->s && grow(b, 1))
		b->s[0] = '\0';
	char *s = b->failed ? NULL : b->s;

	if (!s)
		free(b->s);
	if (len)
		*len = b->len;
	b->s = NULL;
	b->len = b->cap = 0;
	b->failed = false;
	return s;
}

void sbuf_free(struct sbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}

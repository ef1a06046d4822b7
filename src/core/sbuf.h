/* SPDX-License-Identifier: GPL-2.0-only */
/* A growable text buffer for replies built off the data path (control
 * replies, metrics pages).  Once an append fails the buffer stays failed and
 * further appends do nothing, so a reply is built with plain calls and
 * checked once at the end. */
#ifndef ECHOSRV_SBUF_H
#define ECHOSRV_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
	char *s;
	size_t len, cap;
	size_t max;	/* refuse to grow past this (0: 1 MiB) */
	bool failed;
};

void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand the text over (caller frees) and reset b.  NULL if an append failed. */
char *sbuf_take(struct sbuf *b, size_t *len);
void sbuf_free(struct sbuf *b);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* What changed between two configurations, in the words of the file
 * (config.h, config_diff()): both are written as files and compared line by
 * line, so every option the table knows is covered without a list here,
 * and a single-valued option reads "max-conns 5000 -> 8000". */
#include "core/config.h"

#include <stdlib.h>
#include <string.h>

#include "core/sbuf.h"

/* The line of text (a configuration file after a "\n") that sets the
 * single-valued option of line, or NULL. */
static const char *same_option(const char *text, const char *line, size_t *len)
{
	size_t n = strcspn(line, " ");
	char key[64];

	if (n >= sizeof(key) - 2)
		return NULL;
	snprintf(key, sizeof(key), "\n%.*s", (int)n, line);
	key[n + 1] = '\0';
	if (config_repeatable(key + 1))
		return NULL;
	for (const char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
		if (p[n + 1] == ' ' || p[n + 1] == '\n') {
			*len = strcspn(p + 1, "\n");
			return p + 1;
		}
	}
	return NULL;
}

/* Does text hold the whole line line[0..n) ("\n" before and after it)?  No
 * copy into a key: a line is as long as a path may be. */
static bool has_line(const char *text, const char *line, size_t n)
{
	for (const char *p = text; (p = strchr(p, '\n')) && p[1]; p++)
		if (!strncmp(p + 1, line, n) && p[1 + n] == '\n')
			return true;
	return false;
}

static void diff(const char *a, const char *b, struct sbuf *msg)
{
	for (int pass = 0; pass < 2; pass++) {
		const char *from = pass ? b : a, *to = pass ? a : b;
		for (const char *line = to + 1; *line; line += strcspn(line, "\n") + 1) {
			size_t n = strcspn(line, "\n"), olen = 0;
			if (has_line(from, line, n))
				continue;	/* unchanged */
			const char *old = same_option(from, line, &olen);
			if (old && pass)
				continue;	/* said in the first pass */
			if (msg->len)
				sbuf_printf(msg, "; ");
			size_t sp = strcspn(line, " ");	/* the value starts after it */
			if (old && sp < n)
				sbuf_printf(msg, "%.*s -> %.*s", (int)olen, old, (int)(n - sp - 1),
					    line + sp + 1);
			else
				sbuf_printf(msg, "%s%.*s", pass ? "no longer " : "", (int)n, line);
			if (!line[n])
				break;
		}
	}
}

static char *write_text(const struct config *cfg)
{
	struct sbuf b = { 0 };

	sbuf_printf(&b, "\n");
	config_write(cfg, &b);
	return sbuf_take(&b, NULL);
}

void config_diff(const struct config *a, const struct config *b, struct sbuf *out)
{
	char *ta = write_text(a), *tb = write_text(b);

	if (ta && tb)
		diff(ta, tb, out);
	else
		out->failed = true;
	free(ta);
	free(tb);
}

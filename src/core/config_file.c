/* SPDX-License-Identifier: GPL-2.0-only */
/* The configuration file: the command line's long options, one per line.
 *
 *     # comment
 *     max-conns 5000
 *     allow 10.0.0.0/8
 *     allow 192.168.0.0/16
 *     busy-poll
 *
 * A line is a name, then (after blanks) the value exactly as it would follow
 * --name on the command line; blank lines and lines starting with '#' are
 * skipped.  Every value goes through the command line's own table and
 * parsers (config_opt_apply()), so the two cannot disagree; what differs is
 * only that a single-valued option may appear once (a second one is almost
 * always a forgotten edit, so it is an error rather than "last wins"), and
 * that the options that act rather than configure (--check, --help,
 * --version, --config itself) are refused.
 *
 * The file is read whole into one buffer that the configuration keeps
 * (cfg->text): string options point into it, so a configuration and its
 * strings live and die together, which is what a reload that swaps whole
 * configurations needs. */
#include "core/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config_opts.h"
#include "core/sbuf.h"
#include "core/trace.h"
#include "core/util.h"

/* Options that mean "do something now", not "be configured so". */
static bool file_allows(const struct opt_def *o)
{
	return strcmp(o->name, "config") && strcmp(o->name, "check") && strcmp(o->name, "help") &&
	       strcmp(o->name, "version");
}

static bool repeatable(const struct opt_def *o)
{
	return o->type == T_LISTEN || o->type == T_ALLOW || o->type == T_DENY ||
	       o->type == T_PROXY_LISTEN || o->type == T_PROXY_FROM || o->type == T_UDP_LISTEN;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One line, NUL-terminated in place: 0, or -EINVAL with the message. */
static int parse_line(struct config *cfg, char *line, unsigned lineno, unsigned *first,
		      const char *name, char *err, size_t errlen)
{
	char why[384];
	char *end = line + strlen(line);

	while (blank(*line))
		line++;
	while (end > line && blank(end[-1]))
		*--end = '\0';
	if (!*line || *line == '#')
		return 0;
	char *value = line;
	while (*value && !blank(*value))
		value++;
	if (*value) {
		*value++ = '\0';
		while (blank(*value))
			value++;
	}
	const struct opt_def *o = config_opt_find(line);
	if (!o) {
		snprintf(err, errlen, "%s:%u: unknown option '%s'", name, lineno, line);
		return -EINVAL;
	}
	if (!file_allows(o)) {
		snprintf(err, errlen, "%s:%u: --%s is for the command line, not a file", name,
			 lineno, o->name);
		return -EINVAL;
	}
	unsigned i = config_opt_index(o);
	if (first[i] && !repeatable(o)) {
		snprintf(err, errlen, "%s:%u: --%s is given twice (first on line %u)", name, lineno,
			 o->name, first[i]);
		return -EINVAL;
	}
	if (o->type == T_FLAG && *value) {
		snprintf(err, errlen, "%s:%u: --%s takes no value", name, lineno, o->name);
		return -EINVAL;
	}
	if (o->type != T_FLAG && !*value) {
		snprintf(err, errlen, "%s:%u: --%s needs a value", name, lineno, o->name);
		return -EINVAL;
	}
	if (config_opt_apply(o, value, cfg, why, sizeof(why))) {
		snprintf(err, errlen, "%s:%u: %s", name, lineno, why);
		return -EINVAL;
	}
	if (!first[i])
		first[i] = lineno;
	return 0;
}

int config_parse_text(struct config *cfg, const char *name, char *text, size_t len, char *err,
		      size_t errlen)
{
	unsigned first[64] = { 0 };	/* line of each row's first use */
	unsigned lineno = 0;

	if (memchr(text, '\0', len)) {
		snprintf(err, errlen, "%s: not a text file (it holds a NUL byte)", name);
		return -EINVAL;
	}
	for (size_t at = 0; at < len;) {
		char *nl = memchr(text + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
		char *line = text + at;

		/* The caller's buffer has room for a NUL after the last byte. */
		line[n] = '\0';
		lineno++;
		if (parse_line(cfg, line, lineno, first, name, err, errlen))
			return -EINVAL;
		at += n + 1;
	}
	return 0;
}

/* The whole file into a new buffer (one byte more for a NUL).  open() with
 * O_NONBLOCK: a FIFO given by mistake must not hang a reload. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int r;

	if (fd < 0) {
		r = ERR();
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st)) {
		r = ERR();
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		snprintf(err, errlen, "%s: %s", path,
			 S_ISDIR(st.st_mode) ? "is a directory, not a file" : "is not a regular file");
		goto out;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		r = -EFBIG;
		snprintf(err, errlen, "%s: too large (%lld bytes; at most %d)", path,
			 (long long)st.st_size, CONFIG_FILE_MAX);
		goto out;
	}
	char *buf = malloc(CONFIG_FILE_MAX + 2);
	size_t n = 0;
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto out;
	}
	/* Read to the end, not st_size: the file may be growing; past the
	 * limit is refused the same way. */
	for (;;) {
		ssize_t got = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = ERR();
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
			free(buf);
			goto out;
		}
		if (got == 0 || (n += (size_t)got) > CONFIG_FILE_MAX)
			break;
	}
	if (n > CONFIG_FILE_MAX) {
		r = -EFBIG;
		snprintf(err, errlen, "%s: too large (more than %d bytes)", path, CONFIG_FILE_MAX);
		free(buf);
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	r = 0;
out:
	close(fd);
	return r;
}

static bool has_listen(const struct config *cfg, const struct listen_addr *l)
{
	for (unsigned i = 0; i < cfg->n_listen; i++)
		if (!memcmp(&cfg->listen[i], l, sizeof(*l)))
			return true;
	return false;
}

/* The command line's --listen (or --proxy-listen) addresses replace the
 * file's of the same kind; the other kind's stay.  In the command line's
 * order (the port file lists them so), the other kind's first if the
 * command line gave those too (copied already), the file's last. */
static void copy_listens(struct config *dst, const struct config *src, bool proxy)
{
	struct listen_addr out[CONFIG_MAX_LISTEN];
	unsigned n = 0;

	for (unsigned i = 0; i < src->n_listen; i++)
		if (src->listen[i].proxy == proxy || has_listen(dst, &src->listen[i]))
			out[n++] = src->listen[i];
	for (unsigned i = 0; i < dst->n_listen && n < CONFIG_MAX_LISTEN; i++)
		if (dst->listen[i].proxy != proxy && !has_listen(src, &dst->listen[i]))
			out[n++] = dst->listen[i];
	memcpy(dst->listen, out, n * sizeof(out[0]));
	dst->n_listen = n;
}

/* Copy option o's value from src to dst (a repeatable option: its whole
 * list, so the command line's --allow rules replace the file's). */
static void copy_opt(struct config *dst, const struct config *src, const struct opt_def *o)
{
	char *d = (char *)dst + o->off;
	const char *s = (const char *)src + o->off;

	switch (o->type) {
	case T_LISTEN: case T_PROXY_LISTEN:
		copy_listens(dst, src, o->type == T_PROXY_LISTEN);
		break;
	case T_PROXY_FROM:
		memcpy(dst->proxy_from, src->proxy_from, sizeof(dst->proxy_from));
		dst->n_proxy_from = src->n_proxy_from;
		break;
	case T_UDP_LISTEN:
		memcpy(dst->udp_listen, src->udp_listen, sizeof(dst->udp_listen));
		dst->n_udp_listen = src->n_udp_listen;
		break;
	case T_ALLOW:
		memcpy(dst->acl.allow, src->acl.allow, sizeof(dst->acl.allow));
		dst->acl.n_allow = src->acl.n_allow;
		break;
	case T_DENY:
		memcpy(dst->acl.deny, src->acl.deny, sizeof(dst->acl.deny));
		dst->acl.n_deny = src->acl.n_deny;
		break;
	case T_FLAG:
		memcpy(d, s, sizeof(bool));
		break;
	case T_STRING:
		*(const char **)(void *)d = *(const char *const *)(const void *)s;
		break;
	case T_ADDR:
		memcpy(d, s, sizeof(struct listen_addr));
		break;
	default:
		memcpy(d, s, sizeof(uint32_t));
		break;
	}
}

int config_load(struct config *out, const struct config *cli, char *err, size_t errlen)
{
	const char *path = cli->config_file;
	char *text = NULL;
	size_t len = 0;
	int r;

	config_defaults(out);
	if (path) {
		if ((r = read_file(path, &text, &len, err, errlen)))
			return r;
		if ((r = config_parse_text(out, path, text, len, err, errlen))) {
			free(text);
			config_defaults(out);
			return r;
		}
	}
	out->text = text;
	for (unsigned i = 0; config_opt(i); i++)
		if (cli->given & (1ull << i))
			copy_opt(out, cli, config_opt(i));
	out->given = cli->given;
	return 0;
}

void config_free(struct config *cfg)
{
	free(cfg->text);
	cfg->text = NULL;
}

/* --- writing ---------------------------------------------------------------- */

static void write_cidr(struct sbuf *out, const char *name, const struct cidr *c)
{
	char text[INET6_ADDRSTRLEN];
	int af = c->net.family == AF_INET ? AF_INET : AF_INET6;

	inet_ntop(af, c->net.bytes, text, sizeof(text));
	sbuf_printf(out, "%s %s/%u\n", name, text, c->prefix);
}

static void write_addr(struct sbuf *out, const char *name, const struct listen_addr *l)
{
	char text[ADDR_TEXT_MAX];

	addr_format((const struct sockaddr *)&l->ss, text, sizeof(text));
	sbuf_printf(out, "%s %s\n", name, text);
}

static void write_number(struct sbuf *out, const struct opt_def *o, uint32_t v)
{
	if (v == CONFIG_AUTO && o->type == T_UINT_AUTO)
		sbuf_printf(out, "%s max\n", o->name);
	else if (o->type == T_SIZE && v && v % (1u << 20) == 0)
		sbuf_printf(out, "%s %uM\n", o->name, v >> 20);
	else if (o->type == T_SIZE && v && v % 1024 == 0)
		sbuf_printf(out, "%s %uk\n", o->name, v >> 10);
	else
		sbuf_printf(out, "%s %u\n", o->name, v);
}

static void write_opt(struct sbuf *out, const struct config *cfg, const struct opt_def *o)
{
	const char *field = (const char *)cfg + o->off;

	switch (o->type) {
	case T_LISTEN: case T_PROXY_LISTEN:
		for (unsigned i = 0; i < cfg->n_listen; i++)
			if (cfg->listen[i].proxy == (o->type == T_PROXY_LISTEN))
				write_addr(out, o->name, &cfg->listen[i]);
		break;
	case T_PROXY_FROM:
		for (unsigned i = 0; i < cfg->n_proxy_from; i++)
			write_cidr(out, o->name, &cfg->proxy_from[i]);
		break;
	case T_UDP_LISTEN:
		for (unsigned i = 0; i < cfg->n_udp_listen; i++)
			write_addr(out, o->name, &cfg->udp_listen[i]);
		break;
	case T_ALLOW: case T_DENY: {
		bool allow = o->type == T_ALLOW;
		unsigned n = allow ? cfg->acl.n_allow : cfg->acl.n_deny;
		for (unsigned i = 0; i < n; i++)
			write_cidr(out, o->name, allow ? &cfg->acl.allow[i] : &cfg->acl.deny[i]);
		break;
	}
	case T_FLAG:
		if (*(const bool *)field)
			sbuf_printf(out, "%s\n", o->name);
		break;
	case T_STRING:
		if (*(const char *const *)field)
			sbuf_printf(out, "%s %s\n", o->name, *(const char *const *)field);
		break;
	case T_ADDR:
		if (((const struct listen_addr *)field)->len)
			write_addr(out, o->name, (const struct listen_addr *)field);
		break;
	case T_ENGINE:
		sbuf_printf(out, "%s %s\n", o->name, engine_name(*(const uint32_t *)field));
		break;
	case T_TRACE:
		sbuf_printf(out, "%s 0x%x\n", o->name, *(const uint32_t *)field);
		break;
	case T_MODE:
		sbuf_printf(out, "%s 0%o\n", o->name, *(const uint32_t *)field);
		break;
	default:
		write_number(out, o, *(const uint32_t *)field);
		break;
	}
}

bool config_repeatable(const char *name)
{
	const struct opt_def *o = config_opt_find(name);

	return o && repeatable(o);
}

void config_write(const struct config *cfg, struct sbuf *out)
{
	for (unsigned i = 0; config_opt(i); i++)
		if (file_allows(config_opt(i)))
			write_opt(out, cfg, config_opt(i));
}

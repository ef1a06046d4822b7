/* SPDX-License-Identifier: GPL-2.0-only */
/* The option table's rows, for the two readers of options: the command
 * line (core/config.c, which owns the table) and the configuration file
 * (core/config_file.c).  Not for use outside core/config*.c. */
#ifndef ECHOSRV_CONFIG_OPTS_H
#define ECHOSRV_CONFIG_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

enum opt_type {
	T_FLAG,		/* no argument, sets a bool */
	T_UINT,		/* decimal number within [min, max] */
	T_UINT_AUTO,	/* T_UINT, or "auto"/"max" meaning CONFIG_AUTO */
	T_SIZE,		/* bytes, optional k/M/G suffix (binary) */
	T_SECS,		/* whole seconds */
	T_STRING,
	T_LISTEN,	/* repeatable ADDR:PORT */
	T_UDP_LISTEN,	/* repeatable ADDR:PORT, for UDP */
	T_ALLOW,	/* repeatable CIDR */
	T_DENY,
	T_ENGINE,
	T_TRACE,
	T_ADDR,		/* one ADDR:PORT into a struct listen_addr */
	T_PROXY_LISTEN,	/* repeatable ADDR:PORT, a PROXY protocol listener */
	T_PROXY_FROM,	/* repeatable CIDR */
	T_MODE,		/* octal permissions of a socket: 0600, 0660 or 0666 */
};

struct opt_def {
	const char *name;
	char short_name;
	enum opt_type type;
	const char *arg;	/* argument placeholder for --help */
	const char *help;
	const char *def;	/* default, parsed like an argument; NULL = none */
	uint64_t min, max;
	size_t off;		/* field in struct config */
};

/* The rows, in --help order; NULL past the end. */
const struct opt_def *config_opt(unsigned i);
const struct opt_def *config_opt_find(const char *name);
unsigned config_opt_index(const struct opt_def *o);
/* Set the option o from its text value (NULL for a flag), as the command
 * line would; 0, or -EINVAL with "--name: what is wrong" in err. */
int config_opt_apply(const struct opt_def *o, const char *arg, struct config *cfg, char *err,
		     size_t errlen);
/* Every field at its default (the rows' def strings, parsed). */
void config_defaults(struct config *cfg);

#endif

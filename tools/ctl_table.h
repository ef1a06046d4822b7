/* SPDX-License-Identifier: GPL-2.0-only */
/* echosrvctl's human-readable output: the JSON that the server answers to
 * `stats` and `conns`, shown as a short table.
 *
 * The server's JSON has a fixed shape (src/ops/report.c writes it: one
 * member per line for stats, one connection per line for conns), so a small
 * scanner that finds a member by name is enough; echosrvctl stays a
 * standalone program with no JSON library.  A member it cannot find shows
 * as "-": a newer server with other fields still gets a table. */
#ifndef ECHOSRVCTL_TABLE_H
#define ECHOSRVCTL_TABLE_H

#include <stdio.h>

void table_stats(FILE *out, const char *json);
void table_conns(FILE *out, const char *json);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* What start-up would refuse about the files echosrv creates, checked
 * before anything is bound, by both a start and --check, so that the two
 * give the same one-line message (main prints it; --check exits 2, a start
 * exits 1 without having listened at all).
 *
 * For --ctl, --port-file and --trace-file: the directory exists, is a
 * directory, and this process may create files in it (or, for a trace file
 * that already exists, may write to it); the control socket's path fits in
 * a sockaddr_un.  Conflicting --listen addresses are config_finish()'s.
 * This is a check, not a promise: the file is still created safely
 * (core/safefile.h) and can still fail then, which start-up reports too. */
#ifndef ECHOSRV_PREFLIGHT_H
#define ECHOSRV_PREFLIGHT_H

#include <stddef.h>
#include <sys/types.h>

#include "core/config.h"

/* --ctl-group: a group name or number as a gid; 0 or -ENOENT. */
int ctl_group_id(const char *name, gid_t *gid);

/* 0, or -errno with "--OPTION PATH: what is wrong" in err. */
int preflight_check(const struct config *cfg, char *err, size_t errlen);

#endif

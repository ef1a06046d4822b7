/* SPDX-License-Identifier: GPL-2.0-only */
/* Which version of a shared library this process runs with, for `echosrv
 * -V`.  Not every library can say (liburing before 2.4 has no call for
 * it), but the file the dynamic linker loaded is named after its full
 * version (liburing.so.2.3, libbpf.so.1.1.2), and that name is what the
 * package installed, so it answers for every library alike. */
#ifndef ECHOSRV_LIBINFO_H
#define ECHOSRV_LIBINFO_H

#include <stddef.h>

/* The version part of the loaded "STEM.so.X.Y.Z" ("X.Y.Z") into out; 0, or
 * -ENOENT when no such library is loaded (a static build). */
int lib_loaded_version(const char *stem, char *out, size_t len);

#endif

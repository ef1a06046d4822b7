/* SPDX-License-Identifier: GPL-2.0-only */
/* preload_strerror.so: LD_PRELOAD it into echosrv to make strerror(EPERM)
 * return STRERROR_EPERM's text instead, so that a test can put quotes,
 * backslashes and newlines into a reason the server reports (the
 * io_uring fallback reason, shown as echosrv_engine_info's
 * fallback_reason label) and check how the exposition escapes them.
 * Every other errno gets libc's text. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *strerror(int e)
{
	static char *(*real)(int);
	char *text = getenv("STRERROR_EPERM");

	if (e == EPERM && text)
		return text;
	if (!real)
		real = (char *(*)(int))dlsym(RTLD_NEXT, "strerror");
	return real ? real(e) : (char *)"unknown error";
}

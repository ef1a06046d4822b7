/* SPDX-License-Identifier: GPL-2.0-only */
/* Fuzz the control-socket request parser, ctl_parse(): the bytes a local
 * client sends on --ctl, taken as they come (no terminator, any byte).  An
 * accepted request names a known command, and a trace request only the four
 * defined flag bits; an error always comes with a message. */
#include "fuzz.h"

#include "ops/ctl.h"
#include "core/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);	/* exact size, not terminated */
	char err[160] = "";
	struct ctl_req req;

	if (!buf)
		abort();
	memcpy(buf, data, size);
	if (ctl_parse(buf, size, &req, err, sizeof(err)) == 0) {
		FUZZ_CHECK(req.cmd <= CTL_KILL);	/* the last command */
		FUZZ_CHECK(size <= CTL_REQ_MAX);
		if (req.cmd == CTL_TRACE_SET)
			FUZZ_CHECK((req.trace & ~(uint32_t)TR_ALL) == 0);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	free(buf);
	return 0;
}

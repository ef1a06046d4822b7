/* SPDX-License-Identifier: GPL-2.0-only */
/* Fuzz trace_parse_flags (--trace and `echosrvctl trace`).  An accepted
 * mask has only the four defined bits, and formatting it then parsing the
 * number back gives the same mask. */
#include "fuzz.h"

#include "core/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstring(data, size);
	char err[160] = "", text[64];
	uint32_t mask = 0xdeadbeef, again = 0;

	if (trace_parse_flags(s, &mask, err, sizeof(err)) == 0) {
		FUZZ_CHECK((mask & ~(uint32_t)TR_ALL) == 0);
		trace_format_flags(mask, text, sizeof(text));
		*strchr(text, ' ') = '\0';	/* "0x3 (error,info)" -> "0x3" */
		FUZZ_CHECK(trace_parse_flags(text, &again, err, sizeof(err)) == 0);
		FUZZ_CHECK(again == mask);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	free(s);
	return 0;
}

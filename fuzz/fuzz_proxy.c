/* SPDX-License-Identifier: GPL-2.0-only */
/* Fuzz the PROXY header parser (core/proxy.c), v1 and v2 with every TLV
 * path.  The first input byte picks how the rest is cut into pieces, so the
 * fuzzer explores splits as well as contents; besides memory errors it
 * checks what proxy_feed() promises: the same answer however the input is
 * cut, never a byte taken past the header, a header within the protocol's
 * bounds, and a reason with every refusal. */
#include "fuzz.h"

#include <sys/socket.h>

#include "core/proxy.h"

static enum proxy_result feed_cut(struct proxy_parser *p, const uint8_t *d, size_t n,
				  unsigned step, size_t *taken)
{
	enum proxy_result r = PROXY_MORE;
	size_t used;

	*taken = 0;
	for (size_t at = 0; at < n && r == PROXY_MORE; ) {
		size_t k = step ? step : n;
		k = k < n - at ? k : n - at;
		r = proxy_feed(p, d + at, k, &used);
		FUZZ_CHECK(used <= k);
		FUZZ_CHECK(r != PROXY_MORE || used == k);
		*taken += used;
		at += k;
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_parser whole, cut;
	size_t tw, tc;

	if (size == 0)
		return 0;
	unsigned step = data[0] % 17;	/* 0: in one piece */
	/* a copy of exactly the input's size, so ASan sees any over-read */
	uint8_t *d = malloc(size - 1 ? size - 1 : 1);
	if (!d)
		abort();
	memcpy(d, data + 1, size - 1);
	proxy_init(&whole);
	proxy_init(&cut);
	enum proxy_result rw = feed_cut(&whole, d, size - 1, 0, &tw);
	enum proxy_result rc = feed_cut(&cut, d, size - 1, step ? step : 1, &tc);
	FUZZ_CHECK(rw == rc);
	if (rw == PROXY_BAD)
		FUZZ_CHECK(whole.reason && cut.reason && whole.reason[0]);
	if (rw == PROXY_DONE) {
		FUZZ_CHECK(tw == tc);
		FUZZ_CHECK(memcmp(&whole.hdr, &cut.hdr, sizeof(whole.hdr)) == 0);
		FUZZ_CHECK(whole.hdr.version == 1 ? tw <= PROXY_V1_MAX
						  : tw >= PROXY_V2_FIXED && tw <= PROXY_V2_MAX);
		FUZZ_CHECK(whole.hdr.local || whole.hdr.src.ss_family == AF_INET ||
			   whole.hdr.src.ss_family == AF_INET6);
		FUZZ_CHECK(whole.hdr.unique_id_len <= PROXY_UNIQUE_ID_MAX);
	}
	free(d);
	return 0;
}

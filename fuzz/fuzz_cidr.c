/* SPDX-License-Identifier: GPL-2.0-only */
/* Fuzz the address parsers: cidr_parse (--allow/--deny) and
 * addr_parse_listen (--listen).  Besides memory errors (the sanitizers) it
 * checks what a rule promises: an accepted prefix is within the family's
 * bits, has no host bits set, and matches its own network address; an
 * error always comes with a message. */
#include "fuzz.h"

#include <sys/socket.h>

#include "core/acl.h"
#include "core/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstring(data, size);
	char err[160] = "";
	struct cidr c;

	if (cidr_parse(s, &c, err, sizeof(err)) == 0) {
		unsigned max = c.net.family == AF_INET ? 32 : 128;
		FUZZ_CHECK(c.net.family == AF_INET || c.net.family == AF_INET6);
		FUZZ_CHECK(c.prefix <= max);
		for (unsigned bit = c.prefix; bit < max; bit++)
			FUZZ_CHECK(!(c.net.bytes[bit / 8] & (0x80 >> (bit % 8))));
		FUZZ_CHECK(cidr_match(&c, &c.net));
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}

	struct sockaddr_storage ss;
	socklen_t len = 0;
	err[0] = '\0';
	if (addr_parse_listen(s, &ss, &len, err, sizeof(err)) == 0) {
		char text[ADDR_TEXT_MAX];
		FUZZ_CHECK(len > 0 && len <= sizeof(ss));
		addr_format((struct sockaddr *)&ss, text, sizeof(text));
		FUZZ_CHECK(memchr(text, '\0', sizeof(text)) != NULL);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	free(s);
	return 0;
}

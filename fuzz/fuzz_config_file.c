/* SPDX-License-Identifier: GPL-2.0-only */
/* Fuzz the configuration file parser: the input is a whole file, given to
 * config_parse_text() in a buffer of exactly its size + 1 (the NUL the
 * parser may write after the last line).  When it parses and finishes,
 * what config_write() makes of it must parse again to the same text:
 * `echosrvctl show config` promises a file that can be loaded back; and
 * the two configurations differ in nothing (config_diff()). */
#include "fuzz.h"

#include "core/config.h"
#include "core/config_opts.h"
#include "core/sbuf.h"

static char *written(const struct config *cfg, size_t *len)
{
	struct sbuf b = { 0 };

	config_write(cfg, &b);
	char *s = sbuf_take(&b, len);
	if (!s) {		/* nothing written (impossible: engine is always there) */
		s = fuzz_cstring((const uint8_t *)"", 0);
		*len = 0;
	}
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	struct config cfg, again;
	char *text = fuzz_cstring(data, size);

	config_defaults(&cfg);
	if (config_parse_text(&cfg, "fuzz.conf", text, size, err, sizeof(err))) {
		FUZZ_CHECK(!strncmp(err, "fuzz.conf", 9));
		free(text);
		return 0;
	}
	if (config_finish(&cfg, err, sizeof(err)) == 0) {
		size_t n1, n2;
		char *w1 = written(&cfg, &n1);
		char *copy = fuzz_cstring((const uint8_t *)w1, n1);
		config_defaults(&again);
		FUZZ_CHECK(config_parse_text(&again, "again", copy, n1, err, sizeof(err)) == 0);
		FUZZ_CHECK(config_finish(&again, err, sizeof(err)) == 0);
		char *w2 = written(&again, &n2);
		FUZZ_CHECK(n1 == n2 && !memcmp(w1, w2, n1));
		struct sbuf d = { 0 };
		config_diff(&cfg, &again, &d);
		FUZZ_CHECK(d.len == 0);
		sbuf_free(&d);
		free(w1);
		free(w2);
		free(copy);
	}
	free(text);
	return 0;
}

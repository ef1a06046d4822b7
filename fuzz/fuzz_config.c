/* SPDX-License-Identifier: GPL-2.0-only */
/* Fuzz option parsing: the input is split at newlines into an argv
 * ("echosrv" first, at most 64 arguments), then config_parse() and, when
 * that accepts, config_finish() run on it.  Each argument lives in a buffer
 * of its own exact size, so a read past any of them is caught.  Parsing
 * twice in one process (as every fuzz iteration does) must also work: it
 * did not at first, see tests in fuzz/corpus/config/regress-*. */
#include "fuzz.h"

#include "core/config.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	char err[512] = "";
	struct config cfg;
	size_t start = 0;

	argv[argc++] = fuzz_cstring((const uint8_t *)"echosrv", 7);
	for (size_t i = 0; i <= size && argc <= MAX_ARGS; i++) {
		if (i == size || data[i] == '\n') {
			argv[argc++] = fuzz_cstring(data + start, i - start);
			start = i + 1;
		}
	}
	argv[argc] = NULL;
	if (config_parse(&cfg, argc, argv, err, sizeof(err)) == 0) {
		err[0] = '\0';
		if (config_finish(&cfg, err, sizeof(err)) == 0) {
			FUZZ_CHECK(cfg.n_listen >= 1 && cfg.n_listen <= CONFIG_MAX_LISTEN);
			FUZZ_CHECK(cfg.workers >= 1 && cfg.max_conns >= 1);
			FUZZ_CHECK(cfg.engine <= ENGINE_SOCKMAP);
		} else {
			FUZZ_CHECK(err[0] != '\0');
		}
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return 0;
}

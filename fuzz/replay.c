/* SPDX-License-Identifier: GPL-2.0-only */
/* Run a fuzz harness over files, without libFuzzer: make check builds each
 * harness with this main() and the sanitizers and replays fuzz/corpus/, so
 * the seeds and every input that once crashed are tested on each run. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 1;
		}
		size_t n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		/* An exact-size copy, so that a read past the input is caught. */
		uint8_t *in = malloc(n ? n : 1);
		if (!in)
			return 1;
		memcpy(in, buf, n);
		LLVMFuzzerTestOneInput(in, n);
		free(in);
	}
	printf("replayed %d inputs\n", argc - 1);
	return 0;
}

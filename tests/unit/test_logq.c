/* SPDX-License-Identifier: GPL-2.0-only */
/* The log queue against a pipe nobody reads for a while: the producer never
 * waits, lines beyond the ring are dropped and counted, the report of the
 * drops comes out once, where the first line went missing, lines that wrap
 * around the ring's end come out whole, and a stop on a blocked sink ends in
 * bounded time.  The queue is one per process, so this is one scenario in
 * steps, in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/logq.h"
#include "core/util.h"

#define LINE_LEN 100
#define N_LINES 4000		/* 400 KB: well over LOGQ_BYTES + the pipe */

static int pipe_fd[2];
static atomic_int reopens;

static void on_reopen(void)
{
	atomic_fetch_add(&reopens, 1);
}

static size_t on_dropped(char *buf, size_t len, uint64_t n)
{
	return (size_t)snprintf(buf, len, "DROPPED %llu\n", (unsigned long long)n);
}

/* Line i: its number, then filler, LINE_LEN bytes with the newline. */
static void make_line(char *buf, unsigned i)
{
	int n = snprintf(buf, LINE_LEN, "L%06u ", i);
	memset(buf + n, 'a' + (char)(i % 26), LINE_LEN - 1 - (size_t)n);
	buf[LINE_LEN - 1] = '\n';
}

/* Read the pipe until `until` appears in what was read or 10 s pass. */
static size_t read_until(char *out, size_t cap, size_t have, const char *until)
{
	uint64_t deadline = mono_ns() + 10 * NSEC_PER_SEC;

	out[have] = '\0';
	while (!strstr(out, until) && mono_ns() < deadline && have < cap - 1) {
		struct pollfd pfd = { .fd = pipe_fd[0], .events = POLLIN };
		if (poll(&pfd, 1, 100) != 1)
			continue;
		ssize_t r = read(pipe_fd[0], out + have, cap - 1 - have);
		if (r > 0)
			have += (size_t)r;
		out[have] = '\0';
	}
	return have;
}

static void test_blocked_sink_drops_reports_and_stops(void **state)
{
	static char text[1 << 20];
	char line[LINE_LEN];
	struct logq_stats st;

	assert_int_equal(logq_put("early\n", 6), -ENOTCONN);
	assert_int_equal(pipe2(pipe_fd, O_CLOEXEC), 0);
	fcntl(pipe_fd[0], F_SETPIPE_SZ, 4096);
	const struct logq_ops ops = { .fd = pipe_fd[1], .reopen = on_reopen,
				      .dropped = on_dropped };
	assert_int_equal(logq_start(&ops), 0);

	/* Nobody reads: every put returns at once, the excess is dropped. */
	for (unsigned i = 0; i < N_LINES; i++) {
		make_line(line, i);
		assert_int_equal(logq_put(line, LINE_LEN), 0);
	}
	logq_get_stats(&st);
	assert_true(st.dropped > 0);
	assert_true(st.bytes <= LOGQ_BYTES && st.bytes > LOGQ_BYTES / 2);	/* full, but for what the writer took since */
	assert_int_equal(st.lines * LINE_LEN, st.bytes);
	assert_int_equal(logq_flush(200), -ETIMEDOUT);
	uint64_t dropped = st.dropped;

	/* Read everything, up to a line put after the sink drained.  Every
	 * line is whole and in order; the report comes once, where the first
	 * line went missing, and counts every line that did not come out. */
	make_line(line, 999999);
	size_t have = read_until(text, sizeof(text), 0, "DROPPED");
	assert_int_equal(logq_put(line, LINE_LEN), 0);
	have = read_until(text, sizeof(text), have, "L999999 ");
	char *rep = strstr(text, "DROPPED ");
	assert_non_null(rep);
	assert_null(strstr(rep + 1, "DROPPED"));
	assert_int_equal(strtoull(rep + 8, NULL, 10), dropped);
	char *end = strchr(rep, '\n') + 1;
	assert_int_equal((size_t)(rep - text) % LINE_LEN, 0);
	assert_int_equal((size_t)(text + have - end) % LINE_LEN, 0);
	unsigned before = (unsigned)((size_t)(rep - text) / LINE_LEN), got = 0;
	for (unsigned i = 0; i < before; i++, got++) {
		make_line(line, i);
		assert_memory_equal(text + (size_t)i * LINE_LEN, line, LINE_LEN);
	}
	unsigned last = before - 1;
	for (char *p = end; p < text + have; p += LINE_LEN, got++) {
		unsigned i = (unsigned)strtoul(p + 1, NULL, 10);
		/* In order, and line `before` is the first that went missing. */
		assert_true(i > last + (p == end));
		make_line(line, i);
		assert_memory_equal(p, line, LINE_LEN);
		last = i;
	}
	/* Line 999999 counts in `got` but was put after the N_LINES. */
	assert_int_equal(got - 1 + dropped, N_LINES);
	/* Past the ring's end, in the middle of a line (100 does not divide
	 * LOGQ_BYTES), and every line came out whole. */
	assert_true((size_t)got * LINE_LEN > LOGQ_BYTES);
	assert_int_equal(logq_flush(5000), 0);
	logq_get_stats(&st);
	assert_int_equal(st.dropped, dropped);
	assert_int_equal(st.lines, 0);

	/* A reopen runs on the writer. */
	assert_int_equal(logq_reopen(), 0);
	assert_int_equal(logq_flush(5000), 0);
	assert_int_equal(atomic_load(&reopens), 1);

	/* Block it again; a stop still ends, in about its deadline. */
	for (unsigned i = 0; i < N_LINES; i++) {
		make_line(line, i);
		logq_put(line, LINE_LEN);
	}
	uint64_t t0 = mono_ns();
	logq_stop(300);
	assert_true(mono_ns() - t0 < 3 * NSEC_PER_SEC);
	assert_int_equal(logq_put(line, LINE_LEN), -ESHUTDOWN);
	logq_get_stats(&st);
	assert_true(st.dropped > dropped);
	close(pipe_fd[0]);
	close(pipe_fd[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocked_sink_drops_reports_and_stops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

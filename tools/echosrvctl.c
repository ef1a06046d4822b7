/* SPDX-License-Identifier: GPL-2.0-only */
/* echosrvctl: the control client for echosrv's control socket (--ctl).
 *
 * It sends one request line, prints the body of the reply to stdout and
 * exits 0, or prints the server's error (or why it could not ask) to stderr
 * and exits 1; 2 is bad usage, found here before anything is sent (an
 * unknown command, a wrong number of arguments).  `stats` and `conns` are
 * shown as tables unless --json asks for the server's JSON as it is.  The protocol is in echosrvctl(8): one line
 * in, "ok" or "error MESSAGE" plus a body out, then the server closes.
 * Deliberately standalone (no code shared with the server) so it stays a
 * small, obviously correct tool. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl_table.h"

#define DEFAULT_CTL "/run/echosrv/ctl"
/* The server's limit is 256 bytes and the server is the one to say so
 * ("request too long"); this only bounds what the client will send. */
#define REQ_MAX 4096
#define TIMEOUT_MS 15000	/* the server answers `conns` within ~2 s */

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: echosrvctl [OPTION]... COMMAND [ARG]... [OPTION]...\n"
		"Ask a running echosrv through its control socket.\n\n"
		"Commands:\n"
		"  stats             statistics (a table; JSON with --json)\n"
		"  conns             the open connections (a table; JSON with --json)\n"
		"  trace [FLAGS]     show or set the trace flags (0x3, error,info, none)\n"
		"  kill ID [WORKER]  close one connection (ID and WORKER as conns shows them)\n"
		"  reload            read the --config file again and apply it (as SIGHUP)\n"
		"  show config       the configuration in force, as a --config file\n"
		"  drain             stop accepting, let connections finish, exit (as SIGTERM)\n"
		"  stop              close every connection and exit now\n\n"
		"Options (before or after the command):\n"
		"  -c, --ctl PATH   control socket [$ECHOSRV_CTL or " DEFAULT_CTL "]\n"
		"  -j, --json       stats and conns as the server's JSON\n"
		"  -h, --help       show this help\n"
		"  -V, --version    show the version\n");
}

static int connect_ctl(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(a.sun_path)) {
		fprintf(stderr, "echosrvctl: %s: path too long\n", path);
		return -1;
	}
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int e = errno;
		fprintf(stderr, "echosrvctl: cannot connect to %s: %s%s\n", path, strerror(e),
			e == ENOENT || e == ECONNREFUSED ? " (is echosrv running with --ctl?)" :
			e == EACCES ? " (the socket is mode 0600: run as its owner or root)" : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static long ms_left(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return TIMEOUT_MS - ((now.tv_sec - start->tv_sec) * 1000 +
			     (now.tv_nsec - start->tv_nsec) / 1000000);
}

/* A reset after a whole "error ..." line still delivered that line: an
 * older server closed without reading the request, which resets the peer. */
static bool whole_error_line(const char *buf, size_t len)
{
	return len > 6 && !strncmp(buf, "error ", 6) && buf[len - 1] == '\n';
}

/* Read the whole reply (until the server closes) into a malloc'ed string. */
static char *read_reply(int fd, size_t *len)
{
	struct timespec start;
	size_t cap = 4096;
	char *buf = malloc(cap);

	*len = 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (buf) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = ms_left(&start);
		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			fprintf(stderr, "echosrvctl: no complete reply within %d s\n", TIMEOUT_MS / 1000);
			break;
		}
		if (*len + 1 == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb)
				break;
			buf = nb;
		}
		ssize_t n = read(fd, buf + *len, cap - *len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET && whole_error_line(buf, *len))
			n = 0;
		if (n < 0) {
			fprintf(stderr, "echosrvctl: read: %s\n", strerror(errno));
			break;
		}
		if (n == 0) {
			buf[*len] = '\0';
			return buf;
		}
		*len += (size_t)n;
	}
	free(buf);
	return NULL;
}

/* The commands and how many arguments each takes: anything else is bad
 * usage (exit 2), said here rather than sent.  reload and show belong to
 * the configuration file; a server without it answers an error. */
static const struct command {
	const char *name;
	int min_args, max_args;
	const char *args;
} commands[] = {
	{ "stats", 0, 0, "" }, { "conns", 0, 0, "" }, { "trace", 0, 1, " [FLAGS]" },
	{ "kill", 1, 2, " ID [WORKER]" }, { "reload", 0, 0, "" }, { "show", 1, 1, " config" },
	{ "drain", 0, 0, "" }, { "stop", 0, 0, "" },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static int check_usage(int argc, char **argv)
{
	const struct command *cmd = find_command(argv[0]);
	int n = argc - 1;

	if (!cmd) {
		fprintf(stderr, "echosrvctl: unknown command '%s' (see --help)\n", argv[0]);
		return -1;
	}
	if (n < cmd->min_args || n > cmd->max_args) {
		fprintf(stderr, "echosrvctl: %s: %s; usage: echosrvctl %s%s\n", cmd->name,
			n > cmd->max_args ? "too many arguments" : "missing argument",
			cmd->name, cmd->args);
		return -1;
	}
	return 0;
}

/* Join the command words into one request line. */
static int build_request(int argc, char **argv, char *req, size_t len)
{
	size_t n = 0;

	for (int i = 0; i < argc; i++) {
		int m = snprintf(req + n, len - n, "%s%s", i ? " " : "", argv[i]);
		if (m < 0 || (size_t)m >= len - n - 1)
			return -1;
		n += (size_t)m;
	}
	req[n++] = '\n';
	req[n] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ctl", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *path = getenv("ECHOSRV_CTL");
	char req[REQ_MAX + 2];
	bool json = false;
	int c;

	if (!path || !*path)
		path = DEFAULT_CTL;
	/* getopt permutes: options may come after the command ("stats --json");
	 * "--" ends them, for a trace flag that would look like one. */
	while ((c = getopt_long(argc, argv, "c:jhV", lo, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("echosrvctl %s\n", ECHOSRV_VERSION); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind == argc) {
		fprintf(stderr, "echosrvctl: no command given\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (check_usage(argc - optind, argv + optind))
		return EXIT_USAGE;
	if (build_request(argc - optind, argv + optind, req, sizeof(req))) {
		fprintf(stderr, "echosrvctl: request longer than %d bytes\n", REQ_MAX);
		return EXIT_USAGE;
	}
	int fd = connect_ctl(path);
	if (fd < 0)
		return EXIT_FAIL;
	size_t len = strlen(req), reply_len;
	int send_err = send(fd, req, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : errno;
	if (send_err && send_err != EPIPE && send_err != ECONNRESET) {
		fprintf(stderr, "echosrvctl: send: %s\n", strerror(send_err));
		close(fd);
		return EXIT_FAIL;
	}
	/* A server that refuses the request (too many clients, too long) may
	 * have answered and closed before taking it all: its line is still
	 * there to read, and says more than "Broken pipe". */
	char *reply = read_reply(fd, &reply_len);
	close(fd);
	if (reply && send_err && strncmp(reply, "error ", 6)) {
		free(reply);
		reply = NULL;
	}
	if (!reply) {
		if (send_err)
			fprintf(stderr, "echosrvctl: send: %s\n", strerror(send_err));
		return EXIT_FAIL;
	}
	int rc = EXIT_FAIL;
	if (!strncmp(reply, "ok\n", 3)) {
		const char *cmd = argv[optind];
		if (!json && !strcmp(cmd, "stats"))
			table_stats(stdout, reply + 3);
		else if (!json && !strcmp(cmd, "conns"))
			table_conns(stdout, reply + 3);
		else
			fwrite(reply + 3, 1, reply_len - 3, stdout);
		rc = EXIT_OK;
	} else if (!strncmp(reply, "error ", 6)) {
		fprintf(stderr, "echosrvctl: %s: %s", argv[optind], reply + 6);
	} else {
		fprintf(stderr, "echosrvctl: unexpected reply from %s\n", path);
	}
	free(reply);
	return rc;
}

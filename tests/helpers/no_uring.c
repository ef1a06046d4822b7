/* SPDX-License-Identifier: GPL-2.0-only */
/* no_uring CMD [ARGS...]: run CMD with io_uring refused, as a hardened
 * service manager or container runtime would refuse it.
 *
 * Installs a seccomp filter that makes io_uring_setup, io_uring_enter and
 * io_uring_register fail (EPERM by default, ENOSYS with NO_URING_ERRNO=ENOSYS),
 * then execs CMD.  The tests use it to check that `--engine auto` really
 * falls back to epoll and `--engine io_uring` refuses to start. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DENY(nr, err)                                                  \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                \
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((err) & SECCOMP_RET_DATA))

int main(int argc, char **argv)
{
	const char *e = getenv("NO_URING_ERRNO");
	unsigned err = (e && !strcmp(e, "ENOSYS")) ? ENOSYS : EPERM;

	if (argc < 2) {
		fprintf(stderr, "usage: no_uring CMD [ARGS...]\n");
		return 2;
	}
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),	/* other ABIs: not ours to judge */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		DENY(__NR_io_uring_setup, err),
		DENY(__NR_io_uring_enter, err),
		DENY(__NR_io_uring_register, err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fprog = { .len = sizeof(prog) / sizeof(prog[0]), .filter = prog };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog)) {
		perror("no_uring: seccomp");
		return 1;
	}
	execvp(argv[1], argv + 1);
	perror("no_uring: exec");
	return 127;
}

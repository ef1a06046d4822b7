/* SPDX-License-Identifier: GPL-2.0-only */
/* fail_mmap LEN CMD [ARGS...]: run CMD with every mmap() of exactly LEN
 * bytes failing with ENOMEM, and every other mmap() as usual.
 *
 * A fault injector for start-up paths that map one large, distinctive
 * region: the tests give the io_uring engine a buffer pool of an odd size
 * (ECHOSRV_URING_BUFS) and fail just that mapping, so the ring is set up
 * and the engine's init fails a step later, in the worker thread.  A
 * seccomp filter (inherited by every thread, checked in the kernel), not
 * an LD_PRELOAD shim, so it also works under the sanitizers, whose
 * runtime must come first among the libraries. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* seccomp_data.args[] are 64-bit; BPF loads 32 bits at a time. */
#define ARG_LO(n) (offsetof(struct seccomp_data, args) + (n) * 8)
#define ARG_HI(n) (ARG_LO(n) + 4)

int main(int argc, char **argv)
{
	char *end;
	unsigned long long len = argc > 2 ? strtoull(argv[1], &end, 10) : 0;

	if (argc < 3 || *end || !len) {
		fprintf(stderr, "usage: fail_mmap LEN CMD [ARGS...]\n");
		return 2;
	}
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(1)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)len, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_HI(1)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(len >> 32), 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOMEM),
	};
	struct sock_fprog fprog = { .len = sizeof(prog) / sizeof(prog[0]), .filter = prog };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog)) {
		perror("fail_mmap: seccomp");
		return 1;
	}
	execvp(argv[2], argv + 2);
	perror("fail_mmap: exec");
	return 127;
}

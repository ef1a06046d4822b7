/* SPDX-License-Identifier: GPL-2.0-only */
/* Loading the sockmap engine's BPF object (bpf/echo.bpf.c), which is built
 * with clang during `make` and embedded in the binary, so there is no file
 * to find at run time.
 *
 * Everything is held by descriptors only: nothing is pinned and nothing is
 * attached to a cgroup, so when the process exits -- cleanly or killed --
 * the kernel drops the last reference and frees the maps, the program and
 * the sockets' psocks.  Each worker loads its own copy, so a worker's
 * connections, maps and event ring are its own and nothing is shared. */
#ifndef ECHOSRV_SOCKMAP_BPF_H
#define ECHOSRV_SOCKMAP_BPF_H

#include <stddef.h>
#include <stdint.h>

struct bpf_object;

struct sm_bpf {
	struct bpf_object *obj;
	int socks_fd;	/* SOCKHASH: cookie -> socket */
	int state_fd;	/* HASH: cookie -> struct sm_state */
	int ctl_fd;	/* HASH: cookie -> struct sm_ctl */
	int events_fd;	/* RINGBUF of struct sm_event */
};

/* Load the object with maps for `entries` sockets and attach the verdict
 * program to the SOCKHASH.  0, or -errno with a sentence in err. */
int sm_bpf_open(struct sm_bpf *b, uint32_t entries, char *err, size_t errlen);
void sm_bpf_close(struct sm_bpf *b);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* What the sockmap engine's BPF program (bpf/echo.bpf.c) and user space
 * (engine/sockmap/loop.c) share: the layout of the per-connection map values and
 * of the ring-buffer events.  Plain fixed-size types only, since the same
 * header is compiled for the host and for the BPF target.
 *
 * Every map is keyed by the socket cookie (SO_COOKIE), which both sides can
 * name: the program with bpf_get_socket_cookie(), user space with
 * getsockopt().  The program owns struct sm_state once user space has
 * created it; user space owns struct sm_ctl.  Neither writes the other's
 * value, because a map update from user space replaces a value whole. */
#ifndef ECHOSRV_SOCKMAP_ABI_H
#define ECHOSRV_SOCKMAP_ABI_H

#include <linux/types.h>

enum sm_mode {
	SM_KERNEL = 0,	/* each skb is redirected to this socket's egress */
	SM_USER = 1,	/* each skb is passed up; user space echoes it */
};

/* Written by the program (user space only creates and deletes it). */
struct sm_state {
	__u64 conn_id;		/* set by user space at creation, read-only after */
	__u64 redirected;	/* bytes redirected since the last switch to SM_KERNEL */
	__u64 passed;		/* bytes passed up to user space, ever */
	__u64 seen;		/* stream bytes the program handled, ever (after trims) */
	__u64 trimmed;		/* bytes cut off skbs that began before rcv_next */
	__u32 seq0;		/* tcp write_seq at the last switch to SM_KERNEL */
	__u32 mode;		/* enum sm_mode */
	__u32 inited;		/* seq0 is valid */
	__u32 rcv_next;		/* peer's sequence number of the next new byte */
	__u32 rcv_inited;	/* rcv_next is valid */
	__u32 broken;		/* an overlap could not be cut: user space resets */
};

/* Written by user space (the program only reads it): the request to hand a
 * connection back to the kernel once user space holds nothing and has read
 * exactly `consumed` bytes, i.e. everything ever passed up. */
struct sm_ctl {
	__u64 consumed;
	__u32 want_kernel;
	__u32 pad;
};

enum sm_event_kind {
	SM_EV_TO_USER = 1,	/* the peer stopped reading: user space takes over */
	SM_EV_TO_KERNEL = 2,	/* the kernel took the connection back */
	SM_EV_BROKEN = 3,	/* the stream cannot be echoed exactly: reset it */
};

struct sm_event {
	__u64 conn_id;
	__u32 kind;		/* enum sm_event_kind */
	__u32 pad;
};

#endif

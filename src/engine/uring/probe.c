/* SPDX-License-Identifier: GPL-2.0-only */
/* Can the io_uring engine run here?  Asked once by engine selection, before
 * any worker starts, by really doing what the engine will do: create a ring
 * with the engine's flags, register a provided-buffer ring, and receive on
 * a socket pair with a multishot receive.  Anything that blocks io_uring --
 * the kernel.io_uring_disabled sysctl, a seccomp filter, a kernel too old
 * for multishot receive (6.0) or buffer rings (5.19) -- shows up here with
 * a reason that names it, and `--engine auto` falls back to epoll.  It
 * also finds out whether a multishot receive can be given a byte limit,
 * and whether multishot recvmsg works (the UDP receive, uring/dgram.c;
 * without it UDP is served by readiness, which is not a reason to refuse
 * the engine).
 * Nothing here needs /proc: a sandbox that hides /proc/sys changes only
 * the words of a failure's reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/uring/uring.h"
#include "core/util.h"

/* SINGLE_ISSUER (6.0) and DEFER_TASKRUN (6.1) where the kernel has them:
 * only the worker thread submits, and completions are run when it asks. */
int uring_ring_create(struct io_uring *ring, unsigned entries, unsigned cq_entries)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int r = -EINVAL;

	for (unsigned i = 0; i < ARRAY_SIZE(tries); i++) {
		struct io_uring_params p = {
			.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL,
			.cq_entries = cq_entries,
		};
		r = io_uring_queue_init_params(entries, ring, &p);
		if (r != -EINVAL)
			break;
	}
	return r;
}

/* Why io_uring_setup failed, in words.  Only the words: whether io_uring
 * runs is decided by trying it, never by the sysctl, which a sandbox may
 * hide (systemd's ProcSubset=pid hides all of /proc/sys) -- then the
 * reason says the sysctl could not be read. */
static void setup_reason(int r, char *why, size_t len)
{
	int dis = (int)read_sysctl_long("/proc/sys/kernel/io_uring_disabled", -1);

	if (dis == 2)
		snprintf(why, len, "io_uring_setup: %s (kernel.io_uring_disabled=2)", strerror(-r));
	else if (dis == 1 && r == -EPERM)
		snprintf(why, len, "io_uring_setup: %s (kernel.io_uring_disabled=1 and not in "
			 "kernel.io_uring_group)", strerror(-r));
	else if ((r == -ENOSYS || r == -EPERM) && dis < 0)
		snprintf(why, len, "io_uring_setup: %s (kernel.io_uring_disabled unreadable here; "
			 "that sysctl, a seccomp filter, or a kernel without io_uring)", strerror(-r));
	else if (r == -ENOSYS || r == -EPERM)
		snprintf(why, len, "io_uring_setup: %s (a seccomp filter, or a kernel without "
			 "io_uring)", strerror(-r));
	else
		snprintf(why, len, "io_uring_setup: %s", strerror(-r));
}

bool uring_mshot_limit;

/* One byte through a multishot receive with buffer select; limit, when
 * not 0, also asks for a byte limit on the whole multishot receive
 * (sqe->optlen, which liburing 2.3 calls file_index; Linux 6.17). */
static int try_multishot_recv(struct io_uring *ring, struct uring_bufs *b, uint32_t limit)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return ERR();
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = b->bgid;
	sqe->file_index = limit;
	r = (int)write(sv[1], "x", 1);
	bool armed = false;
	if (r == 1 && (r = io_uring_submit_and_wait(ring, 1)) >= 0 &&
	    (r = io_uring_peek_cqe(ring, &cqe)) == 0) {
		armed = cqe->flags & IORING_CQE_F_MORE;
		if (cqe->flags & IORING_CQE_F_BUFFER) {	/* back to the ring */
			uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
			io_uring_buf_ring_add(b->br, uring_buf(b, bid), b->size, bid,
					      io_uring_buf_ring_mask(b->count), 0);
			io_uring_buf_ring_advance(b->br, 1);
		}
		if (cqe->res < 0)
			r = cqe->res;
		else if (cqe->res != 1 || !armed || !(cqe->flags & IORING_CQE_F_BUFFER))
			r = -EOPNOTSUPP;
		io_uring_cqe_seen(ring, cqe);
	}
	close(sv[0]);
	close(sv[1]);
	/* A receive still armed ends (EOF) with the socket: reap that too. */
	if (armed && io_uring_submit_and_wait(ring, 1) >= 0 && io_uring_peek_cqe(ring, &cqe) == 0)
		io_uring_cqe_seen(ring, cqe);
	return r < 0 ? r : 0;
}

bool uring_udp_mshot;
char uring_udp_why[96];

/* One datagram through a multishot recvmsg with buffer select, the way
 * uring/dgram.c receives UDP (on a local datagram socket pair: the probe
 * needs no network).  0, or why not. */
static int try_multishot_recvmsg(struct io_uring *ring, struct uring_bufs *b)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	struct msghdr mh = { 0 };
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv))
		return ERR();
	io_uring_prep_recvmsg_multishot(sqe, sv[0], &mh, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = b->bgid;
	io_uring_sqe_set_data64(sqe, 1);
	r = (int)write(sv[1], "x", 1);
	bool armed = false;
	if (r == 1 && (r = io_uring_submit_and_wait(ring, 1)) >= 0 &&
	    (r = io_uring_peek_cqe(ring, &cqe)) == 0) {
		armed = cqe->flags & IORING_CQE_F_MORE;
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
			struct io_uring_recvmsg_out *o =
				io_uring_recvmsg_validate(uring_buf(b, bid), cqe->res, &mh);
			if (cqe->res >= 0 && (!o || o->payloadlen != 1))
				r = -EOPNOTSUPP;
			io_uring_buf_ring_add(b->br, uring_buf(b, bid), b->size, bid,
					      io_uring_buf_ring_mask(b->count), 0);
			io_uring_buf_ring_advance(b->br, 1);
		} else if (cqe->res >= 0) {
			r = -EOPNOTSUPP;
		}
		if (cqe->res < 0)
			r = cqe->res;
		else if (!armed)
			r = r ? r : -EOPNOTSUPP;
		io_uring_cqe_seen(ring, cqe);
	}
	/* A datagram socket pair sends no EOF: cancel what is still armed. */
	if (armed && (sqe = io_uring_get_sqe(ring))) {
		io_uring_prep_cancel64(sqe, 1, 0);
		io_uring_sqe_set_data64(sqe, 2);
		struct __kernel_timespec ts = { .tv_sec = 1 };
		io_uring_submit(ring);
		for (int i = 0; i < 2 && io_uring_wait_cqe_timeout(ring, &cqe, &ts) == 0; i++)
			io_uring_cqe_seen(ring, cqe);
	}
	close(sv[0]);
	close(sv[1]);
	return r < 0 ? r : 0;
}

static void probe_udp(struct io_uring *ring, struct uring_bufs *b)
{
	int r;

	if (!uring_env.udp_mshot) {
		snprintf(uring_udp_why, sizeof(uring_udp_why), "ECHOSRV_URING_UDP_MSHOT=0");
	} else if ((r = try_multishot_recvmsg(ring, b))) {
		snprintf(uring_udp_why, sizeof(uring_udp_why), "multishot recvmsg unsupported: %s",
			 strerror(-r));
	} else {
		uring_udp_mshot = true;
	}
}

int uring_probe(const struct config *cfg, char *why, size_t len)
{
	struct io_uring ring;
	struct uring_bufs b;
	int r = uring_ring_create(&ring, 8, 16);

	if (r) {
		setup_reason(r, why, len);
		return r;
	}
	if (!(ring.features & IORING_FEAT_EXT_ARG) || !(ring.features & IORING_FEAT_NODROP)) {
		snprintf(why, len, "kernel too old (no IORING_FEAT_EXT_ARG/NODROP)");
		r = -EOPNOTSUPP;
	} else if ((r = uring_bufs_init(&b, &ring, 0, 2, 64, 0))) {
		snprintf(why, len, "provided-buffer rings unsupported: %s", strerror(-r));
	} else {
		if ((r = try_multishot_recv(&ring, &b, 0)))
			snprintf(why, len, "multishot receive unsupported: %s", strerror(-r));
		else if (!uring_env.no_limit)	/* tests: the older path */
			uring_mshot_limit = try_multishot_recv(&ring, &b, 1 << 20) == 0;
		if (!r)
			probe_udp(&ring, &b);
		uring_bufs_fini(&b, &ring);
	}
	io_uring_queue_exit(&ring);
	return r;
}

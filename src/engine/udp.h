/* SPDX-License-Identifier: GPL-2.0-only */
/* UDP echo, the same for every engine (docs/udp.md).
 *
 * A datagram has no connection, no state to carry between receives and
 * nothing to finish, so its loop is small and readiness-driven: each worker
 * gathers its UDP sockets in one epoll set of its own (udp_fd()), the
 * engine watches that one descriptor in its own loop (the epoll and sockmap
 * engines add it to their epoll set, io_uring polls it) and calls
 * udp_ready() when it is readable.  udp_ready() then receives a batch with
 * recvmmsg, passes each datagram through the guard (core/udp_guard.h) and
 * sends the survivors back with one sendmmsg, from the address each was
 * sent to (IP_PKTINFO / IPV6_PKTINFO).  Nothing blocks: a full send queue
 * drops and counts.  All state is the worker's own. */
#ifndef ECHOSRV_ENGINE_UDP_H
#define ECHOSRV_ENGINE_UDP_H

struct worker;

/* Set up w->udp when this worker has UDP sockets; 0 or -errno. */
int udp_init(struct worker *w);
/* The descriptor to watch for input; -1: this worker serves no UDP. */
int udp_fd(const struct worker *w);
/* It is readable: serve a bounded number of batches. */
void udp_ready(struct worker *w);
void udp_fini(struct worker *w);

#endif

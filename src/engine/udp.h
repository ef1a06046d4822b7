/* SPDX-License-Identifier: GPL-2.0-only */
/* UDP echo, the same for every engine (docs/udp.md).
 *
 * A datagram has no connection, no state to carry between receives and
 * nothing to finish, so its loop is small and readiness-driven.  The epoll
 * and sockmap engines have each UDP socket put straight into their own
 * epoll set (udp_init_in()) and call udp_ready_slot() for the one that is
 * readable: a set of sockets nested in the engine's set would run a second
 * wake-up callback, under a second lock, for every datagram that arrives
 * (docs/udp.md).  io_uring receives by itself (uring/dgram.c, feeding the
 * same judge, udp_priv.h), and where the kernel has no multishot recvmsg
 * it polls one descriptor, an epoll set of udp.c's own that holds the
 * worker's UDP sockets (udp_init(), udp_fd()), and calls udp_ready() when
 * that is readable.  Either then receives a batch with
 * recvmmsg, passes each datagram through the guard (core/udp_guard.h) and
 * sends the survivors back with one sendmmsg, from the address each was
 * sent to (IP_PKTINFO / IPV6_PKTINFO).  Nothing blocks: a full send queue
 * drops and counts.  All state is the worker's own. */
#ifndef ECHOSRV_ENGINE_UDP_H
#define ECHOSRV_ENGINE_UDP_H

#include <stdint.h>

struct worker;

/* Set up w->udp when this worker has UDP sockets, gathered in a set of
 * their own; 0 or -errno. */
int udp_init(struct worker *w);
/* The set's descriptor to watch for input; -1: this worker serves no UDP,
 * or its sockets are in the engine's own set (udp_init_in()). */
int udp_fd(const struct worker *w);
/* It is readable: serve a bounded number of batches. */
void udp_ready(struct worker *w);
void udp_fini(struct worker *w);

/* A reload (the engine's udp_socket(), engine_ops.h): serve fd in slot of
 * the worker's row, setting up w->udp if this is its first UDP socket (the
 * engine then watches udp_fd() from now on); 0, or -errno with fd closed.
 * Remove: stop serving slot and close its socket (out of whichever set
 * it is in first). */
int udp_add_socket(struct worker *w, unsigned slot, int fd);
void udp_remove_socket(struct worker *w, unsigned slot);

/* The same two for an engine with an epoll set of its own, epfd: each
 * socket goes into it (EPOLLIN, level-triggered) with data.u64 tag0 + its
 * slot, and the engine calls udp_ready_slot(w, slot) when it is readable.
 * A slot is below CONFIG_MAX_LISTEN. */
int udp_init_in(struct worker *w, int epfd, uint32_t tag0);
int udp_add_socket_in(struct worker *w, unsigned slot, int fd, int epfd, uint32_t tag0);
void udp_ready_slot(struct worker *w, unsigned slot);

#endif

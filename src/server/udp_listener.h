/* SPDX-License-Identifier: GPL-2.0-only */
/* UDP sockets (--udp-listen): the datagram kind of listener.
 *
 * Like the stream listeners, each worker gets its own SO_REUSEPORT socket
 * per address, so the kernel keeps a source's datagrams (its 4-tuple) on
 * one worker and no two workers touch one socket.  Datagram sockets passed
 * by systemd (ListenDatagram=) cannot be multiplied that way, and a shared
 * UDP socket would split one source's datagrams (and its rate budget) over
 * workers, so worker 0 alone serves those.  The listeners own the
 * descriptors; a worker closes its row when draining starts (there is
 * nothing to finish for a datagram). */
#ifndef ECHOSRV_UDP_LISTENER_H
#define ECHOSRV_UDP_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/config.h"

struct udp_listeners {
	int *fds;		/* fds[worker * n_addr + addr]; -1: none */
	unsigned n_addr, n_workers;	/* n_addr: CONFIG_MAX_LISTEN unless activated */
	bool activated;		/* the sockets came from systemd (worker 0's row only) */
	/* The main thread's view (a worker learns of a change through
	 * server.live): which slots serve, what each was asked for (a reload
	 * keeps a slot whose address is still configured) and is bound to. */
	uint32_t used;
	struct listen_addr asked[CONFIG_MAX_LISTEN];
	struct sockaddr_storage bound[CONFIG_MAX_LISTEN];
};

/* Bind every --udp-listen address for every worker, or adopt the datagram
 * sockets among the `passed` ones systemd gave (from fd 3 on).  0, or
 * -errno with a message naming the address in err. */
int udp_listeners_open(struct udp_listeners *u, const struct config *cfg, int passed,
		       char *err, size_t errlen);

static inline int *udp_listener_row(struct udp_listeners *u, unsigned worker)
{
	return &u->fds[worker * u->n_addr];
}

/* Bind want for every worker, into fds[worker * stride], its address into
 * bound ([::] falls back to 0.0.0.0 as at start); for a reload, which hands
 * the sockets to the workers.  0, or -errno with a message in err and
 * nothing left open. */
int udp_listeners_bind(const struct udp_listeners *u, const struct config *cfg,
		       const struct listen_addr *want, int *fds, unsigned stride,
		       struct sockaddr_storage *bound, char *err, size_t errlen);

/* --udp-df on (or off again on) a socket already serving; family is its
 * bound one.  0 or -errno. */
int udp_listener_set_df(int fd, int family, bool on);

void udp_listeners_close_row(struct udp_listeners *u, unsigned worker);
void udp_listeners_free(struct udp_listeners *u);

/* The ports of the slots in `slots` of bound (for the loop check); returns
 * how many. */
unsigned udp_listeners_ports(const struct sockaddr_storage *bound, uint32_t slots,
			     uint16_t *ports, unsigned max);

/* True for a descriptor systemd passed that is a datagram socket (left to
 * the UDP listeners by the stream ones). */
bool udp_passed_is_datagram(int fd);

#endif

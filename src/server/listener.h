/* SPDX-License-Identifier: GPL-2.0-only */
/* Listening sockets: one per address per worker.
 *
 * With several workers each gets its own SO_REUSEPORT socket per address, so
 * the kernel spreads new connections over the workers and no worker ever
 * touches another's accept queue.  Sockets passed by systemd (LISTEN_FDS)
 * cannot be multiplied that way; each worker then gets a dup() of the one
 * socket ("shared"), and whichever worker accepts a connection deals it
 * round-robin over the workers (handoff.h).  Either way a worker owns and
 * closes the descriptors in its own row.
 *
 * A row has CONFIG_MAX_LISTEN slots (-1 where none serves), so that a reload
 * can add and remove addresses without moving the others: engines arm
 * accepts on the slots that hold a socket. */
#ifndef ECHOSRV_LISTENER_H
#define ECHOSRV_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/config.h"
#include "server/udp_listener.h"

struct listeners {
	int *fds;		/* fds[worker * n_addr + addr] */
	unsigned n_addr, n_workers;
	bool shared;		/* every worker holds a dup of the same socket */
	bool activated;		/* the sockets came from systemd */
	struct sockaddr_storage bound[CONFIG_MAX_LISTEN];
	struct udp_listeners udp;	/* the datagram kind (--udp-listen) */
	/* PROXY protocol listeners (--proxy-listen, or a passed socket named
	 * "proxy" by FileDescriptorName=): their connections begin with a
	 * header (server/preamble.h). */
	bool proxy[CONFIG_MAX_LISTEN];
	unsigned n_proxy;
	/* Which slots serve, and the address each was asked for (a reload
	 * keeps a slot whose address is still configured).  The main thread's
	 * own view: a worker learns of a change through server.live. */
	uint32_t used;
	struct listen_addr asked[CONFIG_MAX_LISTEN];
};

/* Bind and listen on every configured address (or adopt systemd's sockets).
 * 0, or -errno with a message naming the address in err. */
int listeners_open(struct listeners *ls, const struct config *cfg, char *err, size_t errlen);

static inline int *listener_row(struct listeners *ls, unsigned worker)
{
	return &ls->fds[worker * ls->n_addr];
}

/* Was connection fd accepted on a proxy listener?  Tells by the address it
 * was accepted on (getsockname), so no engine has to say which listener
 * an accept came from; no system call when there is no proxy listener.
 * Which listeners are proxy ones is fixed at start: a reload may not
 * change it (ops/reload.c refuses). */
bool listeners_is_proxy(const struct listeners *ls, const struct sockaddr_storage *bound, int fd);
/* Bind want for every worker, into fds[worker * stride], its address into
 * bound; for a reload, which hands the sockets to the workers.  0, or
 * -errno with a message in err and nothing left open. */
int listeners_bind(const struct listeners *ls, const struct config *cfg,
		   const struct listen_addr *want, int *fds, unsigned stride,
		   struct sockaddr_storage *bound, char *err, size_t errlen);

/* --keepalive on a listening socket (accepted sockets inherit it); 0 turns
 * it off.  0 or -errno. */
int listener_set_keepalive(int fd, uint32_t secs);

/* Close the descriptors of one worker's row, UDP ones included (idempotent). */
void listeners_close_row(struct listeners *ls, unsigned worker);
void listeners_free(struct listeners *ls);

/* Write the bound addresses, one per line, atomically and safely
 * (safefile.h: no symbolic link, no file of another owner is followed). */
struct safefile;
int listeners_write_port_file(const struct listeners *ls, const char *path, struct safefile *f);

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
/* Reload in place: read the configuration file again and put it in force
 * without closing or stalling a connection (SIGHUP, `echosrvctl reload`).
 *
 * A configuration in force is a struct live (server.h), published whole by
 * one pointer store; each worker loads the pointer once per loop turn and
 * takes all of it (worker.c, take_live()), so no worker ever runs half of
 * one and half of another, and the data path takes no lock.  The reload
 * waits, bounded, until every worker has said it moved on, then frees the
 * old one.  Listeners to add are bound here before anything is published,
 * so a bind failure refuses the whole reload with nothing changed. */
#ifndef ECHOSRV_RELOAD_H
#define ECHOSRV_RELOAD_H

#include <stddef.h>
#include <stdint.h>

struct server;
struct config;
struct sbuf;
struct safefile;

/* The first configuration in force, srv->cfg as started (the listeners are
 * open, the workers not yet created).  cli is the command line, kept for
 * every reload (it overrides the file each time); port_sf the port file,
 * written again when the listeners change.  0 or -ENOMEM. */
int reload_init(struct server *srv, const struct config *cli, struct safefile *port_sf);
/* After the workers have ended. */
void reload_fini(struct server *srv);

/* Read the file and apply it.  0, or -errno with the reason (for a file
 * error: "FILE:LINE: ...") in err and the old configuration kept.  Safe
 * from any thread; reloads are serialised. */
int reload_run(struct server *srv, char *err, size_t errlen);

/* The configuration in force, as a configuration file (show config). */
void reload_show(struct server *srv, struct sbuf *out);
/* --drain-timeout in force. */
uint32_t reload_drain_timeout(struct server *srv);

#endif

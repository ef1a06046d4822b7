/* SPDX-License-Identifier: GPL-2.0-only */
/* `echosrvctl kill ID [WORKER]`: close one connection, reason "admin".
 *
 * Only the worker that owns a connection may touch it, so the control
 * thread does not close anything: it leaves a question in the workers'
 * mailboxes (server/mailbox.h), first "who holds ID?" and then, to the one
 * worker that does, "close ID".  Ids are slot index plus generation within
 * one worker's table, so two workers can hold the same id at once; then
 * the operator names the worker (the `conns` listing shows both).  The
 * generation makes a late request harmless: a slot closed and reused
 * meanwhile has another id. */
#ifndef ECHOSRV_KILL_H
#define ECHOSRV_KILL_H

#include <stddef.h>
#include <stdint.h>

struct server;

#define KILL_ANY_WORKER UINT32_MAX

/* Close connection id on worker (KILL_ANY_WORKER: whichever holds it).
 * 0 with the worker that closed it in *closed_by, or -ENOENT, -EEXIST
 * (held by several workers), -ETIMEDOUT, with a reason in err. */
int kill_conn(struct server *srv, uint64_t id, uint32_t worker, unsigned *closed_by,
	      char *err, size_t errlen);

#endif

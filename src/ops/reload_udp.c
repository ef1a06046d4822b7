/* SPDX-License-Identifier: GPL-2.0-only */
/* A reload's UDP sockets; see reload_udp.h.
 *
 * Shaped as reload.c's stream listeners are, without what only those have
 * (PROXY slots, a listen default): match every new line against the slots
 * serving first, so that no slot still wanted is handed on, then bind the
 * unmatched ones into a free slot, or into one whose address goes (its
 * workers close the old socket and take the new one in the same turn), so
 * that a reload may replace all CONFIG_MAX_LISTEN at once. */
#include "ops/reload_udp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/trace.h"
#include "server/server.h"
#include "server/udp_listener.h"

/* Does want name slot a, as asked (port 0 included) or as bound (the port
 * the log and the port file gave)? */
static bool slot_serves(const struct udp_listeners *u, unsigned a, const struct listen_addr *want)
{
	return (u->asked[a].len == want->len && !memcmp(&u->asked[a].ss, &want->ss, want->len)) ||
	       (want->len && !memcmp(&u->bound[a], &want->ss, want->len));
}

static unsigned free_slot(const struct udp_listeners *u, const struct udp_plan *p)
{
	for (unsigned pass = 0; pass < 2; pass++)
		for (unsigned a = 0; a < CONFIG_MAX_LISTEN; a++)
			if (!((p->keep | p->add | (pass ? 0 : u->used)) & (1u << a)))
				return a;
	return CONFIG_MAX_LISTEN;	/* not with at most CONFIG_MAX_LISTEN lines */
}

void reload_udp_undo(struct live *nl, unsigned n_workers)
{
	for (unsigned i = 0; nl->udp_added && i < n_workers * CONFIG_MAX_LISTEN; i++) {
		if (nl->udp_added[i] >= 0)
			close(nl->udp_added[i]);
		nl->udp_added[i] = -1;
	}
}

static int alloc_added(struct live *nl, unsigned nw)
{
	if (nl->udp_added)
		return 0;
	if (!(nl->udp_added = malloc(sizeof(int) * nw * CONFIG_MAX_LISTEN)))
		return -ENOMEM;
	for (unsigned i = 0; i < nw * CONFIG_MAX_LISTEN; i++)
		nl->udp_added[i] = -1;
	return 0;
}

static int bind_added(struct server *srv, struct live *nl, struct udp_plan *p, uint32_t matched,
		      char *err, size_t errlen)
{
	const struct udp_listeners *u = &srv->ls.udp;
	int r;

	for (unsigned i = 0; i < nl->cfg.n_udp_listen; i++) {
		const struct listen_addr *want = &nl->cfg.udp_listen[i];
		unsigned a;
		if (matched & (1u << i))
			continue;
		if ((r = alloc_added(nl, srv->n_workers)))
			return r;
		if ((a = free_slot(u, p)) == CONFIG_MAX_LISTEN) {
			snprintf(err, errlen, "--udp-listen: no free slot (at most %d)",
				 CONFIG_MAX_LISTEN);
			return -ENOSPC;
		}
		if ((r = udp_listeners_bind(u, &nl->cfg, want, &nl->udp_added[a], CONFIG_MAX_LISTEN,
					    &p->bound[a], err, errlen)))
			return r;
		p->add |= 1u << a;
		p->asked[a] = *want;
	}
	return 0;
}

int reload_udp_plan(struct server *srv, const struct live *cur, struct live *nl,
		    struct udp_plan *p, char *err, size_t errlen)
{
	const struct udp_listeners *u = &srv->ls.udp;
	uint32_t matched = 0;	/* bit i: nl->cfg.udp_listen[i] keeps a slot */
	int r;

	memset(p, 0, sizeof(*p));
	memcpy(nl->udp_bound, cur->udp_bound, sizeof(nl->udp_bound));
	nl->udp_slots = u->used;
	if (u->activated)
		return 0;	/* systemd's sockets (reload.c names it) */
	for (unsigned i = 0; i < nl->cfg.n_udp_listen; i++) {
		for (unsigned a = 0; a < CONFIG_MAX_LISTEN; a++) {
			if ((u->used & ~p->keep & (1u << a)) &&
			    slot_serves(u, a, &nl->cfg.udp_listen[i])) {
				p->keep |= 1u << a;
				matched |= 1u << i;
				break;
			}
		}
	}
	if ((r = bind_added(srv, nl, p, matched, err, errlen))) {
		reload_udp_undo(nl, srv->n_workers);
		return r;
	}
	nl->udp_slots = p->keep | p->add;
	nl->udp_fresh = p->add;
	for (unsigned a = 0; a < CONFIG_MAX_LISTEN; a++)
		if (p->add & (1u << a))
			nl->udp_bound[a] = p->bound[a];
		else if (!(p->keep & (1u << a)))
			memset(&nl->udp_bound[a], 0, sizeof(nl->udp_bound[a]));
	return 0;
}

bool reload_udp_commit(struct server *srv, const struct udp_plan *p)
{
	struct udp_listeners *u = &srv->ls.udp;
	uint32_t gone = u->used & ~p->keep;	/* replaced ones too */
	char text[ADDR_TEXT_MAX];

	if (u->activated || (!p->add && !gone))
		return false;
	for (unsigned a = 0; a < CONFIG_MAX_LISTEN; a++) {
		if (gone & (1u << a)) {
			addr_format((const struct sockaddr *)&u->bound[a], text, sizeof(text));
			log_notice("reload: no longer listening on udp:%s", text);
			memset(&u->bound[a], 0, sizeof(u->bound[a]));
			memset(&u->asked[a], 0, sizeof(u->asked[a]));
		}
		if (p->add & (1u << a)) {
			addr_format((const struct sockaddr *)&p->bound[a], text, sizeof(text));
			log_notice("reload: listening on udp:%s", text);
			u->bound[a] = p->bound[a];
			u->asked[a] = p->asked[a];
		}
	}
	u->used = p->keep | p->add;
	return true;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* Reload in place; see reload.h.
 *
 * The steps, each of which may refuse the reload before anything changed:
 * read and check the file (config_load(), config_finish()); bind the added
 * listeners for every worker, stream and datagram (reload_udp.c); move the
 * metrics endpoint; switch the trace file.  Then publish, wake the workers, and wait for them to take it.
 * What can only change with a restart is put back to what runs and named
 * in one log line, and the rest is still applied. */
#include "ops/reload.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/safefile.h"
#include "core/sbuf.h"
#include "core/trace.h"
#include "core/util.h"
#include "ops/metrics.h"
#include "ops/reload_udp.h"
#include "server/listener.h"
#include "server/server.h"
#include "server/worker.h"

#define TAKE_WAIT_NS (5 * NSEC_PER_SEC)	/* for every worker to move on */

static struct {
	pthread_mutex_t lock;		/* one reload (or show) at a time */
	const struct config *cli;
	struct safefile *port_sf;
	struct live *retired;		/* not yet taken by every worker */
} rl = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void live_free(struct live *l)
{
	if (!l)
		return;
	free(l->added);	/* its sockets are the workers' once published */
	free(l->udp_added);
	config_free(&l->cfg);
	free(l);
}

int reload_init(struct server *srv, const struct config *cli, struct safefile *port_sf)
{
	struct live *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->cfg = srv->cfg;
	l->cfg.text = NULL;	/* srv->cfg keeps its text: its strings live on */
	l->gen = 1;
	l->slots = srv->ls.used;
	memcpy(l->bound, srv->ls.bound, sizeof(l->bound));
	l->udp_slots = srv->ls.udp.used;
	memcpy(l->udp_bound, srv->ls.udp.bound, sizeof(l->udp_bound));
	rl.cli = cli;
	rl.port_sf = port_sf;
	atomic_store(&srv->live, l);
	return 0;
}

void reload_fini(struct server *srv)
{
	live_free(rl.retired);
	rl.retired = NULL;
	live_free(atomic_load(&srv->live));
	atomic_store(&srv->live, NULL);
}

static bool all_taken(struct server *srv, uint64_t gen)
{
	for (unsigned i = 0; i < srv->n_workers; i++)
		if (atomic_load_explicit(&srv->workers[i].live_gen, memory_order_acquire) < gen)
			return false;
	return true;
}

/* Bounded: a worker's loop turns at least at every wake-up. */
static bool wait_taken(struct server *srv, uint64_t gen)
{
	uint64_t until = mono_ns() + TAKE_WAIT_NS;
	struct timespec ms = { 0, 1000000 };

	while (!all_taken(srv, gen)) {
		if (mono_ns() > until)
			return false;
		nanosleep(&ms, NULL);
	}
	return true;
}

/* --- what cannot change in place -------------------------------------------- */

/* Put back what needs a restart and name it in why ("workers, engine"). */
static void keep_restart_only(struct server *srv, const struct config *cur, struct config *nc,
			      char *why, size_t len)
{
	const struct config *st = &srv->cfg;	/* as started: these never change */
	size_t n = 0;

	why[0] = '\0';
#define KEEP(cond, name, restore) do {						\
		if (cond) {							\
			n += (size_t)snprintf(why + n, n < len ? len - n : 0, "%s%s", \
					      n ? ", " : "", name);		\
			restore;						\
		}								\
	} while (0)
	KEEP(nc->workers != st->workers, "workers", nc->workers = st->workers);
	KEEP(nc->engine != st->engine, "engine", nc->engine = st->engine);
	KEEP(nc->cpu_affinity != st->cpu_affinity, "cpu-affinity", nc->cpu_affinity = st->cpu_affinity);
	KEEP(nc->busy_poll != st->busy_poll, "busy-poll", nc->busy_poll = st->busy_poll);
	KEEP(nc->backlog != st->backlog, "backlog", nc->backlog = st->backlog);
	/* UDP (docs/udp.md): the rate table's size is set at start; the
	 * sockets (reload_udp.c), --udp-df and the guard follow a reload. */
	KEEP(nc->udp_sources != st->udp_sources, "udp-sources", nc->udp_sources = st->udp_sources);
	KEEP(!!nc->ctl_path != !!st->ctl_path ||
	     (nc->ctl_path && strcmp(nc->ctl_path, st->ctl_path)), "ctl", (void)0);
	nc->ctl_path = st->ctl_path;
	KEEP(nc->ctl_mode != st->ctl_mode, "ctl-mode", nc->ctl_mode = st->ctl_mode);
	KEEP(!!nc->ctl_group != !!st->ctl_group ||
	     (nc->ctl_group && strcmp(nc->ctl_group, st->ctl_group)), "ctl-group", (void)0);
	nc->ctl_group = st->ctl_group;
	KEEP(!!nc->port_file != !!st->port_file ||
	     (nc->port_file && strcmp(nc->port_file, st->port_file)), "port-file", (void)0);
	nc->port_file = st->port_file;
	KEEP(!!nc->trace_file != !!trace_path(), "trace-file (to or from stderr)",
	     nc->trace_file = cur->trace_file);
	if (srv->ls.activated) {
		KEEP(nc->n_listen != cur->n_listen ||
		     memcmp(nc->listen, cur->listen, sizeof(nc->listen)),
		     "listen (the sockets are systemd's)", (void)0);
		memcpy(nc->listen, cur->listen, sizeof(nc->listen));
		nc->n_listen = cur->n_listen;
		nc->listen_default = cur->listen_default;
	}
	if (srv->ls.udp.activated) {
		KEEP(nc->n_udp_listen != cur->n_udp_listen ||
		     memcmp(nc->udp_listen, cur->udp_listen, sizeof(nc->udp_listen)),
		     "udp-listen (the sockets are systemd's)", (void)0);
		memcpy(nc->udp_listen, cur->udp_listen, sizeof(nc->udp_listen));
		nc->n_udp_listen = cur->n_udp_listen;
	}
#undef KEEP
}

/* --- listeners -------------------------------------------------------------- */

static bool same_addr(const struct listen_addr *a, const struct listen_addr *b)
{
	return a->len == b->len && !memcmp(&a->ss, &b->ss, a->len);
}

struct plan {
	uint32_t keep, add;
	struct sockaddr_storage bound[CONFIG_MAX_LISTEN];
	struct listen_addr asked[CONFIG_MAX_LISTEN];
	struct udp_plan udp;	/* the datagram sockets' */
};

static void close_added(struct live *l, unsigned n_workers)
{
	for (unsigned i = 0; l->added && i < n_workers * CONFIG_MAX_LISTEN; i++)
		if (l->added[i] >= 0)
			close(l->added[i]);
}

/* Does want name the socket of slot a, as asked (port 0 included) or as
 * bound (the port the log and the port file gave)? */
static bool slot_serves(const struct listeners *ls, unsigned a, const struct listen_addr *want)
{
	return same_addr(&ls->asked[a], want) ||
	       (want->len && !memcmp(&ls->bound[a], &want->ss, want->len));
}

/* A slot for an added address: one no listener uses, else one whose
 * listener goes (its worker closes the old socket and takes the new one in
 * the same turn), so that a reload may replace all CONFIG_MAX_LISTEN.  A
 * PROXY listener's slot is never handed on: which slots read PROXY headers
 * is fixed at start. */
static unsigned free_slot(const struct listeners *ls, const struct plan *p)
{
	for (unsigned pass = 0; pass < 2; pass++)
		for (unsigned a = 0; a < CONFIG_MAX_LISTEN; a++)
			if (!((p->keep | p->add | (pass ? 0 : ls->used)) & (1u << a)) &&
			    !ls->proxy[a])	/* that slot stays a PROXY one */
				return a;
	return CONFIG_MAX_LISTEN;
}

/* Match the new addresses to the slots in use (all of them first, so that
 * no slot still wanted is handed to an added one), then bind the others
 * into free slots for every worker.  0, or -errno with nothing left bound. */
static int plan_listeners(struct server *srv, struct live *nl, struct plan *p, char *err,
			  size_t errlen)
{
	struct listeners *ls = &srv->ls;
	unsigned nw = srv->n_workers;
	uint32_t matched = 0;	/* bit i: nl->cfg.listen[i] keeps a slot */

	memset(p, 0, sizeof(*p));
	nl->added = malloc(sizeof(int) * nw * CONFIG_MAX_LISTEN);
	if (!nl->added)
		return -ENOMEM;
	for (unsigned i = 0; i < nw * CONFIG_MAX_LISTEN; i++)
		nl->added[i] = -1;
	if (ls->activated) {
		nl->slots = ls->used;
		return 0;
	}
	for (unsigned i = 0; i < nl->cfg.n_listen; i++) {
		for (unsigned a = 0; a < CONFIG_MAX_LISTEN; a++) {
			if ((ls->used & ~p->keep & (1u << a)) &&
			    slot_serves(ls, a, &nl->cfg.listen[i])) {
				if (ls->proxy[a] != nl->cfg.listen[i].proxy)
					goto proxy_changed;
				p->keep |= 1u << a;
				matched |= 1u << i;
				break;
			}
		}
	}
	for (unsigned i = 0; i < nl->cfg.n_listen; i++) {
		const struct listen_addr *want = &nl->cfg.listen[i];
		unsigned a = free_slot(ls, p);
		if (matched & (1u << i))
			continue;
		if (want->proxy)
			goto proxy_changed;
		if (a == CONFIG_MAX_LISTEN) {	/* only where proxy slots go */
			snprintf(err, errlen, "--listen: no free slot (at most %d, and a PROXY "
				 "listener's slot is not reused until a restart)", CONFIG_MAX_LISTEN);
			close_added(nl, nw);
			return -ENOSPC;
		}
		int r = listeners_bind(ls, &nl->cfg, want, &nl->added[a], CONFIG_MAX_LISTEN,
				       &p->bound[a], err, errlen);
		if (r) {
			close_added(nl, nw);
			return r;
		}
		p->add |= 1u << a;
		p->asked[a] = *want;
	}
	nl->slots = p->keep | p->add;
	nl->fresh = p->add;
	return 0;
proxy_changed:
	/* Which listeners read PROXY headers is fixed at start (the workers'
	 * sets exist only then; listener.h). */
	snprintf(err, errlen, "--proxy-listen cannot change in a reload; restart echosrv for that");
	close_added(nl, nw);
	return -EINVAL;
}

static void log_listeners(struct server *srv, const struct plan *p)
{
	uint32_t gone = srv->ls.used & ~p->keep;	/* replaced ones too */
	char text[ADDR_TEXT_MAX];

	for (unsigned a = 0; a < CONFIG_MAX_LISTEN; a++) {
		if (gone & (1u << a)) {
			addr_format((struct sockaddr *)&srv->ls.bound[a], text, sizeof(text));
			log_notice("reload: no longer listening on %s (its connections carry on)",
				   text);
		}
		if (p->add & (1u << a)) {
			addr_format((const struct sockaddr *)&p->bound[a], text, sizeof(text));
			log_notice("reload: listening on %s", text);
		}
	}
}

/* The main thread's view of the listeners, once the workers have it, and
 * the port file when an address came or went. */
static void commit_listeners(struct server *srv, const struct plan *p)
{
	struct listeners *ls = &srv->ls;
	bool tcp = !ls->activated && (p->add || ls->used != p->keep);

	if (tcp) {
		log_listeners(srv, p);
		for (unsigned a = 0; a < CONFIG_MAX_LISTEN; a++) {
			if (p->add & (1u << a)) {
				ls->bound[a] = p->bound[a];
				ls->asked[a] = p->asked[a];
			}
		}
		ls->used = p->keep | p->add;
	}
	if (!reload_udp_commit(srv, &p->udp) && !tcp)
		return;
	if (srv->cfg.port_file) {
		int r = listeners_write_port_file(ls, srv->cfg.port_file, rl.port_sf);
		if (r)
			log_notice("reload: cannot write port file %s: %s", srv->cfg.port_file,
				   strerror(-r));
	}
}

/* --- metrics and the trace file ----------------------------------------------- */

static int move_metrics(struct server *srv, const struct config *cur, const struct config *nc,
			char *err, size_t errlen)
{
	char ignored[256];

	if (same_addr(&cur->metrics, &nc->metrics))
		return 0;
	metrics_stop();
	if (!nc->metrics.len || !metrics_start(srv, &nc->metrics, err, errlen))
		return 0;
	/* Put the old endpoint back; if even that fails, it is said in the
	 * log and the reload is refused all the same. */
	if (cur->metrics.len && metrics_start(srv, &cur->metrics, ignored, sizeof(ignored)))
		log_notice("reload: %s", ignored);
	return -EADDRINUSE;
}

static int switch_trace(const struct config *cur, const struct config *nc, char *err,
			size_t errlen)
{
	if (!nc->trace_file || !strcmp(nc->trace_file, trace_path())) {
		trace_reopen();	/* SIGHUP's old meaning, for logrotate */
		return 0;
	}
	int r = trace_switch(nc->trace_file);
	if (r)
		snprintf(err, errlen, "--trace-file: cannot open %s: %s", nc->trace_file,
			 strerror(-r));
	return r;
}

/* --- the reload --------------------------------------------------------------- */

static void log_changes(const struct config *cur, const struct config *nc, uint64_t gen)
{
	struct sbuf msg = { .max = 16384 };

	config_diff(cur, nc, &msg);
	char *text = msg.len ? sbuf_take(&msg, NULL) : NULL;
	log_notice("reload: configuration %llu in force%s%s", (unsigned long long)gen,
		   text ? ": " : " (nothing changed)", text ? text : "");
	free(text);
	sbuf_free(&msg);
}

static int prepare(struct server *srv, struct live *cur, struct live *nl, struct plan *p,
		   char *err, size_t errlen)
{
	char why[256];
	int r;

	if ((r = config_load(&nl->cfg, rl.cli, err, errlen)))
		return r;
	if ((r = config_finish(&nl->cfg, err, errlen)))
		return r;
	keep_restart_only(srv, &cur->cfg, &nl->cfg, why, sizeof(why));
	if (why[0])
		log_notice("reload: a restart is needed to change %s; the rest is applied", why);
	if (nl->cfg.max_conns_per_ip && (r = limits_prepare(&srv->limits, nl->cfg.max_conns))) {
		snprintf(err, errlen, "--max-conns-per-ip: %s", strerror(-r));
		return r;
	}
	if ((r = plan_listeners(srv, nl, p, err, errlen)))
		return r;
	if ((r = reload_udp_plan(srv, cur, nl, &p->udp, err, errlen)))
		goto undo_listeners;
	if ((r = move_metrics(srv, &cur->cfg, &nl->cfg, err, errlen)))
		goto undo_udp;
	if ((r = switch_trace(&cur->cfg, &nl->cfg, err, errlen)))
		goto undo_metrics;
	return 0;
undo_metrics:
	move_metrics(srv, &nl->cfg, &cur->cfg, why, sizeof(why));
undo_udp:
	reload_udp_undo(nl, srv->n_workers);
undo_listeners:
	close_added(nl, srv->n_workers);
	return r;
}

static int run_locked(struct server *srv, char *err, size_t errlen)
{
	struct live *cur = atomic_load(&srv->live), *nl;
	struct plan p;
	int r;

	if (server_phase(srv) != PHASE_RUNNING || atomic_load(&srv->failure)) {
		snprintf(err, errlen, "the server is stopping");
		return -ESHUTDOWN;
	}
	/* The control socket answers before start-up has written the port
	 * file (main thread, the same safefile and listeners): a reload waits
	 * for that, and the store of serving after it orders the two. */
	if (!atomic_load(&srv->serving)) {
		snprintf(err, errlen, "echosrv is still starting: reload once it serves");
		return -EAGAIN;
	}
	if (rl.retired) {
		if (!wait_taken(srv, cur->gen)) {
			snprintf(err, errlen, "a worker has not yet taken the previous reload");
			return -EBUSY;
		}
		live_free(rl.retired);
		rl.retired = NULL;
	}
	if (!(nl = calloc(1, sizeof(*nl)))) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	if ((r = prepare(srv, cur, nl, &p, err, errlen))) {
		live_free(nl);
		return r;
	}
	for (unsigned a = 0; a < CONFIG_MAX_LISTEN; a++) {
		if (p.add & (1u << a))
			nl->bound[a] = p.bound[a];
		else if (nl->slots & (1u << a))
			nl->bound[a] = cur->bound[a];
	}
	trace_set(nl->cfg.trace);
	nl->gen = cur->gen + 1;
	atomic_store_explicit(&srv->live, nl, memory_order_release);
	for (unsigned i = 0; i < srv->n_workers; i++)
		worker_wake(&srv->workers[i]);
	log_changes(&cur->cfg, &nl->cfg, nl->gen);
	bool taken = wait_taken(srv, nl->gen);
	commit_listeners(srv, &p);
	if (taken)
		live_free(cur);
	else
		rl.retired = cur;	/* freed by the next reload or at exit */
	return 0;
}

int reload_run(struct server *srv, char *err, size_t errlen)
{
	pthread_mutex_lock(&rl.lock);
	int r = run_locked(srv, err, errlen);
	pthread_mutex_unlock(&rl.lock);
	if (r)
		log_notice("reload refused, the configuration in force is kept: %s", err);
	return r;
}

void reload_show(struct server *srv, struct sbuf *out)
{
	pthread_mutex_lock(&rl.lock);
	config_write(&atomic_load(&srv->live)->cfg, out);
	pthread_mutex_unlock(&rl.lock);
}

uint32_t reload_drain_timeout(struct server *srv)
{
	pthread_mutex_lock(&rl.lock);
	uint32_t t = atomic_load(&srv->live)->cfg.drain_timeout;
	pthread_mutex_unlock(&rl.lock);
	return t;
}

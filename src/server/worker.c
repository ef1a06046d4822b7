/* SPDX-License-Identifier: GPL-2.0-only */
/* Worker thread, admission and timers; see worker.h. */
#include "server/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/acl.h"
#include "core/util.h"

#define ACCEPT_PAUSE_NS (100 * NSEC_PER_MSEC)
#define REJECT_LOG_NS NSEC_PER_SEC
#define SYNC_MIN_NS (100 * NSEC_PER_MSEC)	/* see sync_deferred() */

static const char *const admit_names[] = {
	[ADMIT_OK] = "ok",
	[ADMIT_MAX_CONNS] = "max-conns",
	[ADMIT_PER_IP] = "max-conns-per-ip",
	[ADMIT_ACL] = "acl",
};

int worker_create(struct worker *w, struct server *srv, unsigned id)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->srv = srv;
	w->live = atomic_load(&srv->live);
	w->cfg = &w->live->cfg;
	atomic_store(&w->live_gen, w->live->gen);
	w->idle_ns = (uint64_t)w->cfg->idle_timeout * NSEC_PER_SEC;
	idle_init(&w->idle);
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0)
		return ERR();
	worker_query_init(&w->query);
	int r = handoff_init(&w->handoff);
	if (!r)
		r = preamble_set_init(&w->pre, srv->ls.n_proxy > 0);
	/* Sized for the most --max-conns allows (a few kB of pointers), so a
	 * reload that raises the limit finds room. */
	if (!r && !(r = conn_table_init(&w->conns, CONFIG_MAX_CONNS)))
		conn_table_number(&w->conns, id, srv->n_workers);
	return r;
}

void worker_destroy(struct worker *w)
{
	conn_table_free(&w->conns);
	worker_query_fini(&w->query);
	handoff_fini(&w->handoff);
	preamble_set_fini(&w->pre);
	atomic_store_explicit(&w->stats.headers_waiting, 0, memory_order_relaxed);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	w->wake_fd = -1;
}

void worker_wake(struct worker *w)
{
	uint64_t one = 1;
	ssize_t r = write(w->wake_fd, &one, sizeof(one));
	(void)r;	/* EAGAIN: a wake-up is already pending */
}

/* Worker i runs on the i-th CPU this process may use (modulo their number). */
static void pin(struct worker *w)
{
	cpu_set_t allowed, one;
	int n = 0, want;

	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		return;
	want = (int)(w->id % (unsigned)CPU_COUNT(&allowed));
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed) || n++ != want)
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		int r = pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
		if (r)
			TRACE(TR_ERROR, "worker %u: cannot pin to CPU %d: %s", w->id, cpu, strerror(r));
		else
			TRACE(TR_INFO, "worker %u: pinned to CPU %d", w->id, cpu);
		return;
	}
}

static void close_on_failure(struct conn *c, void *arg)
{
	struct worker *w = arg;

	if (c->state != CONN_CLOSING)
		w->srv->engine->close(w, c, CLOSE_ERROR);
}

/* The loop is gone: nobody would serve or close this worker's connections
 * again, so close them now (what the engine cannot close, fini() or the
 * exit does) and make the whole process stop with status 1.  A restart of
 * the worker alone would have to rebuild state the loop held when it
 * broke; systemd's Restart=on-failure restarts the whole, cleanly. */
static void worker_failed(struct worker *w, int err)
{
	uint64_t none = 0;

	log_notice("worker %u: event loop failed: %s; closing its %u connections and stopping "
		   "the server (exit status 1)", w->id, strerror(-err), w->conns.active);
	conn_table_each(&w->conns, close_on_failure, w);
	atomic_compare_exchange_strong(&w->srv->failure, &none,
				       (uint64_t)(w->id + 1) << 32 | (uint32_t)-err);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct server *srv = w->srv;
	char name[16];

	snprintf(name, sizeof(name), "echosrv-w%u", w->id);
	pthread_setname_np(pthread_self(), name);
	if (srv->cfg.cpu_affinity)
		pin(w);
	w->now = mono_ns();
	w->init_result = srv->engine->init(w);
	sem_post(&srv->ready);
	if (!w->init_result) {
		TRACE(TR_INFO, "worker %u: running (engine %s)", w->id, srv->engine->name);
		int r = srv->engine->run(w);
		if (r)
			worker_failed(w, r);
		TRACE(TR_INFO, "worker %u: stopped", w->id);
	}
	srv->engine->fini(w);	/* also after a failed init: it unwinds what was set up */
	handoff_close(&w->handoff);	/* from now on the dealers serve their own */
	listeners_close_row(&srv->ls, w->id);
	worker_query_gone(w);
	atomic_fetch_sub(&srv->running, 1);
	pthread_kill(srv->main_thread, SIGUSR1);	/* main may be waiting for us */
	return NULL;
}

int worker_start(struct worker *w)
{
	int r = pthread_create(&w->thread, NULL, worker_main, w);
	return -r;
}

/* Rejections are logged at most once a second per worker: the first one
 * at once, the rest as a count in the next line. */
static uint32_t reject_log_pending(const struct reject_log *l)
{
	uint32_t total = 0;

	for (unsigned i = 0; i < ARRAY_SIZE(l->suppressed); i++)
		total += l->suppressed[i];
	return total;
}

static void reject_log_flush(struct worker *w)
{
	struct reject_log *l = &w->rlog;
	uint32_t total = reject_log_pending(l);

	if (total)
		TRACE_AS(TR_ERROR, 4, "WARNING",
		      "worker %u: %u more connections rejected (max-conns %u, max-conns-per-ip %u, acl %u)",
		      w->id, total, l->suppressed[ADMIT_MAX_CONNS], l->suppressed[ADMIT_PER_IP],
		      l->suppressed[ADMIT_ACL]);
	memset(l->suppressed, 0, sizeof(l->suppressed));
	l->last = w->now;
}

static void reject(struct worker *w, enum admit why, const struct ipaddr *ip, uint16_t port,
		   const char *text)
{
	switch (why) {
	case ADMIT_MAX_CONNS: STAT_ADD(&w->stats, rej_max_conns, 1); break;
	case ADMIT_PER_IP:    STAT_ADD(&w->stats, rej_per_ip, 1); break;
	default:              STAT_ADD(&w->stats, rej_acl, 1); break;
	}
	PROBE(reject, w->id, ip->family, ip->bytes, port, admit_names[why]);
	TRACE(TR_CONN, "close conn=- peer=%s worker=%u in=0 out=0 duration=0.000s reason=%s",
	      text, w->id, why == ADMIT_ACL ? "acl" : "limit");
	if (!trace_on(TR_ERROR))
		return;
	if (w->rlog.last && w->now - w->rlog.last < REJECT_LOG_NS) {
		w->rlog.suppressed[why]++;
		return;
	}
	reject_log_flush(w);
	if (why == ADMIT_ACL)
		TRACE_AS(TR_ERROR, 5, "NOTICE", "worker %u: rejected connection from %s: %s", w->id,
			 text, admit_names[why]);
	else
		TRACE_AS(TR_ERROR, 4, "WARNING", "worker %u: rejected connection from %s: %s", w->id,
			 text, admit_names[why]);
}

void worker_reject_close(int fd)
{
	/* Reset rather than FIN: a flood of refused peers leaves no TIME_WAIT
	 * state behind on the server. */
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* " via=BALANCER", and " id=..." for a v2 UNIQUE_ID (as it is when it is
 * printable without spaces, else in hex), for the accept line. */
static void via_text(const struct preamble *pre, char *out, size_t len)
{
	const struct proxy_header *h = &pre->parser.hdr;
	bool plain = true;
	size_t n;

	memcpy(out, " via=", 5);
	addr_format((const struct sockaddr *)&pre->via, out + 5, ADDR_TEXT_MAX);
	if (!h->unique_id_len)
		return;
	for (unsigned i = 0; i < h->unique_id_len; i++)
		plain &= h->unique_id[i] > 0x20 && h->unique_id[i] < 0x7f;
	n = strlen(out);
	n += (size_t)snprintf(out + n, len - n, " id=%s", plain ? "" : "0x");
	for (unsigned i = 0; i < h->unique_id_len && n + 3 < len; i++)
		n += (size_t)snprintf(out + n, len - n, plain ? "%c" : "%02x", h->unique_id[i]);
}

/* Admit fd from sa.  pre: it came through a PROXY header (sa is the
 * client's address, or the balancer's for a health check): its place under
 * --max-conns was taken at accept (limits_reserve()). */
static struct conn *admit(struct worker *w, int fd, const struct sockaddr *sa,
			  const struct preamble *pre)
{
	struct ipaddr ip;
	char text[ADDR_TEXT_MAX], via[ADDR_TEXT_MAX + 5 + 4 + 2 * PROXY_UNIQUE_ID_MAX] = "";
	uint16_t port = ntohs(((const struct sockaddr_in *)sa)->sin_port);	/* same offset in in6 */
	enum admit why = ADMIT_OK;

	bool counted = false;

	addr_to_ip(sa, &ip);
	if (!acl_permits(&w->cfg->acl, &ip))
		why = ADMIT_ACL;
	else if (w->conn_cap && w->conns.active >= w->conn_cap)
		why = ADMIT_MAX_CONNS;	/* this worker's share is full */
	else
		why = pre ? limits_take_reserved(&w->srv->limits, &ip, w->cfg->max_conns_per_ip,
						 &counted)
			  : limits_take_with(&w->srv->limits, &ip, w->cfg->max_conns,
					     w->cfg->max_conns_per_ip, &counted);
	if (pre && (why == ADMIT_ACL || why == ADMIT_MAX_CONNS))
		limits_unreserve(&w->srv->limits);
	/* Only for what will be printed: formatting costs every accept. */
	if (why != ADMIT_OK || trace_on(TR_CONN))
		addr_format(sa, text, sizeof(text));
	if (why != ADMIT_OK) {
		reject(w, why, &ip, port, text);
		return NULL;
	}
	struct conn *c = conn_alloc(&w->conns);
	if (!c) {
		limits_release_with(&w->srv->limits, &ip, counted);
		STAT_ADD(&w->stats, errors, 1);
		addr_format(sa, text, sizeof(text));
		TRACE(TR_ERROR, "worker %u: no memory for a connection from %s", w->id, text);
		return NULL;
	}
	c->fd = fd;
	c->peer = ip;
	c->port = port;
	c->started = pre ? pre->accepted : w->now;
	memset(&c->via, 0, sizeof(c->via));
	c->pre_read = pre ? pre->parser.got : 0;
	if (pre) {
		addr_to_ip((const struct sockaddr *)&pre->via, &c->via);
		c->via_port = ntohs(((const struct sockaddr_in *)&pre->via)->sin_port);
		if (trace_on(TR_CONN))
			via_text(pre, via, sizeof(via));
	}
	c->cap = w->cfg->conn_buffer;
	c->ip_counted = counted;
	if (w->idle_ns)
		idle_touch(&w->idle, &c->idle, w->now);
	/* Echo each message as soon as it arrives, not when Nagle allows. */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	STAT_ADD(&w->stats, accepted, 1);
	PROBE(accept, conn_id(c), w->id, ip.family, ip.bytes, port);
	TRACE(TR_CONN, "accept conn=%llx peer=%s%s worker=%u", (unsigned long long)conn_id(c), text,
	      via, w->id);
	return c;
}

struct conn *worker_admit(struct worker *w, int fd, const struct sockaddr *sa)
{
	return admit(w, fd, sa, NULL);
}

/* An address as the CONN lines write it (a v4 one as [::ffff:a.b.c.d]
 * turns back into a.b.c.d in addr_format()). */
static void format_ip(const struct ipaddr *ip, uint16_t port, char *text, size_t len)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

	if (ip->family == AF_INET) {
		sa.sin6_addr.s6_addr[10] = sa.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&sa.sin6_addr.s6_addr[12], ip->bytes, 4);
	} else {
		memcpy(&sa.sin6_addr, ip->bytes, 16);
	}
	addr_format((struct sockaddr *)&sa, text, len);
}

void worker_closing(struct worker *w, struct conn *c, enum close_reason why)
{
	c->reason = (uint8_t)why;
	conn_set_state(c, CONN_CLOSING);
	idle_remove(&c->idle);
}

void worker_closed(struct worker *w, struct conn *c)
{
	switch (c->reason) {
	case CLOSE_IDLE:  STAT_ADD(&w->stats, idle_closes, 1); break;
	case CLOSE_RESET: STAT_ADD(&w->stats, resets, 1); break;
	case CLOSE_ERROR: STAT_ADD(&w->stats, errors, 1); break;
	case CLOSE_DRAIN: STAT_ADD(&w->stats, drain_closes, 1); break;
	default: break;
	}
	STAT_ADD(&w->stats, closed, 1);
	stats_closed(&w->stats, c->reason, w->now - c->started);
	PROBE(close, conn_id(c), w->id, c->bytes_in, c->bytes_out, close_reason_name(c->reason));
	if (trace_on(TR_CONN)) {
		char text[ADDR_TEXT_MAX], via[ADDR_TEXT_MAX + 5] = "";
		format_ip(&c->peer, c->port, text, sizeof(text));
		if (c->via.family) {
			memcpy(via, " via=", 5);
			format_ip(&c->via, c->via_port, via + 5, sizeof(via) - 5);
		}
		uint64_t d = w->now - c->started;
		trace_emit(TR_CONN,
			   "close conn=%llx peer=%s%s worker=%u in=%llu out=%llu duration=%llu.%03llus reason=%s",
			   (unsigned long long)conn_id(c), text, via, w->id,
			   (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
			   (unsigned long long)(d / NSEC_PER_SEC),
			   (unsigned long long)(d % NSEC_PER_SEC / NSEC_PER_MSEC),
			   close_reason_name(c->reason));
	}
	limits_release_with(&w->srv->limits, &c->peer, c->ip_counted);
	conn_release(&w->conns, c);
	if (w->accept_resume)
		w->accept_resume = w->now;	/* a descriptor is free: try again */
}

bool worker_accept_failed(struct worker *w, int err)
{
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		TRACE(TR_INFO, "worker %u: accept: %s", w->id, strerror(err));
		return false;
	}
	STAT_ADD(&w->stats, accept_pauses, 1);
	TRACE(TR_ERROR, "worker %u: accept: %s; pausing accepts for %llu ms", w->id,
	      strerror(err), (unsigned long long)(ACCEPT_PAUSE_NS / NSEC_PER_MSEC));
	w->accept_resume = w->now + ACCEPT_PAUSE_NS;
	atomic_store_explicit(&w->paused, true, memory_order_relaxed);
	return true;
}

/* Socket activation: deal accepted connections round-robin over every
 * worker (handoff.h).  True when fd went to another worker's queue. */
static bool deal(struct worker *w, int fd)
{
	struct server *srv = w->srv;
	unsigned n = srv->ls.n_workers;

	if (!srv->ls.shared)
		return false;
	struct worker *to = &srv->workers[(w->id + w->dealt++) % n];
	if (to == w || handoff_push(&to->handoff, fd))
		return false;	/* ours, or that queue is full or gone: serve it here */
	worker_wake(to);
	return true;
}

/* --- proxy listeners: the PROXY header before admission (preamble.h) --- */

/* A connection from a proxy listener that is not served: counted, traced
 * as the balancer's, closed (untrusted ones reset, like other refusals).
 * CLOSE_PEER is a health check that closed before sending anything. */
static void proxy_refuse(struct worker *w, int fd, const struct sockaddr *via,
			 enum close_reason why, uint64_t since, const char *detail)
{
	char text[ADDR_TEXT_MAX];
	uint64_t d = w->now - since;

	switch (why) {
	case CLOSE_PEER:            STAT_ADD(&w->stats, proxy_health, 1); break;
	case CLOSE_PROXY_UNTRUSTED: STAT_ADD(&w->stats, rej_proxy_untrusted, 1); break;
	case CLOSE_PROXY_TIMEOUT:   STAT_ADD(&w->stats, rej_proxy_timeout, 1); break;
	default:                    STAT_ADD(&w->stats, rej_proxy_bad, 1); break;
	}
	if (trace_on(TR_CONN | TR_INFO))
		addr_format(via, text, sizeof(text));
	TRACE(TR_CONN, "close conn=- peer=%s worker=%u in=0 out=0 duration=%llu.%03llus reason=%s",
	      text, w->id, (unsigned long long)(d / NSEC_PER_SEC),
	      (unsigned long long)(d % NSEC_PER_SEC / NSEC_PER_MSEC), close_reason_name(why));
	if (detail)
		TRACE(TR_INFO, "worker %u: PROXY header from %s refused: %s", w->id, text, detail);
	if (why == CLOSE_PROXY_UNTRUSTED)
		worker_reject_close(fd);
	else
		close(fd);
	if (w->accept_resume)
		w->accept_resume = w->now;	/* a descriptor is free: try again */
}

/* The client bytes read with the end of its header (preamble.h), for an
 * engine without adopt_with: echoed now, before the engine takes the
 * socket, so they go out ahead of all that follows.  They are at most
 * PREAMBLE_SCRATCH bytes and never more than --conn-buffer (header_read_max()),
 * on a socket that has sent nothing yet, and a send buffer is never
 * smaller than about 4.5 KiB, so they fit whole; only a host out of TCP
 * memory (or a peer that reset meanwhile) refuses them, and then the
 * connection is cut with a reset, so the client sees an error, never a
 * silent gap. */
static bool echo_extra(struct worker *w, struct conn *c, const struct preamble *e)
{
	if (!e->n_extra)
		return true;
	worker_recv(w, c, e->n_extra);
	ssize_t n = send(c->fd, e->extra, e->n_extra, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n > 0)
		worker_sent(w, c, (uint32_t)n);
	if (n == (ssize_t)e->n_extra)
		return true;
	bool reset = n < 0 && (errno == ECONNRESET || errno == EPIPE);
	if (!reset)
		TRACE(TR_ERROR, "worker %u: conn=%llx: the %u bytes sent with the PROXY header "
		      "could not be echoed: %s", w->id, (unsigned long long)conn_id(c), e->n_extra,
		      n < 0 ? strerror(errno) : "the send buffer took part");
	worker_closing(w, c, reset ? CLOSE_RESET : CLOSE_ERROR);
	worker_reject_close(c->fd);
	worker_closed(w, c);
	return false;
}

/* Hand an admitted PROXY connection to the engine, the bytes read with its
 * header first. */
static void start_echo(struct worker *w, struct conn *c, const struct preamble *e)
{
	const struct engine_ops *eng = w->srv->engine;

	if (e->n_extra && eng->adopt_with) {
		worker_recv(w, c, e->n_extra);
		eng->adopt_with(w, c, e->extra, e->n_extra);
	} else if (echo_extra(w, c, e)) {
		eng->adopt(w, c);
	}
}

/* The header is complete or refused: admit the client, or close. */
static void proxy_finished(struct preamble *e, void *arg)
{
	struct worker *w = arg;
	const struct proxy_header *h = &e->parser.hdr;
	struct conn *c;

	if (e->state == PRE_GONE && e->parser.got == 0) {
		/* Closed without a byte: a balancer's plain TCP check (cloud
		 * balancers send no header on theirs), not a bad header. */
		limits_unreserve(&w->srv->limits);
		proxy_refuse(w, e->fd, (const struct sockaddr *)&e->via, CLOSE_PEER, e->accepted, NULL);
	} else if (e->state != PRE_DONE) {
		limits_unreserve(&w->srv->limits);
		proxy_refuse(w, e->fd, (const struct sockaddr *)&e->via, CLOSE_PROXY_BAD, e->accepted,
			     e->state == PRE_BAD ? e->parser.reason : "closed before the header ended");
	} else {
		/* A health check (LOCAL, UNKNOWN) is served as the balancer's own. */
		if (h->local)
			STAT_ADD(&w->stats, proxy_health, 1);
		else
			STAT_ADD(&w->stats, proxied, 1);
		const struct sockaddr *sa = (const struct sockaddr *)(h->local ? &e->via : &h->src);
		if ((c = admit(w, e->fd, sa, e)))
			start_echo(w, c, e);
		else
			worker_reject_close(e->fd);
	}
	preamble_free(e);
}

static bool proxy_trusted(const struct config *cfg, const struct sockaddr *sa)
{
	struct ipaddr ip;

	addr_to_ip(sa, &ip);
	for (unsigned i = 0; i < cfg->n_proxy_from; i++)
		if (cidr_match(&cfg->proxy_from[i], &ip))
			return true;
	return false;
}

/* The most one read of a header takes: what comes with its end is held
 * (io_uring) or sent at once, within the bound of the connection it
 * becomes, under the configuration in force. */
static uint32_t header_read_max(const struct config *cfg)
{
	return MIN(PREAMBLE_SCRATCH, cfg->conn_buffer);
}

/* The set changed size: publish it for stats and the metrics. */
static void headers_waiting(struct worker *w)
{
	atomic_store_explicit(&w->stats.headers_waiting, w->pre.n, memory_order_relaxed);
}

/* Accepted on a proxy listener: only from a trusted balancer, and it takes
 * its place under --max-conns now (the per-address share waits for the
 * address).  The wait for the header is bounded by --proxy-timeout, and by
 * the idle timeout if that is shorter: it runs from the accept. */
static void proxy_accepted(struct worker *w, int fd, const struct sockaddr *sa)
{
	const struct config *cfg = w->cfg;	/* the one in force (a reload may change it) */
	uint64_t wait = (uint64_t)cfg->proxy_timeout * NSEC_PER_SEC;
	struct ipaddr ip;
	int err;

	if (!proxy_trusted(cfg, sa)) {
		proxy_refuse(w, fd, sa, CLOSE_PROXY_UNTRUSTED, w->now, NULL);
		return;
	}
	addr_to_ip(sa, &ip);
	if (limits_reserve(&w->srv->limits, cfg->max_conns) != ADMIT_OK) {
		char text[ADDR_TEXT_MAX];
		addr_format(sa, text, sizeof(text));
		reject(w, ADMIT_MAX_CONNS, &ip, ntohs(((const struct sockaddr_in *)sa)->sin_port), text);
		worker_reject_close(fd);
		return;
	}
	/* From the configuration, not w->idle_ns: an engine that keeps its
	 * own idle deadlines (sockmap) leaves that at 0. */
	if (cfg->idle_timeout)
		wait = MIN(wait, (uint64_t)cfg->idle_timeout * NSEC_PER_SEC);
	struct preamble *e = preamble_add(&w->pre, fd, sa, w->now, w->now + wait,
					  header_read_max(cfg), &err);
	headers_waiting(w);
	if (e) {
		proxy_finished(e, w);
	} else if (err) {
		limits_unreserve(&w->srv->limits);
		STAT_ADD(&w->stats, errors, 1);
		TRACE(TR_ERROR, "worker %u: cannot wait for a PROXY header: %s", w->id, strerror(-err));
		worker_reject_close(fd);
	}
}

void worker_preamble_ready(struct worker *w)
{
	preamble_ready(&w->pre, header_read_max(w->cfg), proxy_finished, w);
	headers_waiting(w);
}

/* Headers past their deadline; at the end of a drain, every one. */
static void proxy_expire(struct worker *w, uint64_t until)
{
	struct preamble *e;

	while ((e = preamble_expired(&w->pre, until))) {
		limits_unreserve(&w->srv->limits);
		proxy_refuse(w, e->fd, (const struct sockaddr *)&e->via, CLOSE_PROXY_TIMEOUT,
			     e->accepted, "not complete in time");
		preamble_free(e);
	}
	headers_waiting(w);
}

static void serve(struct worker *w, int fd, const struct sockaddr *sa)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct conn *c;

	if (!sa) {
		if (getpeername(fd, (struct sockaddr *)&ss, &len)) {
			close(fd);	/* already reset by the peer */
			return;
		}
		sa = (const struct sockaddr *)&ss;
	}
	if (w->pre.epfd >= 0 && listeners_is_proxy(&w->srv->ls, w->live->bound, fd)) {
		proxy_accepted(w, fd, sa);
		return;
	}
	if ((c = worker_admit(w, fd, sa)))
		w->srv->engine->adopt(w, c);
	else
		worker_reject_close(fd);
}

void worker_accepted(struct worker *w, int fd, const struct sockaddr *sa)
{
	if (!deal(w, fd))
		serve(w, fd, sa);
}

/* Connections other workers dealt to this one: all of them at once (the
 * queue is bounded), so none waits for another wake-up. */
static void take_dealt(struct worker *w)
{
	int fds[HANDOFF_MAX];
	unsigned n = handoff_take(&w->handoff, fds, HANDOFF_MAX);

	for (unsigned i = 0; i < n; i++)
		serve(w, fds[i], NULL);
}

#define ACCEPT_BATCH 64

void worker_accept_batch(struct worker *w, int lfd)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		/* A full worker on a shared socket steps aside so that the
		 * others accept; on its own SO_REUSEPORT socket nobody else
		 * would, so it accepts and refuses (worker_admit()). */
		if (w->conn_cap && w->conns.active >= w->conn_cap && w->srv->ls.shared) {
			w->srv->engine->set_accepting(w, false);
			w->accept_resume = w->now + ACCEPT_PAUSE_NS;
			return;
		}
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (worker_accept_failed(w, errno)) {
				w->srv->engine->set_accepting(w, false);
				return;
			}
			continue;
		}
		worker_accepted(w, fd, (struct sockaddr *)&ss);
	}
}

/* Does a report (stats, metrics, the connection list) wait for this
 * worker's counters?  Only engines whose counters lag (engine_ops.sync). */
static bool sync_wanted(const struct worker *w)
{
	return w->srv->engine->sync &&
	       ((atomic_load_explicit(&w->query.pending, memory_order_relaxed) &&
		 atomic_load_explicit(&w->query.wants_sync, memory_order_relaxed)) ||
		atomic_load_explicit(&w->sync_req, memory_order_relaxed) !=
		atomic_load_explicit(&w->sync_done, memory_order_relaxed));
}

/* A refresh walks every connection, so however many scrapes come, a worker
 * refreshes at most once per SYNC_MIN_NS; the reports that come sooner
 * wait for that one (report_refresh()).  So a report is never older than
 * its request, and scrapes cost the data path a bounded share of time. */
static bool sync_deferred(const struct worker *w)
{
	return w->srv->engine->sync && w->now < w->sync_next;
}

int worker_timeout_ms(const struct worker *w)
{
	uint64_t next = UINT64_MAX;
	struct idle_node *old = w->idle_ns ? idle_oldest(&w->idle) : NULL;

	if (sync_wanted(w))
		next = w->sync_next;
	if (old)
		next = MIN(next, old->last_rx + w->idle_ns);
	if (w->accept_resume)
		next = MIN(next, w->accept_resume);
	next = MIN(next, preamble_next_deadline(&w->pre));
	if (w->draining)
		next = MIN(next, atomic_load(&w->srv->drain_deadline));
	if (reject_log_pending(&w->rlog))
		next = MIN(next, w->rlog.last + REJECT_LOG_NS);
	if (w->pre.more)
		next = w->now;		/* headers left ready by the last batch */
	if (next == UINT64_MAX)
		return -1;
	if (next <= w->now)
		return 0;
	return (int)MIN((next - w->now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC, 1u << 30);
}

static void close_for_drain(struct conn *c, void *arg)
{
	struct worker *w = arg;

	if (c->state == CONN_OPEN || c->state == CONN_FLUSHING)
		w->srv->engine->close(w, c, CLOSE_DRAIN);
}

void worker_tick(struct worker *w)
{
	const struct engine_ops *e = w->srv->engine;
	struct idle_node *old;
	const struct live *l = atomic_load_explicit(&w->srv->live, memory_order_acquire);

	if (unlikely(l != w->live))
		worker_take_live(w, l);
	while (w->idle_ns && (old = idle_oldest(&w->idle)) && old->last_rx + w->idle_ns <= w->now)
		e->close(w, (struct conn *)old, CLOSE_IDLE);
	if (w->pre.more)
		worker_preamble_ready(w);
	if (w->pre.n)
		proxy_expire(w, w->now);
	if (w->accept_resume && w->accept_resume <= w->now && !w->draining) {
		w->accept_resume = 0;
		atomic_store_explicit(&w->paused, false, memory_order_relaxed);
		e->set_accepting(w, true);
	}
	if (reject_log_pending(&w->rlog) && w->now - w->rlog.last >= REJECT_LOG_NS)
		reject_log_flush(w);
	atomic_store_explicit(&w->alive, w->now, memory_order_relaxed);
	bool deferred = sync_deferred(w);
	if (unlikely(sync_wanted(w)) && !deferred) {
		uint64_t req = atomic_load_explicit(&w->sync_req, memory_order_relaxed);
		e->sync(w);
		STAT_ADD(&w->stats, refreshes, 1);
		w->sync_next = w->now + SYNC_MIN_NS;
		atomic_store(&w->sync_done, req);
	}
	if (unlikely(atomic_load_explicit(&w->query.pending, memory_order_relaxed)) &&
	    !(deferred && atomic_load_explicit(&w->query.wants_sync, memory_order_relaxed)))
		worker_query_answer(w);
	if (unlikely(atomic_load_explicit(&w->handoff.pending, memory_order_relaxed)))
		take_dealt(w);
	if (!w->draining && server_phase(w->srv) != PHASE_RUNNING) {
		w->draining = true;
		w->accept_resume = 0;
		atomic_store_explicit(&w->paused, false, memory_order_relaxed);
		e->stop_accepting(w);
		listeners_close_row(&w->srv->ls, w->id);
		TRACE(TR_INFO, "worker %u: draining %u connections", w->id, w->conns.active);
	}
	if (w->draining && w->now >= atomic_load(&w->srv->drain_deadline) && w->pre.n)
		proxy_expire(w, UINT64_MAX);
	if (w->draining && w->now >= atomic_load(&w->srv->drain_deadline) && w->conns.active)
		conn_table_each(&w->conns, close_for_drain, w);
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* Statistics: each counter is listed once here and exists once per worker.
 *
 * Only the owning worker writes its counters, so an increment is a relaxed
 * load and store (a plain add on x86, no lock prefix); readers on other
 * threads (stats, metrics) sum the workers with relaxed loads when asked.
 * Nothing on the data path touches a cache line another worker writes. */
#ifndef ECHOSRV_STATS_H
#define ECHOSRV_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* X(field, name, help).  Counters: name is the Prometheus name without the
 * "echosrv_" prefix, and also the key in `echosrvctl stats`.  Rejections:
 * name is the reason, reported as echosrv_rejected_total{reason="..."} and
 * under "rejected" in `stats`. */
#define STATS_COUNTERS(X)                                                            \
	X(accepted, "connections_total", "Connections accepted and served")         \
	X(closed, "connections_closed_total", "Served connections that have closed") \
	X(bytes_in, "bytes_received_total", "Bytes received from peers")            \
	X(bytes_out, "bytes_sent_total", "Bytes echoed back to peers")              \
	X(idle_closes, "idle_closes_total", "Connections closed by the idle timeout") \
	X(resets, "resets_total", "Connections ended by a reset from the peer")     \
	X(errors, "errors_total", "Connections ended by a send or receive error")   \
	X(drain_closes, "drain_closes_total", "Connections cut at the drain timeout") \
	X(accept_pauses, "accept_pauses_total", "Accepting paused: out of descriptors") \
	X(refreshes, "report_refreshes_total", "Counter refreshes a worker made for reports") \
	X(proxied, "proxy_connections_total", "Connections admitted with a client address from a PROXY header") \
	X(proxy_health, "proxy_health_checks_total", "PROXY connections without a client address (v2 LOCAL, v1 UNKNOWN): balancer health checks") \
	STATS_UDP(X)

/* UDP echo (docs/udp.md): datagrams and bytes received (all of them) and
 * echoed. */
#define STATS_UDP(X)                                                                 \
	X(udp_in, "udp_datagrams_received_total", "UDP datagrams received")         \
	X(udp_out, "udp_datagrams_sent_total", "UDP datagrams echoed")              \
	X(udp_bytes_in, "udp_bytes_received_total", "UDP payload bytes received")   \
	X(udp_bytes_out, "udp_bytes_sent_total", "UDP payload bytes echoed")        \
	X(udp_gro, "udp_gro_receives_total", "UDP receives of several datagrams coalesced (UDP_GRO)")

/* UDP drops, one per reason of core/udp_guard.h: name is the reason, as
 * echosrv_udp_dropped_total{reason="..."} and under "udp_dropped" in
 * `stats`. */
#define STATS_UDP_DROPS(X)                                                           \
	X(udp_drop_low_port, "low-port", "source port below 1024")                  \
	X(udp_drop_loop, "loop", "source port is one echosrv serves")               \
	X(udp_drop_bad_source, "bad-source", "bad source or destination")           \
	X(udp_drop_rate, "rate", "source over --udp-rate")                          \
	X(udp_drop_acl, "acl", "refused by --allow/--deny")                         \
	X(udp_drop_too_big, "too-big", "larger than --udp-max-size")                \
	X(udp_drop_truncated, "truncated", "truncated by the kernel")               \
	X(udp_drop_send_full, "send-full", "reply dropped: send queue full")        \
	X(udp_drop_send_error, "send-error", "reply dropped: send failed")

#define STATS_REJECTS(X)                                                             \
	X(rej_max_conns, "max_conns", "--max-conns reached")                        \
	X(rej_per_ip, "max_conns_per_ip", "--max-conns-per-ip reached")             \
	X(rej_acl, "acl", "refused by --allow/--deny")                              \
	X(rej_proxy_bad, "proxy_bad", "PROXY header malformed, or the connection ended before it") \
	X(rej_proxy_untrusted, "proxy_untrusted", "PROXY listener connection not from --proxy-from") \
	X(rej_proxy_timeout, "proxy_timeout", "PROXY header not complete within --proxy-timeout")

#define STATS_FIELDS(X) STATS_COUNTERS(X) STATS_REJECTS(X) STATS_UDP_DROPS(X)

/* Closes are counted per enum close_reason (conn.h), up to this many
 * reasons; the metrics name each by close_reason_name(). */
#define STATS_CLOSE_REASONS 16

/* Connection durations, upper bounds of the histogram's buckets in
 * milliseconds: from a millisecond to four hours (+Inf is implied). */
#define STATS_DURATION_BOUNDS_MS                                               \
	{ 1, 5, 25, 100, 500, 1000, 5000, 30000, 60000, 300000, 900000, 3600000, 14400000 }
#define STATS_DURATION_BUCKETS 14	/* the bounds above, and +Inf */

struct stats {
#define X(f, p, h) _Atomic uint64_t f;
	STATS_FIELDS(X)
#undef X
	/* Not in the X-list (they are not plain counters in `stats`): */
	_Atomic uint64_t closes[STATS_CLOSE_REASONS];	/* by enum close_reason */
	_Atomic uint64_t duration[STATS_DURATION_BUCKETS];	/* not cumulative */
	_Atomic uint64_t duration_ns;	/* sum of the durations observed */
	_Atomic uint64_t busy_ns;	/* time the loop spent outside its wait */
	/* A gauge: connections accepted on a proxy listener whose header has
	 * not come yet (server/preamble.h).  They hold a --max-conns place
	 * but are in no connection count until the header admits them. */
	_Atomic uint64_t headers_waiting;
};


#define STAT_ADD(s, f, v)                                                      \
	atomic_store_explicit(&(s)->f,                                         \
			      atomic_load_explicit(&(s)->f, memory_order_relaxed) + (v), \
			      memory_order_relaxed)

#define STAT_GET(s, f) atomic_load_explicit(&(s)->f, memory_order_relaxed)

/* Count a served connection's close: its reason and how long it lived. */
static inline void stats_closed(struct stats *s, unsigned reason, uint64_t ns)
{
	static const uint32_t bounds[] = STATS_DURATION_BOUNDS_MS;
	unsigned b = 0;

	while (b < sizeof(bounds) / sizeof(bounds[0]) && ns > bounds[b] * 1000000ull)
		b++;
	STAT_ADD(s, duration[b], 1);
	STAT_ADD(s, duration_ns, ns);
	if (reason < STATS_CLOSE_REASONS)
		STAT_ADD(s, closes[reason], 1);
}

/* Add every counter of src into the plain sums in dst. */
struct stats_sum {
#define X(f, p, h) uint64_t f;
	STATS_FIELDS(X)
#undef X
	uint64_t headers_waiting;
};

static inline void stats_accumulate(struct stats_sum *dst, const struct stats *src)
{
#define X(f, p, h) dst->f += STAT_GET(src, f);
	STATS_FIELDS(X)
#undef X
	dst->headers_waiting += STAT_GET(src, headers_waiting);
}

#endif

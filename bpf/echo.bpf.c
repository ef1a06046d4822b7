/* SPDX-License-Identifier: GPL-2.0-only */
/* The sockmap engine's data path: an sk_skb stream verdict program that
 * echoes every skb a connection receives by redirecting it to the egress of
 * the same socket, so the bytes never reach user space.
 *
 * Why it checks room first: a redirected skb is queued on the socket's psock
 * and sent by a kernel work item; that queue has no limit, and once the skb
 * has left the receive queue TCP no longer counts it, so a peer that sends
 * without reading would make the kernel queue everything it sends.  So an
 * skb is redirected only while the send queue plus what is still waiting to
 * be written fits in the socket's send buffer.  When it does not, the
 * connection switches to SM_USER: from then on every skb is passed up
 * (SK_PASS), where it is charged to the socket's receive memory, so TCP's
 * own window closes and the peer is throttled; user space reads and echoes
 * it with ordinary backpressure.  Order is kept because the kernel delivers
 * a passed skb to the reader only after every skb queued before it has been
 * written.  User space asks for the connection back (struct sm_ctl) once it
 * holds nothing; the switch happens here, atomically with the verdict of the
 * next skb, and only if user space has read everything ever passed up.
 *
 * Why it cuts the head of some skbs: the verdict is fed by tcp_read_skb(),
 * which hands over whole skbs from the receive queue, assuming they follow
 * each other exactly.  They need not: when a retransmission covers bytes
 * already received (the sender re-sent a segment whose first part got
 * through), TCP queues the new skb whole, starting before rcv_nxt, and
 * leaves it to the reader to skip what it already has (tcp_recvmsg() does,
 * by sequence number).  tcp_read_skb() does not, so those bytes would be
 * echoed twice.  So the program follows the peer's sequence numbers itself
 * (TCP_SKB_CB(skb)->seq, in the kernel's skb) and cuts off whatever it has
 * already handled before it redirects or passes the rest; tcp_eat_skb()
 * then also advances copied_seq by exactly the new bytes.  Should the cut
 * fail, the connection is reported broken and user space resets it: a
 * duplicated or missing byte is never sent.
 *
 * Sockets are inserted by user space after accept (see engine/sockmap/loop.c for
 * why no byte that arrived earlier is lost).  Kernel structures are read
 * with CO-RE field relocations against the running kernel's BTF, so only
 * the few fields used are declared below. */
#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "../src/engine/sockmap/abi.h"

/* Slack for skb overhead (truesize over payload) in the room check. */
#define ROOM_SLACK 8192
/* bpf_skb_adjust_room() removes at most 0xfff bytes a call for sk_skb;
 * this many calls cover any skb TCP queues (64 KiB, or 256 KiB with a
 * larger GRO size). */
#define TRIM_STEP 0xfff
#define TRIM_CALLS 65	/* 65 * 0xfff >= 256 KiB */

struct sock {
	int sk_sndbuf;
	int sk_wmem_queued;
} __attribute__((preserve_access_index));

struct tcp_sock {
	__u32 write_seq;
	__u32 copied_seq;
} __attribute__((preserve_access_index));

/* TCP keeps its per-skb state (struct tcp_skb_cb) in cb: seq first. */
struct sk_buff {
	char cb[48];
} __attribute__((preserve_access_index));

/* max_entries of the maps are set by user space before loading. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u64);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sm_state);
} state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sm_ctl);
} ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

static __always_inline void notify(struct sm_state *st, __u32 kind)
{
	struct sm_event ev = { .conn_id = st->conn_id, .kind = kind };

	/* A full ring only delays the switch's notice to user space: the
	 * socket itself also reports readable passed data. */
	bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);
}

/* Would redirecting len more bytes keep send queue + unwritten backlog
 * within the send buffer?  No socket to look at: let it through. */
static __always_inline int room(struct __sk_buff *skb, struct sm_state *st, __u32 len)
{
	struct bpf_sock *bsk = skb->sk;
	struct tcp_sock *tp;
	struct sock *sk;

	if (!bsk)
		return 1;
	tp = bpf_skc_to_tcp_sock(bsk);
	if (!tp)
		return 1;
	sk = (struct sock *)tp;
	if (!st->inited) {
		st->seq0 = tp->write_seq;
		st->inited = 1;
	}
	__u32 written = tp->write_seq - st->seq0;
	__u32 backlog = (__u32)st->redirected - written;
	__s64 need = (__s64)sk->sk_wmem_queued + 2 * ((__s64)backlog + len) + ROOM_SLACK;

	return need <= sk->sk_sndbuf;
}

/* In SM_USER: may the kernel take the connection back now? */
static __always_inline int may_return(struct __sk_buff *skb, struct sm_state *st, __u64 *key)
{
	struct sm_ctl *c = bpf_map_lookup_elem(&ctl, key);
	struct bpf_sock *bsk = skb->sk;
	struct tcp_sock *tp;

	if (!c || !c->want_kernel || c->consumed != st->passed || !bsk)
		return 0;
	tp = bpf_skc_to_tcp_sock(bsk);
	if (!tp)
		return 0;
	/* User space has written everything it read: rebase the backlog. */
	st->seq0 = tp->write_seq;
	st->redirected = 0;
	st->inited = 1;
	return room(skb, st, skb->len);
}

/* Sets *old to how many leading bytes of skb the program has handled
 * already (0 for every in-order skb); 0, or -1 if it cannot tell (the
 * read failed, or the skb starts past what it expects).
 * rcv_next starts at TCP's copied_seq, the first byte user space has not
 * read: what it read before the socket entered the map (a PROXY header,
 * server/preamble.h) is cut off the skb that holds it too, never echoed.
 * Without a tcp_sock to look at, at the first skb. */
static __always_inline int overlap(struct __sk_buff *skb, struct sm_state *st, __u32 *old)
{
	__u32 seq;
	__s32 ahead;

	/* An sk_skb program's context is the kernel's struct sk_buff itself
	 * (its __sk_buff fields are rewritten into sk_buff loads), so TCP's
	 * cb lies at the CO-RE offset of sk_buff.cb from it.  Read through
	 * bpf_probe_read_kernel(), which the verifier allows with CAP_PERFMON
	 * (needed anyway, see engine/sockmap/bpf.c) on any kernel since 5.5, where
	 * bpf_cast_to_kern_ctx() would need 6.2. */
	if (bpf_probe_read_kernel(&seq, sizeof(seq),
				  (void *)skb + bpf_core_field_offset(struct sk_buff, cb)))
		return -1;
	if (!st->rcv_inited) {
		struct bpf_sock *bsk = skb->sk;
		struct tcp_sock *tp = bsk ? bpf_skc_to_tcp_sock(bsk) : NULL;
		__u32 first = seq;

		/* Read into the stack: a plain load here gets merged with the
		 * one of seq, which the verifier refuses (two pointer types). */
		if (tp && bpf_probe_read_kernel(&first, sizeof(first), &tp->copied_seq))
			first = seq;
		st->rcv_next = first;
		st->rcv_inited = 1;
	}
	ahead = (__s32)(st->rcv_next - seq);
	/* The receive queue has no holes: an skb that starts after rcv_next
	 * means the count is off, and every later cut would be wrong. */
	if (ahead < 0)
		return -1;
	*old = (__u32)ahead < skb->len ? (__u32)ahead : skb->len;
	return 0;
}

/* Remove the first n bytes of skb; 0 or -1. */
static __always_inline int trim_head(struct __sk_buff *skb, __u32 n)
{
	for (int i = 0; i < TRIM_CALLS && n; i++) {
		__u32 step = n < TRIM_STEP ? n : TRIM_STEP;

		if (bpf_skb_adjust_room(skb, -(__s32)step, 0, 0))
			return -1;
		n -= step;
	}
	return n ? -1 : 0;
}

SEC("sk_skb/stream_verdict")
int echo_verdict(struct __sk_buff *skb)
{
	__u64 key = bpf_get_socket_cookie(skb);
	struct sm_state *st = bpf_map_lookup_elem(&state, &key);
	__u32 len = skb->len, old;

	if (!st)
		return SK_PASS;	/* being torn down: never echo blindly */
	/* The peer's FIN can come as an skb without data: sending that from
	 * the psock's queue fails and breaks the connection with EPIPE. */
	if (!len || st->broken)
		return SK_DROP;
	if (overlap(skb, st, &old) || (old && trim_head(skb, old))) {
		st->broken = 1;
		notify(st, SM_EV_BROKEN);
		return SK_DROP;
	}
	if (old) {
		st->trimmed += old;
		len -= old;
		if (!len)
			return SK_DROP;
	}
	st->rcv_next += len;
	st->seen += len;
	if (st->mode == SM_USER) {
		if (!may_return(skb, st, &key)) {
			st->passed += len;
			return SK_PASS;
		}
		st->mode = SM_KERNEL;
		notify(st, SM_EV_TO_KERNEL);
	} else if (!room(skb, st, len)) {
		st->mode = SM_USER;
		st->passed += len;
		notify(st, SM_EV_TO_USER);
		return SK_PASS;
	}
	st->redirected += len;
	return bpf_sk_redirect_hash(skb, &socks, &key, 0);
}

/* The kernel reads "GPL" as GPL v2, this file's (and the project's) license,
 * and only a GPL-compatible program may call GPL-only helpers such as
 * bpf_probe_read_kernel() above: a string the kernel does not accept would
 * make it refuse to load the program. */
char LICENSE[] SEC("license") = "GPL";

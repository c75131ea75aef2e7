//go:build ignore

// shim6gw kernel fast path: one TC (TCX ingress) program for the LAN
// interface and every uplink. It handles only packets of established
// contexts whose handling it is sure of and hands everything else to the
// kernel unchanged (FP_PASS), where the gateway's policy rules route it
// into the TUN device and the Go data plane (package rewrite).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>

#define AF_INET6 10
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char __license[] SEC("license") = "Dual MIT/GPL";

#define IP6_LEN 40
#define SHIM_LEN 8
#define ETH_LEN 14
#define NH_HOPOPTS 0
#define NH_TCP 6
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_AH 51
#define NH_ICMPV6 58
#define NH_DSTOPTS 60
#define NH_SHIM6 140
#define TCP_SYN 0x02

// FP_PASS hands a packet on unchanged: TCX_NEXT runs the programs
// attached after this one, and after the last the kernel's stack, where
// the gateway's rules route it into the TUN.
#define FP_PASS (-1)

// Flags in struct fp_config.
#define FP_REDIRECT 1 // forward with a FIB lookup; else only report TC_ACT_REDIRECT (BPF_PROG_TEST_RUN)

// Outcomes, the index of the stats map. Keep in step with fastpath.Verdict.
enum fp_verdict {
	FP_FAST_OUT_SHIM = 0, // ULIDs → locators, payload header inserted
	FP_FAST_IN_STRIP,     // payload header stripped, ULIDs restored
	FP_FAST_OUT_PASS,     // context on the ULID pair, stamped and forwarded
	FP_FAST_IN_PASS,      // plain packet of a context, stamped and forwarded
	FP_TUN_NOT_IPV6,      // not Ethernet + IPv6, or a length the Go path would trim or drop
	FP_TUN_NO_CONTEXT,    // no context for the pair
	FP_TUN_EXT_HEADER,    // extension headers: the Go path finds where the payload header goes
	FP_TUN_CONTROL,       // Next Header 140 without P bit, or a payload header the Go path drops
	FP_TUN_TAG,           // unknown context tag or locator pair not in the context
	FP_TUN_ICMP_ERROR,    // ICMPv6 error: may need translation (RFC 5533 §8)
	FP_TUN_TCP_SYN,       // TCP SYN (MSS clamping) or a TCP header too short to tell
	FP_TUN_GSO,           // GSO skb that would need the payload header in every segment
	FP_TUN_TOO_BIG,       // over the uplink MTU with the payload header: Packet Too Big
	FP_TUN_FALLBACK,      // destination is a fallback locator (translation)
	FP_TUN_HOP_LIMIT,     // hop limit would expire: the kernel answers
	FP_TUN_NO_ROUTE,      // FIB lookup failed
	FP_TUN_NO_NEIGH,      // next hop's neighbour entry not valid (unresolved, or flushed at carrier loss)
	FP_TUN_HELPER,        // a helper failed before the packet changed
	FP_DROP_HELPER,       // a helper failed after the packet changed
	FP_NUM_VERDICTS,
};

// Only there so that bpf2go -type fp_verdict finds the enum in BTF.
const enum fp_verdict *fp_verdict_unused __attribute__((unused));

struct pair_key {
	__u8 local[16];
	__u8 peer[16];
};

// out_ctx is a context found by its ULID pair (outbound, and inbound
// packets without payload header).
struct out_ctx {
	__u8 local_loc[16];
	__u8 peer_loc[16];
	__u8 peer_tag[6]; // payload header bytes 2..7: P bit and CT(peer)
	__u8 shimmed;
	__u8 pad;
	__u32 mtu;
	__u32 slot; // index in stamps
};

// in_ctx is a context found by CT(local).
struct in_ctx {
	__u8 local_ulid[16];
	__u8 peer_ulid[16];
	__u32 slot;
	__u32 pad;
};

#define SIDE_LOCAL 0
#define SIDE_PEER 1

// loc_key says that addr is an accepted locator of side of the context
// whose CT(local) is tag.
struct loc_key {
	__u64 tag;
	__u8 side;
	__u8 pad[7];
	__u8 addr[16];
};

struct stamp {
	__u64 last_sent, last_recv; // bpf_ktime_get_ns
	__u64 sent, recv;
};

struct stat {
	__u64 packets, bytes;
};

struct fp_config {
	__u32 flags;
	__u32 tun_ifindex; // FIB lookups route as if the packet left the TUN
};

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[16];
};

#define MAX_CONTEXTS 65536
#define MAX_FALLBACK (1 << 20)
// Each context's stamps are kept once per shard, a CPU writing to its own
// (cpu mod STAMP_SHARDS), so that CPUs forwarding the same context do not
// bounce one cache line per packet; Harvest adds the shards up.
#define STAMP_SHARDS 4

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 256);
	__type(key, struct lpm_key);
	__type(value, __u8);
} sites SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); // memory follows the contexts
	__uint(max_entries, MAX_CONTEXTS);
	__type(key, struct pair_key);
	__type(value, struct out_ctx);
} by_pair SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); // memory follows the contexts
	__uint(max_entries, MAX_CONTEXTS);
	__type(key, __u64);
	__type(value, struct in_ctx);
} by_tag SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); // memory follows the contexts
	__uint(max_entries, 8 * MAX_CONTEXTS);
	__type(key, struct loc_key);
	__type(value, __u8);
} locators SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); // memory follows the contexts
	__uint(max_entries, MAX_FALLBACK);
	__type(key, __u8[16]);
	__type(value, __u8);
} fallback_locs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_CONTEXTS * STAMP_SHARDS);
	__type(key, __u32);
	__type(value, struct stamp);
} stamps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_NUM_VERDICTS);
	__type(key, __u32);
	__type(value, struct stat);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_config);
} config SEC(".maps");

struct ip6 {
	__u8 vtc[4];
	__be16 plen;
	__u8 nh;
	__u8 hlim;
	__u8 src[16];
	__u8 dst[16];
};

static __always_inline int count(struct __sk_buff *skb, __u32 v, int ret)
{
	struct stat *s = bpf_map_lookup_elem(&stats, &v);
	if (s) {
		s->packets++;
		s->bytes += skb->len - ETH_LEN;
	}
	return ret;
}

static __always_inline int is_ext(__u8 nh)
{
	return nh == NH_HOPOPTS || nh == NH_ROUTING || nh == NH_FRAGMENT || nh == NH_AH ||
	       nh == NH_DSTOPTS || nh == NH_SHIM6;
}

static __always_inline void copy16(__u8 *d, const __u8 *s)
{
	__builtin_memcpy(d, s, 16);
}

// tcp_unsure reports whether the TCP header at off is a SYN whose MSS the
// Go path may clamp, or too short to tell.
static __always_inline int tcp_unsure(struct __sk_buff *skb, __u32 off, __u32 end)
{
	__u8 flags;
	if (off + 20 > end || bpf_skb_load_bytes(skb, off + 13, &flags, 1) < 0)
		return 1;
	return flags & TCP_SYN;
}

static __always_inline void stamp(__u32 slot, int sent)
{
	__u32 i = slot * STAMP_SHARDS + (bpf_get_smp_processor_id() % STAMP_SHARDS);
	struct stamp *st = bpf_map_lookup_elem(&stamps, &i);
	if (!st)
		return;
	__u64 now = bpf_ktime_get_ns();
	// Another CPU may share the shard: the counts stay atomic.
	if (sent) {
		st->last_sent = now;
		__sync_fetch_and_add(&st->sent, 1);
	} else {
		st->last_recv = now;
		__sync_fetch_and_add(&st->recv, 1);
	}
}

// route looks up where the kernel would send a packet from src to dst
// that came out of the TUN device (the gateway's policy rules), leaving
// the egress and the Ethernet addresses in fib. It returns a verdict
// index or -1 on success.
//
// A next hop without a valid neighbour entry goes to the TUN path: the
// program never parks a packet in a neighbour queue. Redirected with
// bpf_redirect_neigh, the skb would wait there for resolution, up to
// 3 s (mcast_solicit × retrans_time) when it never comes, as after a
// carrier loss: the kernel flushes the link's neighbours but keeps its
// routes, so until the next table publish the lookup still picks it. On
// veths the skb is the sending host's own, and TCP does not retransmit a
// segment whose skb is still queued in the host (skb_still_in_host_queue):
// the flow would stall for those 3 s. The TUN path copies the packet and
// frees the original at once.
static __always_inline int route(struct __sk_buff *skb, struct fp_config *cfg, struct ip6 *h,
				 const __u8 *src, const __u8 *dst, __u32 tot_len,
				 struct bpf_fib_lookup *fib)
{
	if (h->hlim <= 1)
		return FP_TUN_HOP_LIMIT;
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET6;
	fib->l4_protocol = h->nh;
	fib->tot_len = tot_len;
	fib->ifindex = cfg->tun_ifindex;
	copy16((__u8 *)fib->ipv6_src, src);
	copy16((__u8 *)fib->ipv6_dst, dst);
	long rc = bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return FP_TUN_NO_NEIGH;
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return FP_TUN_TOO_BIG;
	return FP_TUN_NO_ROUTE;
}

// forward sends the rewritten packet out of the interface route found;
// macs_done says the caller already wrote the Ethernet addresses.
static __always_inline int forward(struct __sk_buff *skb, struct fp_config *cfg,
				   struct bpf_fib_lookup *fib, __u32 v, int macs_done)
{
	if (!(cfg->flags & FP_REDIRECT))
		return count(skb, v, TC_ACT_REDIRECT);
	if (!macs_done) {
		__u8 macs[12];
		__builtin_memcpy(macs, fib->dmac, 6);
		__builtin_memcpy(macs + 6, fib->smac, 6);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
			return count(skb, FP_DROP_HELPER, TC_ACT_SHOT);
	}
	return count(skb, v, bpf_redirect(fib->ifindex, 0));
}

// put_macs fills eth with the addresses of the route lookup and reports
// whether it did (not when only reporting the verdict).
static __always_inline int put_macs(struct fp_config *cfg, struct bpf_fib_lookup *fib, __u8 *eth)
{
	if (!(cfg->flags & FP_REDIRECT))
		return 0;
	__builtin_memcpy(eth, fib->dmac, 6);
	__builtin_memcpy(eth + 6, fib->smac, 6);
	eth[12] = ETH_P_IPV6 >> 8;
	eth[13] = ETH_P_IPV6 & 0xff;
	return 1;
}

// store_forward writes the rebuilt Ethernet + IPv6 header hdr (the
// Ethernet addresses too when the next hop's are known: one store), stamps
// the context and forwards: the common end of the two rewriting verdicts.
static __always_inline int store_forward(struct __sk_buff *skb, struct fp_config *cfg,
					 struct bpf_fib_lookup *fib, __u8 *hdr, __u32 len, __u32 slot,
					 int sent, __u32 verdict)
{
	int macs = put_macs(cfg, fib, hdr);
	__u32 off = macs ? 0 : ETH_LEN;
	if (bpf_skb_store_bytes(skb, off, hdr + off, len - off, BPF_F_RECOMPUTE_CSUM) < 0)
		return count(skb, FP_DROP_HELPER, TC_ACT_SHOT);
	stamp(slot, sent);
	return forward(skb, cfg, fib, verdict, macs);
}

static __always_inline int is_site(const __u8 *a)
{
	struct lpm_key k = {.prefixlen = 128};
	copy16(k.addr, a);
	return bpf_map_lookup_elem(&sites, &k) != NULL;
}

static __always_inline int outbound(struct __sk_buff *skb, struct fp_config *cfg, struct ip6 *h,
				    __u32 end)
{
	struct pair_key pk;
	copy16(pk.local, h->src);
	copy16(pk.peer, h->dst);
	struct out_ctx *c = bpf_map_lookup_elem(&by_pair, &pk);
	if (!c)
		return count(skb, FP_TUN_NO_CONTEXT, FP_PASS);
	if (is_ext(h->nh))
		return count(skb, FP_TUN_EXT_HEADER, FP_PASS);
	if (h->nh == NH_TCP && tcp_unsure(skb, ETH_LEN + IP6_LEN, end))
		return count(skb, FP_TUN_TCP_SYN, FP_PASS);
	struct bpf_fib_lookup fib = {};
	int v;
	if (!c->shimmed) {
		if (cfg->flags & FP_REDIRECT) {
			if ((v = route(skb, cfg, h, h->src, h->dst, 0, &fib)) >= 0)
				return count(skb, v, FP_PASS);
			h->hlim--;
			if (bpf_skb_store_bytes(skb, ETH_LEN + 7, &h->hlim, 1, 0) < 0)
				return count(skb, FP_TUN_HELPER, FP_PASS);
		}
		stamp(c->slot, 1);
		return forward(skb, cfg, &fib, FP_FAST_OUT_PASS, 0);
	}
	if (skb->gso_segs > 1 || skb->gso_size)
		return count(skb, FP_TUN_GSO, FP_PASS);
	__u32 len = end - ETH_LEN;
	if (len + SHIM_LEN > c->mtu)
		return count(skb, FP_TUN_TOO_BIG, FP_PASS);
	if (cfg->flags & FP_REDIRECT) {
		if ((v = route(skb, cfg, h, c->local_loc, c->peer_loc, len + SHIM_LEN, &fib)) >= 0)
			return count(skb, v, FP_PASS);
		h->hlim--;
	}
	struct {
		__u8 eth[ETH_LEN];
		struct ip6 ip;
		__u8 shim[8];
	} n;
	_Static_assert(sizeof(n) == ETH_LEN + IP6_LEN + SHIM_LEN, "no padding");
	__builtin_memcpy(&n.ip, h, IP6_LEN);
	n.shim[0] = h->nh;
	n.shim[1] = 0;
	__builtin_memcpy(&n.shim[2], c->peer_tag, 6);
	n.ip.nh = NH_SHIM6;
	n.ip.plen = bpf_htons(bpf_ntohs(h->plen) + SHIM_LEN);
	copy16(n.ip.src, c->local_loc);
	copy16(n.ip.dst, c->peer_loc);
	__u32 slot = c->slot;
	if (bpf_skb_adjust_room(skb, SHIM_LEN, BPF_ADJ_ROOM_NET, 0) < 0)
		return count(skb, FP_TUN_HELPER, FP_PASS);
	// One store for the header, and the Ethernet addresses if known.
	return store_forward(skb, cfg, &fib, (__u8 *)&n, sizeof(n), slot, 1, FP_FAST_OUT_SHIM);
}

static __always_inline int inbound_shim(struct __sk_buff *skb, struct fp_config *cfg, struct ip6 *h,
					__u32 end)
{
	__u8 sh[8];
	if (ETH_LEN + IP6_LEN + SHIM_LEN > end ||
	    bpf_skb_load_bytes(skb, ETH_LEN + IP6_LEN, sh, sizeof(sh)) < 0)
		return count(skb, FP_TUN_CONTROL, FP_PASS);
	if (!(sh[2] & 0x80) || sh[1] != 0)
		return count(skb, FP_TUN_CONTROL, FP_PASS);
	struct loc_key lk = {};
	lk.tag = ((__u64)(sh[2] & 0x7f) << 40) | ((__u64)sh[3] << 32) | ((__u64)sh[4] << 24) |
		 ((__u64)sh[5] << 16) | ((__u64)sh[6] << 8) | (__u64)sh[7];
	struct in_ctx *c = bpf_map_lookup_elem(&by_tag, &lk.tag);
	if (!c)
		return count(skb, FP_TUN_TAG, FP_PASS);
	lk.side = SIDE_PEER;
	copy16(lk.addr, h->src);
	if (!bpf_map_lookup_elem(&locators, &lk))
		return count(skb, FP_TUN_TAG, FP_PASS);
	lk.side = SIDE_LOCAL;
	copy16(lk.addr, h->dst);
	if (!bpf_map_lookup_elem(&locators, &lk))
		return count(skb, FP_TUN_TAG, FP_PASS);
	__u8 next = sh[0];
	if (next == NH_TCP && tcp_unsure(skb, ETH_LEN + IP6_LEN + SHIM_LEN, end))
		return count(skb, FP_TUN_TCP_SYN, FP_PASS);
	struct {
		__u8 eth[ETH_LEN];
		struct ip6 ip;
	} e;
	_Static_assert(sizeof(e) == ETH_LEN + IP6_LEN, "no padding");
	struct ip6 *n = &e.ip;
	__builtin_memcpy(n, h, IP6_LEN);
	n->nh = next;
	n->plen = bpf_htons(bpf_ntohs(h->plen) - SHIM_LEN);
	copy16(n->src, c->peer_ulid);
	copy16(n->dst, c->local_ulid);
	__u32 slot = c->slot;
	struct bpf_fib_lookup fib = {};
	int v;
	if (cfg->flags & FP_REDIRECT) {
		if ((v = route(skb, cfg, n, n->src, n->dst, end - ETH_LEN - SHIM_LEN, &fib)) >= 0)
			return count(skb, v, FP_PASS);
		n->hlim--;
	}
	if (bpf_skb_adjust_room(skb, -SHIM_LEN, BPF_ADJ_ROOM_NET, 0) < 0)
		return count(skb, FP_TUN_HELPER, FP_PASS);
	return store_forward(skb, cfg, &fib, (__u8 *)&e, sizeof(e), slot, 0, FP_FAST_IN_STRIP);
}

static __always_inline int inbound(struct __sk_buff *skb, struct fp_config *cfg, struct ip6 *h,
				   __u32 end)
{
	if (h->nh == NH_SHIM6)
		return inbound_shim(skb, cfg, h, end);
	if (is_ext(h->nh))
		return count(skb, FP_TUN_EXT_HEADER, FP_PASS);
	if (h->nh == NH_ICMPV6) {
		__u8 type;
		if (ETH_LEN + IP6_LEN + 1 > end ||
		    bpf_skb_load_bytes(skb, ETH_LEN + IP6_LEN, &type, 1) < 0 || type < 128)
			return count(skb, FP_TUN_ICMP_ERROR, FP_PASS);
	}
	if (bpf_map_lookup_elem(&fallback_locs, h->dst))
		return count(skb, FP_TUN_FALLBACK, FP_PASS);
	struct pair_key pk;
	copy16(pk.local, h->dst);
	copy16(pk.peer, h->src);
	struct out_ctx *c = bpf_map_lookup_elem(&by_pair, &pk);
	if (!c)
		return count(skb, FP_TUN_NO_CONTEXT, FP_PASS);
	if (h->nh == NH_TCP && tcp_unsure(skb, ETH_LEN + IP6_LEN, end))
		return count(skb, FP_TUN_TCP_SYN, FP_PASS);
	__u32 slot = c->slot;
	struct bpf_fib_lookup fib = {};
	int v;
	if (cfg->flags & FP_REDIRECT) {
		if ((v = route(skb, cfg, h, h->src, h->dst, 0, &fib)) >= 0)
			return count(skb, v, FP_PASS);
		h->hlim--;
		if (bpf_skb_store_bytes(skb, ETH_LEN + 7, &h->hlim, 1, 0) < 0)
			return count(skb, FP_TUN_HELPER, FP_PASS);
	}
	stamp(slot, 0);
	return forward(skb, cfg, &fib, FP_FAST_IN_PASS, 0);
}

SEC("tc")
int shim6gw_fastpath(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct fp_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return FP_PASS;
	struct ip6 h;
	__u32 end = skb->len;
	if (skb->protocol != bpf_htons(ETH_P_IPV6) || end < ETH_LEN + IP6_LEN ||
	    bpf_skb_load_bytes(skb, ETH_LEN, &h, sizeof(h)) < 0 || (h.vtc[0] >> 4) != 6 ||
	    ETH_LEN + IP6_LEN + bpf_ntohs(h.plen) != end)
		return count(skb, FP_TUN_NOT_IPV6, FP_PASS);
	if (is_site(h.src))
		return outbound(skb, cfg, &h, end);
	return inbound(skb, cfg, &h, end);
}

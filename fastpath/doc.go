// Package fastpath is shim6gw's kernel fast path: an eBPF program, attached
// with TCX at ingress of the LAN interface and of every uplink, that
// forwards the packets of established contexts without crossing the TUN
// device. The TUN path (package rewrite) stays the path for everything
// else and the reference the program is tested against: for any packet,
// the program either emits exactly the bytes rewrite.Rewriter would, or
// hands the packet on unchanged (TCX_NEXT: to programs attached after it,
// then the kernel's stack), where the gateway's policy rules route it into
// the TUN as before.
//
// # TCX, not XDP
//
// XDP sees frames before GRO, TC sees skbs after it. The program runs at
// TC (TCX ingress, kernel 6.6) because:
//
//   - Passthrough contexts must forward at kernel speed, GSO super-packets
//     included. An XDP program on a veth turns off the peer's GSO and TSO
//     and needs XDP on the egress device to redirect; at TC a GRO-merged
//     skb is redirected whole and segmented (or TSO'd) at the egress.
//   - The rewrite needs helpers only TC has: bpf_skb_adjust_room grows and
//     shrinks the skb after the IPv6 header, keeping checksum-offload
//     state (CHECKSUM_PARTIAL offsets, CHECKSUM_COMPLETE sums) right, and
//     bpf_fib_lookup plus bpf_redirect forward through the kernel's policy
//     routing and neighbour table, as Cilium does.
//   - The kernel has no GSO handler for Next Header 140, so it must never
//     get a GSO skb carrying a payload header. At TC the program sees
//     whether an skb is GSO (gso_size) and sends such a shimmed-context skb
//     to the TUN path, which segments it; inbound, shimmed packets are
//     never GRO-merged, so every one is a single frame the program strips.
//
// # What the program does
//
// The direction comes from the source address, as rewrite.Table.DirectionOf
// decides it (site prefixes in an LPM trie). Fast verdicts:
//
//   - outbound, context on its ULID pair (passthrough): stamp last-sent,
//     forward unchanged;
//   - outbound, shimmed context: rewrite to the current locators, insert
//     the 8-byte payload header with CT(peer), stamp, forward;
//   - inbound payload header with P bit: known CT(local), locator pair in
//     the context's sets: strip, restore the ULIDs, stamp, forward;
//   - inbound plain packet of a context's ULID pair: stamp, forward.
//
// Everything else goes to the TUN path unchanged, counted by reason:
// extension headers, control messages, unknown tags and locator
// mismatches, ICMPv6 errors, TCP SYNs (MSS clamping) and TCP headers too
// short to tell, packets that would exceed the uplink MTU (Packet Too
// Big), fallback locators, GSO skbs of shimmed contexts, expiring hop
// limits, missing routes, next hops without a valid neighbour entry.
// Forwarding decrements the hop limit once, like kernel forwarding.
//
// The program never parks a packet in a neighbour queue (no
// bpf_redirect_neigh): after a carrier loss the route lookup still picks
// the dead link until the failover's publish, and a packet queued for its
// flushed neighbour would be held 3 s; a local TCP sender does not
// retransmit a segment whose skb is still held, so the flow stalled.
//
// Routes are looked up with bpf_fib_lookup as if the rewritten packet came
// out of the TUN device, so the rules the gateway installs for the TUN
// path (iif tun from P_X → table upX; iif tun → main) choose the egress.
// Packets the program forwards skip netfilter's prerouting, forward and
// postrouting hooks (as with Cilium's host routing), so the gateway's
// dataplane.fastpath auto leaves the program off where netfilter filters
// forwarded IPv6 (docs/architecture.md §6a).
//
// # Maps
//
// Maps.Apply mirrors each table the gateway publishes (same rewrite.Config,
// same rewrite.Table) into hash maps keyed by ULID pair, CT(local), the
// accepted locators and the fallback locators; Maps.Harvest folds the
// program's per-context stamps into the contexts' rewrite.Stamps, so REAP
// sees one set of last-sent / last-received times. The maps hold
// Options.MaxContexts contexts (the gateway's limits.max_contexts);
// beyond that the rest stay on the TUN path. Nothing is pinned: the
// program is attached through bpf_links owned by the process, which the
// kernel removes when the process dies; Cleanup removes leftovers by name.
//
// The object is compiled by bpf2go (go generate) with Debian 12's clang 14
// and committed; .ci/run regenerates it and fails on a difference.
package fastpath

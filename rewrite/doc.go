// Package rewrite is the per-packet data plane of shim6gw: it classifies
// IPv6 packets, inserts and strips the Shim6 Payload Extension Header
// (RFC 5533 §5.2, §11, §12), rewrites ULIDs to locators and back, clamps
// the TCP MSS of SYNs, answers oversized packets with ICMPv6 Packet Too Big,
// translates ICMPv6 errors that quote shimmed packets (RFC 5533 §8) and
// translates flows of peers without Shim6 onto a live uplink (docs/architecture.md §7).
//
// Everything works in place on a caller's buffer: the packet is
// buf[start:end] and buf[:start] is headroom of at least 8 bytes. Inserting
// the payload header moves only the IPv6 header (plus any routing-related
// extension headers, RFC 5533 §4.6) 8 bytes into the headroom; stripping
// moves it back. Payload bytes are never copied. Process returns a Result
// with the verdict and the new packet bounds; it never allocates, never
// blocks and writes only inside buf.
//
// A TUN pipeline that writes a whole batch at one offset re-slices each
// buffer after Process so that Result.Start lands on that offset: read at
// offset 32, write at offset 16 (≥ the 10-byte virtio header wireguard-go
// needs), and pass buf[res.Start-16:res.End], since Start moves by ±8.
// Transport checksums must be complete (not offload-partial) for the
// incremental updates to hold.
//
// The control plane describes contexts, uplinks and fallback mappings in a
// Config, builds an immutable Table with NewTable and publishes it with
// Rewriter.Publish; workers read it through an atomic pointer without locks.
// Per-context traffic stamps (Stamps) are shared between successive tables
// so that REAP (RFC 5534) sees continuous last-sent / last-received times.
// Outbound packets find their context by ULID pair, inbound payload by
// CT(local); a forked context (FII ≠ 0, RFC 5533 §4.2) is InboundOnly: it
// shares the pair of the FII 0 context and is found by its tag only.
//
//	outbound (LAN → uplink), context with a shimmed pair:
//
//	  headroom  [IPv6 src=ULID(l) dst=ULID(p) nh=6][TCP ...]
//	     ↓ move 40 bytes 8 to the left, rewrite addresses
//	  [IPv6 src=Loc(l) dst=Loc(p) nh=140][Shim6 nh=6 CT(p)][TCP ...]
//
//	inbound: the mirror image, looked up by CT(local), locators checked.
package rewrite

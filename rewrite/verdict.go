package rewrite

import (
	"net/netip"
	"sync/atomic"

	"github.com/shim6gw/shim6gw/shim6"
)

// Direction says where a packet came from.
type Direction uint8

const (
	// Outbound packets come from a LAN host and leave through an uplink.
	Outbound Direction = iota
	// Inbound packets come from an uplink and go to a LAN host.
	Inbound
	// NumDirections is the number of concrete directions.
	NumDirections
	// Auto lets Process pick Outbound when the source lies in a site
	// prefix (Table.IsLocalAddr) and Inbound otherwise.
	Auto Direction = 255
)

// String returns "outbound", "inbound" or "auto".
func (d Direction) String() string {
	switch d {
	case Outbound:
		return "outbound"
	case Inbound:
		return "inbound"
	case Auto:
		return "auto"
	}
	return "invalid"
}

// Verdict tells the caller what to do with the packet.
type Verdict uint8

const (
	// Forward: write buf[Result.Start:Result.End] back to the TUN.
	Forward Verdict = iota
	// Drop: discard the packet; Result.Reason says why (already counted).
	Drop
	// Divert: a Shim6 control message for the control plane; the packet in
	// buf[Result.Start:Result.End] must be copied before buf is reused.
	Divert
	// Reply: the packet was replaced in place by a gateway-generated
	// packet (ICMPv6 Packet Too Big to the LAN host) in
	// buf[Result.Start:Result.End]; write it to the TUN like Forward.
	Reply
)

// String returns the verdict's name.
func (v Verdict) String() string {
	switch v {
	case Forward:
		return "forward"
	case Drop:
		return "drop"
	case Divert:
		return "divert"
	case Reply:
		return "reply"
	}
	return "invalid"
}

// DropReason is the closed set of reasons for Drop verdicts; they label
// shim6gw_rewrite_dropped_packets_total.
type DropReason uint8

const (
	// NotDropped is the reason of every non-Drop result.
	NotDropped DropReason = iota
	// DropMalformed: not IPv6, shorter than its header, payload length
	// beyond the buffer, jumbogram, or a truncated extension header.
	DropMalformed
	// DropNoHeadroom: fewer than 8 bytes of headroom before the packet.
	DropNoHeadroom
	// DropTooBig: a packet that needs the payload header exceeds the
	// uplink MTU; a Packet Too Big is sent instead when possible.
	DropTooBig
	// DropUnknownTag: payload header with a context tag we do not know
	// (RFC 5533 §12.2; the control plane may answer R1bis, §7.17).
	DropUnknownTag
	// DropLocatorMismatch: payload header whose locator pair is not in
	// Ls(peer) × Ls(local) of the tagged context (docs/architecture.md §3; the check
	// RFC 5533 §12.4 makes for Update, Keepalive and Probe).
	DropLocatorMismatch
	// DropBadPayloadHeader: Next Header 140 with P=1 but Hdr Ext Len ≠ 0
	// or truncated (RFC 5533 §5.2).
	DropBadPayloadHeader
	// DropFragmentedShim: a Shim6 header after a Fragment header, where
	// RFC 5533 §4.6 never puts it; the gateway cannot strip it.
	DropFragmentedShim
	// NumDropReasons is the number of reasons, for counter arrays.
	NumDropReasons
)

// PathKind classifies what Process did; each kind has a packet counter.
type PathKind uint8

const (
	// PathPassthrough: forwarded unchanged (no context, ULID pair, other).
	PathPassthrough PathKind = iota
	// PathOutboundShim: ULIDs → locators, payload header inserted.
	PathOutboundShim
	// PathInboundShim: payload header stripped, ULIDs restored.
	PathInboundShim
	// PathControl: Shim6 control message diverted to the control plane.
	PathControl
	// PathFallbackOut: source ULID translated to a live uplink's locator.
	PathFallbackOut
	// PathFallbackIn: destination locator translated back to the ULID.
	PathFallbackIn
	// PathICMPError: ICMPv6 error whose quoted packet was translated.
	PathICMPError
	// PathTooBig: replaced by an ICMPv6 Packet Too Big to the LAN host.
	PathTooBig
	// PathDropped: dropped; see the DropReason counters.
	PathDropped
	// NumPathKinds is the number of kinds, for counter arrays.
	NumPathKinds
)

// NoticeKind says what the control plane should hear about.
type NoticeKind uint8

const (
	// NoNotice: nothing to report.
	NoNotice NoticeKind = iota
	// NoticeTrafficSeen: outbound traffic for a ULID pair without context
	// (Local = local ULID, Peer = peer ULID); the engine may start one.
	NoticeTrafficSeen
	// NoticeUnknownTag: payload header with an unknown context tag
	// (Local = destination locator, Peer = source locator, Tag = the tag);
	// the engine may answer R1bis (RFC 5533 §7.17).
	NoticeUnknownTag
	// NoticePathError: an ICMPv6 error about a shimmed packet that RFC 5533
	// §8 lets Shim6 act on (Destination Unreachable codes 0, 1, 2, 3, 5,
	// 6 or Time Exceeded). Tag = CT(local) of the context, Local and Peer =
	// the locator pair that failed. The error is still delivered to the
	// host (the §8 "deliver all ICMP" behaviour); the engine may start
	// REAP exploration (RFC 5534).
	NoticePathError
)

// Notice is an event for the control plane, rate-limited per key by the
// Rewriter so that the caller can push it into a bounded channel without
// flooding (drop it if the channel is full).
type Notice struct {
	Kind        NoticeKind
	Local, Peer netip.Addr
	Tag         shim6.ContextTag
}

// Result is the outcome of Process.
type Result struct {
	Verdict Verdict
	// Reason is set for Drop, and is DropTooBig for a Packet Too Big
	// Reply (the original packet was dropped); NotDropped otherwise.
	Reason DropReason
	Path   PathKind
	// Start and End delimit the packet to write (or divert) in buf. They
	// differ from the input when a header was inserted or removed, or a
	// reply was built.
	Start, End int
	Notice     Notice
}

// Stats are the Rewriter's counters, read by the metrics collector at
// scrape time.
type Stats struct {
	Drops   [NumDirections][NumDropReasons]atomic.Uint64
	Packets [NumDirections][NumPathKinds]atomic.Uint64
	// Notices counts notices returned; Suppressed counts notices the rate
	// limiter swallowed.
	Notices, Suppressed atomic.Uint64
}

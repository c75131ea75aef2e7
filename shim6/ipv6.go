package shim6

import (
	"encoding/binary"
	"net/netip"

	"github.com/shim6gw/shim6gw/internal/ip6"
)

// IPv6HeaderLen is the size of the fixed IPv6 header (RFC 8200 §3).
const IPv6HeaderLen = ip6.HeaderLen

// MinMTU is the IPv6 minimum link MTU; whole control packets must not
// exceed it (RFC 5533 §5.1).
const MinMTU = 1280

// MaxControlMessageLen is the longest control message that, sent right
// after a fixed IPv6 header, keeps the packet within 1280 octets (RFC 5533
// §5.1). FinishMessage only enforces MaxMessageLen; senders trim Locator
// Lists or split information to stay under this.
const MaxControlMessageLen = MinMTU - IPv6HeaderLen

// ControlHopLimit is the hop limit of control packets the gateway emits.
const ControlHopLimit = 64

// PutIPv6Header writes a fixed IPv6 header into b[0:40]: version 6,
// traffic class and flow label 0, the given payload length, next header
// and hop limit ControlHopLimit.
func PutIPv6Header(b []byte, src, dst netip.Addr, next uint8, payloadLen int) {
	_ = b[IPv6HeaderLen-1]
	b[0], b[1], b[2], b[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6] = next
	b[7] = ControlHopLimit
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
}

// AppendIPv6Control appends an IPv6 packet from src to dst carrying msg, a
// finished control message, directly after the fixed header (Next Header
// 140).
func AppendIPv6Control(b []byte, src, dst netip.Addr, msg []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, IPv6HeaderLen)...)
	PutIPv6Header(b[start:], src, dst, ProtocolNumber, len(msg))
	return append(b, msg...)
}

// ParseIPv6Control parses a whole IPv6 packet whose fixed header is
// directly followed by a Shim6 control message, checks the addresses
// (RFC 5533 §12.3) and returns them with the parsed message. Packets with
// other extension headers belong to the rewrite package's classifier.
// Offsets in returned *ParseError and *CriticalOptionError values are
// relative to the message, not the packet.
func ParseIPv6Control(pkt []byte) (src, dst netip.Addr, msg Message, err error) {
	if len(pkt) < IPv6HeaderLen || pkt[0]>>4 != 6 || pkt[6] != ProtocolNumber {
		return src, dst, nil, ErrNotIPv6Shim6
	}
	pl := int(binary.BigEndian.Uint16(pkt[4:]))
	if IPv6HeaderLen+pl > len(pkt) {
		return src, dst, nil, &ParseError{Offset: 4, Err: ErrTruncated}
	}
	src = netip.AddrFrom16([16]byte(pkt[8:24]))
	dst = netip.AddrFrom16([16]byte(pkt[24:40]))
	if src.IsMulticast() || src.IsUnspecified() || dst.IsMulticast() || dst.IsUnspecified() {
		return src, dst, nil, ErrBadAddress
	}
	msg, err = ParseMessage(pkt[IPv6HeaderLen : IPv6HeaderLen+pl])
	return src, dst, msg, err
}

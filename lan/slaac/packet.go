package slaac

import (
	"encoding/binary"
	"net/netip"

	"github.com/shim6gw/shim6gw/internal/checksum"
	"github.com/shim6gw/shim6gw/internal/ip6"
)

// Verdict is what Outbound and Inbound did with a packet.
type Verdict uint8

const (
	// Untouched: not a packet of the translation (or not IPv6); pass it on.
	Untouched Verdict = iota
	// Translated: the address was rewritten in place; pass it on.
	Translated
	// Drop: a packet of the translation that cannot be translated
	// (counted in Stats).
	Drop
)

// IPv6 layout (RFC 8200, package ip6) and the protocols whose checksums
// cover the pseudo-header.
const (
	ipv6HeaderLen = ip6.HeaderLen
	offPayloadLen = ip6.OffPayloadLen
	offNextHeader = ip6.OffNextHeader
	offSrc        = ip6.OffSrc
	offDst        = ip6.OffDst
	protoHopByHop = ip6.ProtoHopByHop
	protoTCP      = 6
	protoUDP      = 17
	protoFragment = ip6.ProtoFragment
	protoICMPv6   = ip6.ProtoICMPv6
	protoDstOpts  = ip6.ProtoDstOpts
	icmpHeaderLen = 8
)

// Outbound translates a packet from the LAN, buf[start:end]: a source in
// the SLAAC prefix becomes its entry's ULID. Call it before the shim6
// rewriter, so that the rewriter and the shim6 context only ever see the
// ULID. now is the caller's monotonic clock in nanoseconds. It writes only
// inside buf[start:end] and allocates nothing unless it creates a mapping.
func (tr *Translator) Outbound(buf []byte, start, end int, now int64) Verdict {
	pkt := ipv6Packet(buf, start, end)
	if pkt == nil || [8]byte(pkt[offSrc:offSrc+8]) != tr.prefix {
		return Untouched
	}
	host := [16]byte(pkt[offSrc : offSrc+16])
	m := tr.hosts.Load().m[host]
	if m == nil {
		if m = tr.newMapping(host, now); m == nil {
			tr.stats.DroppedOut.Add(1)
			return Drop
		}
	}
	if m.seen.Load() != now {
		m.seen.Store(now)
	}
	translate(pkt, offSrc, offDst, host, tr.ulids[m.entry-tr.first])
	tr.stats.TranslatedOut.Add(1)
	return Translated
}

// Inbound translates a packet towards the LAN, buf[start:end]: a
// destination ULID of a mapped entry becomes the host's address. Call it
// after the shim6 rewriter (which restored the ULIDs). A packet to an
// entry of the pool that is mapped to nobody is dropped.
func (tr *Translator) Inbound(buf []byte, start, end int, now int64) Verdict {
	pkt := ipv6Packet(buf, start, end)
	if pkt == nil || [8]byte(pkt[offDst:offDst+8]) != tr.ulidPrefix {
		return Untouched
	}
	ulid := [16]byte(pkt[offDst : offDst+16])
	i, ok := tr.byULID[ulid]
	if !ok {
		return Untouched
	}
	m := tr.byEntry[i].Load()
	if m == nil {
		tr.stats.DroppedIn.Add(1)
		return Drop
	}
	if m.seen.Load() != now {
		m.seen.Store(now)
	}
	translate(pkt, offDst, offSrc, ulid, m.host)
	tr.stats.TranslatedIn.Add(1)
	return Translated
}

// Touches reports whether Outbound or Inbound could change pkt: a source
// in the SLAAC prefix or a destination that is a ULID of the range. A GSO
// super-packet that it touches must be split first (its checksum is
// partial, and RFC 1624 updates need complete ones); the traffic of static
// and DHCPv6 hosts keeps its offloads.
func (tr *Translator) Touches(pkt []byte) bool {
	if len(pkt) < ipv6HeaderLen {
		return false
	}
	if [8]byte(pkt[offSrc:offSrc+8]) == tr.prefix {
		return true
	}
	_, ok := tr.byULID[[16]byte(pkt[offDst:offDst+16])]
	return ok
}

// ipv6Packet returns the IPv6 packet in buf[start:end] without link
// padding, or nil when it is not one.
func ipv6Packet(buf []byte, start, end int) []byte {
	if start < 0 || end > len(buf) || end-start < ipv6HeaderLen {
		return nil
	}
	pkt := buf[start:end]
	n := ipv6HeaderLen + int(binary.BigEndian.Uint16(pkt[offPayloadLen:]))
	if pkt[0]>>4 != 6 || n > len(pkt) {
		return nil
	}
	return pkt[:n]
}

// translate rewrites the address at field (offSrc or offDst) of pkt from
// a to b and updates the transport checksum incrementally (RFC 1624). In
// an ICMPv6 error it also rewrites the quoted packet's other address
// (quoted: the quote's address that was b's counterpart, e.g. the quoted
// destination when the outer source changes) and the quoted transport
// checksum, so that the quote is what the quoted packet's sender sent.
func translate(pkt []byte, field, quoted int, a, b [16]byte) {
	off, ulp := upperLayer(pkt)
	ck := checksumOff(pkt, off, ulp)
	copy(pkt[field:field+16], b[:])
	if ck < 0 {
		return
	}
	fixAddr(pkt, ck, ulp, a, b)
	if ulp != protoICMPv6 || pkt[off] >= 128 || off+icmpHeaderLen+ipv6HeaderLen > len(pkt) {
		return
	}
	// An ICMPv6 error (RFC 4443 §2.4 (c)): the quote starts 8 bytes in.
	q := pkt[off+icmpHeaderLen:]
	if q[0]>>4 != 6 || [16]byte(q[quoted:quoted+16]) != a {
		return
	}
	icmpCk := off + 2
	setAddr(pkt, icmpCk, q[quoted:quoted+16], a, b)
	qoff, qulp := upperLayer(q)
	if qck := checksumOff(q, qoff, qulp); qck >= 0 {
		old := binary.BigEndian.Uint16(q[qck:])
		fixAddr(q, qck, qulp, a, b)
		binary.BigEndian.PutUint16(pkt[icmpCk:], checksum.Update16(binary.BigEndian.Uint16(pkt[icmpCk:]), old, binary.BigEndian.Uint16(q[qck:])))
	}
}

// setAddr writes b over a at dst (16 bytes inside the data covered by the
// checksum at pkt[ck:]) and updates that checksum.
func setAddr(pkt []byte, ck int, dst []byte, a, b [16]byte) {
	copy(dst, b[:])
	binary.BigEndian.PutUint16(pkt[ck:], checksum.UpdateAddr(binary.BigEndian.Uint16(pkt[ck:]), netip.AddrFrom16(a), netip.AddrFrom16(b)))
}

// fixAddr updates the transport checksum at p[ck:] for an address of the
// pseudo-header changing from a to b. A UDP checksum of 0 (none) stays 0;
// a computed 0 is sent as 0xffff (RFC 768, RFC 8200 §8.1).
func fixAddr(p []byte, ck int, ulp uint8, a, b [16]byte) {
	old := binary.BigEndian.Uint16(p[ck:])
	if ulp == protoUDP && old == 0 {
		return
	}
	n := checksum.UpdateAddr(old, netip.AddrFrom16(a), netip.AddrFrom16(b))
	if n == 0 && ulp == protoUDP {
		n = 0xffff
	}
	binary.BigEndian.PutUint16(p[ck:], n)
}

// upperLayer walks the extension headers of p (at least 40 bytes) and
// returns the offset and protocol of the upper-layer header, or -1 when
// there is none in this packet (a non-first fragment, a chain cut short or
// too long).
func upperLayer(p []byte) (int, uint8) {
	it := ip6.NewIter(p)
	for it.Next() {
	}
	switch it.Proto() {
	case ip6.ProtoHopByHop, ip6.ProtoRouting, ip6.ProtoDstOpts, ip6.ProtoFragment, ip6.ProtoAH:
		return -1, 0
	}
	return it.Offset(), it.Proto()
}

// checksumOff returns the offset in p of the checksum of the upper-layer
// header at off, or -1 when it has none that covers the pseudo-header or
// it is cut short.
func checksumOff(p []byte, off int, ulp uint8) int {
	if off < 0 {
		return -1
	}
	var ck int
	switch ulp {
	case protoTCP:
		ck = off + 16
	case protoUDP:
		ck = off + 6
	case protoICMPv6:
		ck = off + 2
	default:
		return -1
	}
	if ck+2 > len(p) {
		return -1
	}
	return ck
}

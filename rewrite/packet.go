package rewrite

import (
	"encoding/binary"
	"net/netip"

	"github.com/shim6gw/shim6gw/internal/ip6"

	"github.com/shim6gw/shim6gw/shim6"
)

// IPv6 constants (RFC 8200) and the protocol numbers the walker knows.
const (
	ipv6HeaderLen  = ip6.HeaderLen
	shimLen        = 8 // Payload Extension Header (RFC 5533 §5.2)
	protoHopByHop  = ip6.ProtoHopByHop
	protoTCP       = 6
	protoUDP       = 17
	protoRouting   = ip6.ProtoRouting
	protoFragment  = ip6.ProtoFragment
	protoAH        = ip6.ProtoAH
	protoICMPv6    = ip6.ProtoICMPv6
	protoDstOpts   = ip6.ProtoDstOpts
	icmpHeaderLen  = 8
	icmpTooBig     = 2
	tcpMinLen      = 20
	offSrc         = 8
	offDst         = 24
	offPayloadLen  = 4
	offNextHeader  = 6
	offHopLimit    = 7
	minMTU         = 1280
	tcpOffChecksum = 16
	udpOffChecksum = 6
	icmpOffCksum   = 2
)

// layout is what walk learns about a packet's header chain. Offsets are
// relative to the start of the IPv6 header; -1 means absent.
type layout struct {
	// insOff is where a payload header goes: after the fixed header and
	// the routing-related headers (HbH, Routing, a DstOpts before a
	// Routing header), before endpoint headers (RFC 5533 §4.6).
	// insNHOff is the Next Header byte that names the header at insOff.
	insOff, insNHOff int
	// shimOff is the offset of a Shim6 header, shimNHOff the Next Header
	// byte that names it.
	shimOff, shimNHOff int
	// ulpOff is the upper-layer header (TCP, UDP, ICMPv6, ESP, ...) and
	// ulp its protocol; ulpOff is -1 in non-first fragments, after a
	// Shim6 header, or when the chain is cut short.
	ulpOff int
	ulp    uint8
	// fragment reports that a Fragment header was seen before the Shim6
	// header or the upper layer.
	fragment bool
	// truncated: an extension header runs past the packet.
	truncated bool
}

// walk fills l from the extension header chain of pkt, which must be at least
// ipv6HeaderLen bytes long. It stops at the first Shim6 header, upper-layer
// header, non-first fragment or unknown header, and never reads beyond pkt.
func walk(pkt []byte, l *layout) {
	*l = layout{insOff: ipv6HeaderLen, insNHOff: offNextHeader, shimOff: -1, shimNHOff: -1, ulpOff: -1}
	it := ip6.NewIter(pkt)
	for {
		nh, off := it.Proto(), it.Offset()
		switch nh {
		case shim6.ProtocolNumber:
			l.shimOff, l.shimNHOff = off, it.NextHeaderOffset()
			return
		case protoHopByHop, protoRouting, protoDstOpts, protoFragment, protoAH:
			if !it.Next() {
				if l.truncated = it.Truncated(); !l.truncated {
					// A non-first fragment: no upper-layer header here.
					l.fragment, l.ulp = true, pkt[off]
				}
				return
			}
			if nh == protoFragment {
				l.fragment = true
			}
			// A DstOpts header is routing-related only before a Routing
			// header; the Routing header then moves the point past both.
			if (nh == protoHopByHop || nh == protoRouting) && !l.fragment {
				l.insOff, l.insNHOff = it.Offset(), off
			}
		default:
			l.ulp, l.ulpOff = nh, off
			return
		}
	}
}

// checkIPv6 validates the fixed header of pkt and returns the length the
// payload length field implies, or 0 if the packet is malformed. Bytes past
// that length (link padding) are not part of the packet.
func checkIPv6(pkt []byte) int {
	if len(pkt) < ipv6HeaderLen || pkt[0]>>4 != 6 {
		return 0
	}
	n := ipv6HeaderLen + int(binary.BigEndian.Uint16(pkt[offPayloadLen:]))
	if n > len(pkt) || n == ipv6HeaderLen && pkt[offNextHeader] == protoHopByHop {
		return 0 // truncated, or a jumbogram (RFC 2675), which we don't handle
	}
	return n
}

func addrAt(pkt []byte, off int) netip.Addr {
	return netip.AddrFrom16([16]byte(pkt[off : off+16]))
}

func setPayloadLen(pkt []byte, n int) {
	binary.BigEndian.PutUint16(pkt[offPayloadLen:], uint16(n))
}

func payloadLen(pkt []byte) int {
	return int(binary.BigEndian.Uint16(pkt[offPayloadLen:]))
}

// transportChecksumOff returns the offset in pkt of the checksum field of
// the upper-layer header that covers the IPv6 pseudo-header, or -1 when
// there is none in this packet (non-first fragment, truncated, other
// protocol). UDP's "no checksum" value 0 is reported through zeroUDP.
func transportChecksumOff(pkt []byte, l *layout) (off int, zeroUDP bool) {
	if l.ulpOff < 0 {
		return -1, false
	}
	switch l.ulp {
	case protoTCP:
		off = l.ulpOff + tcpOffChecksum
	case protoUDP:
		off = l.ulpOff + udpOffChecksum
	case protoICMPv6:
		off = l.ulpOff + icmpOffCksum
	default:
		return -1, false
	}
	if off+2 > len(pkt) {
		return -1, false
	}
	if l.ulp == protoUDP && pkt[off] == 0 && pkt[off+1] == 0 {
		return off, true
	}
	return off, false
}

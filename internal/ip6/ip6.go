// Package ip6 is the one IPv6 header view and extension-header iterator
// of shim6gw (RFC 8200). Nothing here allocates or reads past the slice
// it is given.
package ip6

import (
	"encoding/binary"
	"net/netip"
)

// HeaderLen is the size of the fixed IPv6 header (RFC 8200 §3).
const HeaderLen = 40

// Protocol numbers of the headers the iterator knows, and of ICMPv6.
const (
	ProtoHopByHop = 0
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDstOpts  = 60
)

// MaxExtHeaders bounds the chain, whoever built the packet: Iter passes
// fewer extension headers than this and calls a longer chain Truncated.
const MaxExtHeaders = 16

// Offsets of fixed-header fields.
const (
	OffPayloadLen = 4
	OffNextHeader = 6
	OffHopLimit   = 7
	OffSrc        = 8
	OffDst        = 24
)

// Header is a view of a packet that starts with a fixed IPv6 header.
type Header []byte

// Valid reports whether h holds a whole fixed header of version 6.
func (h Header) Valid() bool { return len(h) >= HeaderLen && h[0]>>4 == 6 }

// PayloadLen is the Payload Length field. h must be Valid.
func (h Header) PayloadLen() int { return int(binary.BigEndian.Uint16(h[OffPayloadLen:])) }

// NextHeader is the Next Header field. h must be Valid.
func (h Header) NextHeader() uint8 { return h[OffNextHeader] }

// Src is the source address. h must be Valid.
func (h Header) Src() netip.Addr { return netip.AddrFrom16([16]byte(h[OffSrc : OffSrc+16])) }

// Dst is the destination address. h must be Valid.
func (h Header) Dst() netip.Addr { return netip.AddrFrom16([16]byte(h[OffDst : OffDst+16])) }

// End is where the packet ends by its Payload Length, at most len(h):
// bytes past it (link padding) are not part of the packet. h must be Valid.
func (h Header) End() int { return min(HeaderLen+h.PayloadLen(), len(h)) }

// Iter walks the extension-header chain of a packet. It starts at the
// header the fixed header names and moves past Hop-by-Hop, Routing,
// Destination Options, Fragment and AH headers.
type Iter struct {
	pkt   []byte
	proto uint8
	nhOff int
	off   int
	n     int
	trunc bool
}

// NewIter returns an iterator at the first header after the fixed header
// of pkt, which must be at least HeaderLen bytes long.
func NewIter(pkt []byte) Iter {
	return Iter{pkt: pkt, proto: pkt[OffNextHeader], nhOff: OffNextHeader, off: HeaderLen}
}

// Proto is the protocol number of the current header.
func (it *Iter) Proto() uint8 { return it.proto }

// Offset is where the current header starts.
func (it *Iter) Offset() int { return it.off }

// NextHeaderOffset is the offset of the Next Header byte that names the
// current header.
func (it *Iter) NextHeaderOffset() int { return it.nhOff }

// Truncated reports that Next stopped because a header runs past the
// packet or the chain reached MaxExtHeaders.
func (it *Iter) Truncated() bool { return it.trunc }

// Next moves past the current header and reports whether it did. It
// stops (false) at a header it does not know (an upper layer, Shim6, No
// Next Header), at a non-first fragment, whose next header is not in this
// packet, and when Truncated.
func (it *Iter) Next() bool {
	var n int
	switch it.proto {
	case ProtoHopByHop, ProtoRouting, ProtoDstOpts:
		if it.off+8 > len(it.pkt) {
			it.trunc = true
			return false
		}
		n = (int(it.pkt[it.off+1]) + 1) * 8
	case ProtoFragment:
		if it.off+8 > len(it.pkt) {
			it.trunc = true
			return false
		}
		if binary.BigEndian.Uint16(it.pkt[it.off+2:])&^7 != 0 {
			return false
		}
		n = 8
	case ProtoAH:
		if it.off+8 > len(it.pkt) {
			it.trunc = true
			return false
		}
		n = (int(it.pkt[it.off+1]) + 2) * 4
	default:
		return false
	}
	if it.off+n > len(it.pkt) || it.n+1 == MaxExtHeaders {
		it.trunc = true
		return false
	}
	it.n++
	it.proto, it.nhOff, it.off = it.pkt[it.off], it.off, it.off+n
	return true
}

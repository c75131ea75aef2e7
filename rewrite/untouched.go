package rewrite

// Untouched reports whether Process would forward pkt, an IPv6 packet
// travelling in direction dir (Auto: by its source), without changing a
// byte of it: no payload header to insert (a shimmed context) or strip,
// no fallback translation, no ICMPv6 error to translate, no TCP SYN whose
// MSS might be clamped. It is conservative (false when unsure, and for
// malformed packets), reads only the table and pkt, and counts nothing.
//
// A TUN data plane asks it before Process about GSO super-packets and
// packets with offload-partial checksums (tunnel.GSOFilter): those it
// reports untouched may be forwarded whole, the others must be segmented
// and their checksums completed first, because the incremental checksum
// updates of Process need complete checksums. Process may still be called
// on an untouched packet (for the context stamps); it changes nothing.
func (t *Table) Untouched(dir Direction, pkt []byte) bool {
	n := checkIPv6(pkt)
	if n == 0 {
		return false
	}
	var l layout
	walk(pkt[:n], &l)
	if l.truncated || l.fragment || l.shimOff >= 0 || l.ulpOff < 0 {
		return false
	}
	switch l.ulp {
	case protoICMPv6:
		return false // errors quoting shimmed or translated packets
	case protoTCP:
		seg := pkt[l.ulpOff:n]
		if len(seg) < tcpMinLen || seg[13]&0x02 != 0 {
			return false // SYN: MSS clamping
		}
	}
	if dir >= NumDirections {
		dir = t.DirectionOf(pkt)
	}
	src, dst := pkt[offSrc:offSrc+16], pkt[offDst:offDst+16]
	if dir == Outbound {
		if ctx := t.byPair[makePairKey(src, dst)]; ctx != nil && ctx.shimmed {
			return false
		}
		_, fb := t.fbOut[[16]byte(src)]
		return !fb
	}
	_, fb := t.fbIn[[16]byte(dst)]
	return !fb
}

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
	return t.untouched(dir, pkt, nil, 0)
}

// Untouched is Table.Untouched on the published table that also consults
// the fallback flow table (docs/architecture.md §7): a site host's packet to a peer
// without Shim6 is untouched while its ULID's uplink is up and its flow
// did not start under another uplink, so passthrough traffic to legacy
// peers keeps its GSO super-packets whole. now is the clock of Process.
func (r *Rewriter) Untouched(dir Direction, pkt []byte, now int64) bool {
	return r.Table().untouched(dir, pkt, r, now)
}

func (t *Table) untouched(dir Direction, pkt []byte, r *Rewriter, now int64) bool {
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
		return !t.fallbackMayTranslate(pkt, &l, r, now)
	}
	_, fb := t.fbIn[[16]byte(dst)]
	return !fb
}

// fallbackMayTranslate reports whether fallbackOut could translate the
// outbound pkt; it follows fallbackOut's tests in order. Without r (no
// flow table) a flow that may have started elsewhere counts as yes.
func (t *Table) fallbackMayTranslate(pkt []byte, l *layout, r *Rewriter, now int64) bool {
	h := t.fbOut[[16]byte(pkt[offSrc:offSrc+16])]
	if h == nil {
		return false
	}
	if _, ok := t.noShim6[[16]byte(pkt[offDst:offDst+16])]; !ok {
		return false
	}
	alt := false
	for i := range h.n {
		alt = alt || t.uplinkUp(h.alts[i].uplink)
	}
	switch {
	case !alt:
		return false
	case !t.uplinkUp(h.ulidUplink) || r == nil:
		return true
	}
	return r.flows.lookup(r.flows.flowKey(pkt, l), now)
}

package rewrite

import (
	"encoding/binary"
	"net/netip"

	"github.com/shim6gw/shim6gw/internal/checksum"

	"github.com/shim6gw/shim6gw/shim6"
)

// outbound handles a packet from a LAN host (docs/architecture.md §3).
func (r *Rewriter) outbound(t *Table, buf []byte, start, end int, l *layout, now int64, res *Result) {
	pkt := buf[start:end]
	if l.shimOff >= 0 {
		res.set(Forward, PathPassthrough, start, end) // the host speaks Shim6 itself
		return
	}
	if ctx := t.byPair[makePairKey(pkt[offSrc:offSrc+16], pkt[offDst:offDst+16])]; ctx != nil {
		if !ctx.shimmed {
			clampMSS(pkt, l, t.mss)
			ctx.stamps.LastSent.Store(now)
			ctx.stamps.SentPackets.Add(1)
			res.set(Forward, PathPassthrough, start, end)
			return
		}
		insert(t, ctx, buf, start, end, l, res)
		if res.Verdict == Forward {
			ctx.stamps.LastSent.Store(now)
			ctx.stamps.SentPackets.Add(1)
		}
		return
	}
	if r.fallbackOut(t, pkt, l, now) {
		clampMSS(pkt, l, t.mss)
		res.set(Forward, PathFallbackOut, start, end)
		return
	}
	clampMSS(pkt, l, t.mss)
	res.set(Forward, PathPassthrough, start, end)
	dst := addrAt(pkt, offDst)
	if dst.IsGlobalUnicast() && !dst.IsPrivate() && !t.IsLocalAddr(dst) {
		if _, known := t.noShim6[dst.As16()]; !known && r.allowNotice(pkt[offSrc:offDst+16], now) {
			res.Notice = Notice{Kind: NoticeTrafficSeen, Local: addrAt(pkt, offSrc), Peer: dst}
		}
	}
}

// insert rewrites the ULIDs to the current locators and inserts the
// payload header after the routing-related headers (RFC 5533 §4.6, §11.1)
// by moving those headers 8 bytes into the headroom. Transport checksums
// stay as they are: they cover the ULIDs, which the peer restores.
func insert(t *Table, ctx *Context, buf []byte, start, end int, l *layout, res *Result) {
	if end-start+shimLen > ctx.mtu {
		tooBig(t, buf, start, end, l, ctx.mtu, res)
		return
	}
	if start < shimLen {
		res.drop(DropNoHeadroom, start, end)
		return
	}
	clampMSS(buf[start:end], l, t.mss)
	ns := start - shimLen
	copy(buf[ns:ns+l.insOff], buf[start:start+l.insOff])
	p := buf[ns:end]
	next := p[l.insNHOff]
	p[l.insNHOff] = shim6.ProtocolNumber
	shim6.PutPayloadHeader(p[l.insOff:l.insOff+shimLen], next, ctx.cfg.PeerTag)
	setPayloadLen(p, payloadLen(p)+shimLen)
	copy(p[offSrc:offSrc+16], ctx.localLoc[:])
	copy(p[offDst:offDst+16], ctx.peerLoc[:])
	res.set(Forward, PathOutboundShim, ns, end)
}

// tooBig replaces the packet in buf with an ICMPv6 Packet Too Big
// (RFC 4443 §3.2) to its source, reporting mtu − 8 so that the host's
// packets fit once the payload header is added (docs/architecture.md §8). The quote
// is as much of the packet as fits in a 1280-byte reply and in buf.
func tooBig(t *Table, buf []byte, start, end int, l *layout, mtu int, res *Result) {
	pkt := buf[start:end]
	// Never answer an ICMPv6 error with an error (RFC 4443 §2.4 (e)), and
	// stay silent when no source address is configured.
	if !t.icmpSrc.IsValid() || l.ulp == protoICMPv6 && l.ulpOff >= 0 && l.ulpOff < len(pkt) && pkt[l.ulpOff] < 128 {
		res.drop(DropTooBig, start, end)
		return
	}
	const hdr = ipv6HeaderLen + icmpHeaderLen
	quote := min(end-start, minMTU-hdr, len(buf)-start-hdr)
	if quote < ipv6HeaderLen {
		res.drop(DropTooBig, start, end)
		return
	}
	host := addrAt(pkt, offSrc)
	copy(buf[start+hdr:start+hdr+quote], buf[start:start+quote])
	p := buf[start : start+hdr+quote]
	shim6.PutIPv6Header(p, t.icmpSrc, host, protoICMPv6, icmpHeaderLen+quote)
	p[offHopLimit] = 255
	icmp := p[ipv6HeaderLen:]
	icmp[0], icmp[1], icmp[2], icmp[3] = icmpTooBig, 0, 0, 0
	binary.BigEndian.PutUint32(icmp[4:], uint32(mtu-shimLen))
	ck := checksum.Checksum(icmp, checksum.PseudoHeader(t.icmpSrc, host, uint32(len(icmp)), protoICMPv6))
	binary.BigEndian.PutUint16(icmp[icmpOffCksum:], ck)
	res.set(Reply, PathTooBig, start, start+len(p))
	res.Reason = DropTooBig
}

// clampMSS lowers the MSS option of a TCP SYN to mss, fixing the checksum
// incrementally (RFC 1624), so that segments still fit the path when the
// payload header is added later (docs/architecture.md §8).
func clampMSS(pkt []byte, l *layout, mss uint16) {
	if l.ulp != protoTCP || l.ulpOff < 0 {
		return
	}
	seg := pkt[l.ulpOff:]
	if len(seg) < tcpMinLen || seg[13]&0x02 == 0 {
		return
	}
	doff := int(seg[12]>>4) * 4
	if doff < tcpMinLen || doff > len(seg) {
		return
	}
	for i := tcpMinLen; i < doff; {
		switch seg[i] {
		case 0: // end of option list
			return
		case 1: // no-operation
			i++
			continue
		}
		if i+1 >= doff {
			return
		}
		n := int(seg[i+1])
		if n < 2 || i+n > doff {
			return
		}
		if seg[i] == 2 && n == 4 {
			if binary.BigEndian.Uint16(seg[i+2:]) > mss {
				var v [2]byte
				binary.BigEndian.PutUint16(v[:], mss)
				setFixChecksum(seg, tcpOffChecksum, i+2, v[:])
			}
			return
		}
		i += n
	}
}

// setFixChecksum writes val at seg[at:] and updates the checksum at
// seg[ck:ck+2] incrementally, one aligned 16-bit word at a time so that
// fields at odd offsets work too (RFC 1624).
func setFixChecksum(seg []byte, ck, at int, val []byte) {
	sum := binary.BigEndian.Uint16(seg[ck:])
	lo, hi := at&^1, (at+len(val)+1)&^1
	for w := lo; w < hi; w += 2 {
		old := word(seg, w)
		for i, b := range val {
			if j := at + i; j == w || j == w+1 {
				seg[j] = b
			}
		}
		sum = checksum.Update16(sum, old, word(seg, w))
	}
	binary.BigEndian.PutUint16(seg[ck:], sum)
}

// word reads the 16-bit word at w, padding a last odd byte with zero.
func word(b []byte, w int) uint16 {
	if w+1 < len(b) {
		return binary.BigEndian.Uint16(b[w:])
	}
	return uint16(b[w]) << 8
}

// fixAddrChecksum updates the transport checksum of pkt for an address of
// the pseudo-header changing from a to b. UDP without checksum stays 0 and
// a UDP result of 0 is sent as 0xffff (RFC 768, RFC 8200 §8.1).
func fixAddrChecksum(pkt []byte, l *layout, a, b netip.Addr) {
	off, zeroUDP := transportChecksumOff(pkt, l)
	if off < 0 || zeroUDP {
		return
	}
	ck := checksum.UpdateAddr(binary.BigEndian.Uint16(pkt[off:]), a, b)
	if ck == 0 && l.ulp == protoUDP {
		ck = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[off:], ck)
}

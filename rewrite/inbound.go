package rewrite

import (
	"encoding/binary"
	"net/netip"

	"github.com/shim6gw/shim6gw/internal/checksum"

	"github.com/shim6gw/shim6gw/shim6"
)

// inbound handles a packet from an uplink (docs/architecture.md §3, RFC 5533 §12).
func (r *Rewriter) inbound(t *Table, buf []byte, start, end int, l *layout, now int64, res *Result) {
	pkt := buf[start:end]
	if l.shimOff >= 0 {
		r.inboundShim(t, buf, start, end, l, now, res)
		return
	}
	if l.ulp == protoICMPv6 && l.ulpOff >= 0 && l.ulpOff+icmpHeaderLen <= len(pkt) && pkt[l.ulpOff] < 128 {
		if r.translateICMPError(t, buf, start, end, l, now, res) {
			return
		}
	}
	if fallbackIn(t, pkt, l) {
		clampMSS(pkt, l, t.mss)
		res.set(Forward, PathFallbackIn, start, end)
		return
	}
	// Payload without the extension header on a context's ULID pair still
	// shows that the context is in use (RFC 5533 §12.1).
	if ctx := t.byPair[makePairKey(pkt[offDst:offDst+16], pkt[offSrc:offSrc+16])]; ctx != nil {
		ctx.stamps.LastReceived.Store(now)
		ctx.stamps.ReceivedPackets.Add(1)
	}
	clampMSS(pkt, l, t.mss)
	res.set(Forward, PathPassthrough, start, end)
}

// inboundShim handles a packet with a Shim6 header: control messages go to
// the control plane, payload headers are checked and stripped.
func (r *Rewriter) inboundShim(t *Table, buf []byte, start, end int, l *layout, now int64, res *Result) {
	pkt := buf[start:end]
	off := l.shimOff
	if l.fragment {
		res.drop(DropFragmentedShim, start, end)
		return
	}
	if off+3 > len(pkt) {
		res.drop(DropMalformed, start, end)
		return
	}
	if pkt[off+2]&0x80 == 0 {
		// P = 0: control message (RFC 5533 §5.3, §12.3).
		res.set(Divert, PathControl, start, end)
		return
	}
	if off+shimLen > len(pkt) || pkt[off+1] != 0 {
		res.drop(DropBadPayloadHeader, start, end)
		return
	}
	tag := shim6.PayloadHeader(pkt[off : off+shimLen]).Tag()
	ctx := t.byTag[tag]
	if ctx == nil {
		// RFC 5533 §12.2: no context for CT(local); the engine may send
		// R1bis (§7.17).
		res.drop(DropUnknownTag, start, end)
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], uint64(tag))
		if r.allowNotice(key[:], now) {
			res.Notice = Notice{Kind: NoticeUnknownTag, Local: addrAt(pkt, offDst), Peer: addrAt(pkt, offSrc), Tag: tag}
		}
		return
	}
	if !ctx.acceptsPeer([16]byte(pkt[offSrc:offSrc+16])) || !ctx.acceptsLocal([16]byte(pkt[offDst:offDst+16])) {
		res.drop(DropLocatorMismatch, start, end)
		return
	}
	ns := strip(buf, start, end, l.shimOff, l.shimNHOff)
	p := buf[ns:end]
	copy(p[offSrc:offSrc+16], ctx.peerULID[:])
	copy(p[offDst:offDst+16], ctx.localULID[:])
	if p[l.shimNHOff] == protoTCP {
		// The header after the removed one now starts where it was.
		tl := layout{ulp: protoTCP, ulpOff: l.shimOff}
		clampMSS(p, &tl, t.mss)
	}
	ctx.stamps.LastReceived.Store(now)
	ctx.stamps.ReceivedPackets.Add(1)
	res.set(Forward, PathInboundShim, ns, end)
}

// strip removes the 8-byte header at buf[start+off:] by moving the bytes
// before it 8 to the right, restores the Next Header byte at nhOff and
// fixes the payload length. It returns the new start.
func strip(buf []byte, start, end, off, nhOff int) int {
	next := buf[start+off]
	copy(buf[start+shimLen:start+shimLen+off], buf[start:start+off])
	ns := start + shimLen
	p := buf[ns:end]
	p[nhOff] = next
	setPayloadLen(p, payloadLen(p)-shimLen)
	return ns
}

// translateICMPError rewrites an ICMPv6 error whose quoted packet carries
// our payload header (RFC 5533 §8): the quoted header gets the ULIDs back,
// the quoted Shim6 header is removed, a Packet Too Big MTU shrinks by 8,
// the error is addressed to the host's ULID and its checksum recomputed.
// It reports whether it did anything.
func (r *Rewriter) translateICMPError(t *Table, buf []byte, start, end int, l *layout, now int64, res *Result) bool {
	pkt := buf[start:end]
	icmp := l.ulpOff
	q := icmp + icmpHeaderLen
	if q+ipv6HeaderLen > len(pkt) || pkt[q]>>4 != 6 {
		return false
	}
	quoted := pkt[q:]
	var ql layout
	walk(quoted, &ql)
	if ql.shimOff < 0 || ql.fragment || ql.shimOff+shimLen > len(quoted) || quoted[ql.shimOff+2]&0x80 == 0 {
		return false
	}
	// The quoted header was meant for the peer, so it holds CT(peer);
	// <source locator, destination locator, CT(peer)> is unique (§8).
	tag := shim6.PayloadHeader(quoted[ql.shimOff : ql.shimOff+shimLen]).Tag()
	qsrc, qdst := [16]byte(quoted[offSrc:offSrc+16]), [16]byte(quoted[offDst:offDst+16])
	ctx := t.byPeerTag[tag]
	for ctx != nil && !(ctx.acceptsLocal(qsrc) && ctx.acceptsPeer(qdst)) {
		ctx = ctx.samePeerTag
	}
	if ctx == nil {
		return false
	}
	// Don't launder a corrupted error with a fresh checksum.
	if checksum.Checksum(pkt[icmp:], checksum.PseudoHeader(addrAt(pkt, offSrc), addrAt(pkt, offDst), uint32(len(pkt)-icmp), protoICMPv6)) != 0 {
		return false
	}
	copy(quoted[offSrc:offSrc+16], ctx.localULID[:])
	copy(quoted[offDst:offDst+16], ctx.peerULID[:])
	if qpl := payloadLen(quoted); qpl >= shimLen {
		setPayloadLen(quoted, qpl-shimLen)
	}
	ns := strip(buf, start, end, q+ql.shimOff, q+ql.shimNHOff)
	p := buf[ns:end]
	copy(p[offDst:offDst+16], ctx.localULID[:])
	if p[icmp] == icmpTooBig {
		if mtu := binary.BigEndian.Uint32(p[icmp+4:]); mtu > shimLen {
			binary.BigEndian.PutUint32(p[icmp+4:], mtu-shimLen)
		}
	}
	p[icmp+2], p[icmp+3] = 0, 0
	ck := checksum.Checksum(p[icmp:], checksum.PseudoHeader(addrAt(p, offSrc), addrAt(p, offDst), uint32(len(p)-icmp), protoICMPv6))
	binary.BigEndian.PutUint16(p[icmp+2:], ck)
	res.set(Forward, PathICMPError, ns, end)
	r.pathErrorNotice(ctx, p[icmp], p[icmp+1], qsrc, qdst, now, res)
	return true
}

// pathErrorNotice reports ICMPv6 errors that RFC 5533 §8 lets Shim6 act
// on: the locator pair src → dst of ctx failed.
func (r *Rewriter) pathErrorNotice(ctx *Context, typ, code uint8, src, dst [16]byte, now int64, res *Result) {
	if !(typ == 1 && code <= 6 && code != 4 || typ == 3) {
		return
	}
	var key [9]byte
	key[0] = byte(NoticePathError)
	binary.BigEndian.PutUint64(key[1:], uint64(ctx.cfg.LocalTag))
	if r.allowNotice(key[:], now) {
		res.Notice = Notice{Kind: NoticePathError, Local: netip.AddrFrom16(src), Peer: netip.AddrFrom16(dst), Tag: ctx.cfg.LocalTag}
	}
}

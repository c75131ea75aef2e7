package rewrite

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync/atomic"

	"github.com/shim6gw/shim6gw/internal/checksum"
)

// Fallback for peers without Shim6 (docs/architecture.md §7): when the uplink of a
// host's ULID is down, its new flows to such peers leave with the host's
// locator under a live uplink, mapped 1:1 by the HBA book, so both
// directions translate without per-flow state. The flow table only pins
// flows to the path they started on once the ULID's uplink is back.

// flowTable is a bounded, lock-free, 4-way set-associative table of flow
// fingerprints. Races between workers can lose an entry (the flow then
// returns to its ULID), never corrupt memory.
type flowTable struct {
	seed maphash.Seed
	sets []flowSet
	mask uint64
	idle int64
}

type flowSet struct {
	keys [4]atomic.Uint64
	seen [4]atomic.Int64
}

func (f *flowTable) init(slots int, idle int64, seed maphash.Seed) {
	n := 1
	for n*4 < slots {
		n <<= 1
	}
	f.sets = make([]flowSet, n)
	f.mask = uint64(n - 1)
	f.idle = idle
	f.seed = seed
}

// flowKey hashes the flow of pkt from the host's ULID: addresses, upper
// protocol and ports. Fragments hash without ports, so that all fragments
// of a datagram agree.
func (f *flowTable) flowKey(pkt []byte, l *layout) uint64 {
	var k [38]byte
	copy(k[:32], pkt[offSrc:offDst+16])
	k[32] = l.ulp
	if !l.fragment && l.ulpOff >= 0 && l.ulpOff+4 <= len(pkt) && (l.ulp == protoTCP || l.ulp == protoUDP) {
		copy(k[33:37], pkt[l.ulpOff:l.ulpOff+4])
	}
	return maphash.Bytes(f.seed, k[:]) | 1 // 0 marks a free slot
}

// lookup reports whether key is a live flow and refreshes it.
func (f *flowTable) lookup(key uint64, now int64) bool {
	s := &f.sets[key&f.mask]
	for i := range s.keys {
		if s.keys[i].Load() == key {
			if now-s.seen[i].Load() > f.idle {
				return false
			}
			s.seen[i].Store(now)
			return true
		}
	}
	return false
}

// insert records key, replacing a free, expired or the oldest slot.
func (f *flowTable) insert(key uint64, now int64) {
	s := &f.sets[key&f.mask]
	victim, oldest := 0, int64(0)
	for i := range s.keys {
		k := s.keys[i].Load()
		if k == key {
			s.seen[i].Store(now)
			return
		}
		seen := s.seen[i].Load()
		if k == 0 {
			victim, oldest = i, -1<<63
			break
		}
		if i == 0 || seen < oldest {
			victim, oldest = i, seen
		}
	}
	s.seen[victim].Store(now)
	s.keys[victim].Store(key)
}

// fallbackOut translates the source of an outbound packet to a live
// uplink's locator when docs/architecture.md §7 says so and reports whether it did.
func (r *Rewriter) fallbackOut(t *Table, pkt []byte, l *layout, now int64) bool {
	if len(t.fbOut) == 0 {
		return false
	}
	h := t.fbOut[[16]byte(pkt[offSrc:offSrc+16])]
	if h == nil {
		return false
	}
	if _, ok := t.noShim6[[16]byte(pkt[offDst:offDst+16])]; !ok {
		return false
	}
	var alt *altLocator
	for i := range h.n {
		if t.uplinkUp(h.alts[i].uplink) {
			alt = &h.alts[i]
			break
		}
	}
	if alt == nil {
		return false // nowhere better to go
	}
	key := r.flows.flowKey(pkt, l)
	if t.uplinkUp(h.ulidUplink) {
		// The ULID works: only flows that started elsewhere stay there.
		if !r.flows.lookup(key, now) {
			return false
		}
	} else {
		r.flows.insert(key, now)
	}
	ulid := addrAt(pkt, offSrc)
	loc := netip.AddrFrom16(alt.addr)
	fixAddrChecksum(pkt, l, ulid, loc)
	copy(pkt[offSrc:offSrc+16], alt.addr[:])
	// An ICMPv6 error from the host quotes a packet we translated inbound:
	// give the quote the locator the peer used (RFC 4443 §2.4 (c)).
	translateQuoted(pkt, l, offDst, ulid, loc)
	return true
}

// fallbackIn translates the destination of an inbound packet sent to a
// fallback locator back to the host's ULID and reports whether it did.
func fallbackIn(t *Table, pkt []byte, l *layout) bool {
	if len(t.fbIn) == 0 {
		return false
	}
	u, ok := t.fbIn[[16]byte(pkt[offDst:offDst+16])]
	if !ok {
		return false
	}
	loc := addrAt(pkt, offDst)
	ulid := netip.AddrFrom16(u)
	fixAddrChecksum(pkt, l, loc, ulid)
	copy(pkt[offDst:offDst+16], u[:])
	translateQuoted(pkt, l, offSrc, loc, ulid)
	return true
}

// translateQuoted rewrites the address at field (offSrc or offDst) of the
// packet quoted by an ICMPv6 error in pkt from a to b, fixing the ICMPv6
// checksum incrementally.
func translateQuoted(pkt []byte, l *layout, field int, a, b netip.Addr) {
	if l.ulp != protoICMPv6 || l.ulpOff < 0 {
		return
	}
	icmp := pkt[l.ulpOff:]
	q := icmpHeaderLen + field
	if len(icmp) < icmpHeaderLen+ipv6HeaderLen || icmp[0] >= 128 || icmp[icmpHeaderLen]>>4 != 6 {
		return
	}
	if netip.AddrFrom16([16]byte(icmp[q:q+16])) != a {
		return
	}
	ck := checksum.UpdateAddr(binary.BigEndian.Uint16(icmp[icmpOffCksum:]), a, b)
	binary.BigEndian.PutUint16(icmp[icmpOffCksum:], ck)
	b16 := b.As16()
	copy(icmp[q:q+16], b16[:])
}

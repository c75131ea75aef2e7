package rewrite_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/rewrite"
)

// TestRewriterUntouchedFallback: Rewriter.Untouched says "untouched"
// exactly when Process leaves a site host's packet to a legacy peer
// unchanged, through an outage, a pinned flow and the return of the ULID's
// uplink; Table.Untouched stays conservative without the flow table.
func TestRewriterUntouchedFallback(t *testing.T) {
	table := func(aDown, bDown bool) *rewrite.Table {
		cfg := siteConfig(aDown)
		cfg.Uplinks[1].Down = bDown
		tb, err := rewrite.NewTable(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	down, up, both := table(true, false), table(false, false), table(true, true)
	other := netip.MustParseAddr("2001:db8:f::9")
	r := rewrite.NewRewriter(rewrite.RewriterConfig{FlowIdle: time.Minute, FlowSlots: 64})
	steps := []struct {
		name   string
		tab    *rewrite.Table
		dst    netip.Addr
		sport  uint16
		now    int64
		want   bool // untouched
		tabToo bool // Table.Untouched's answer
	}{
		{"uplink up, new flow", up, legacy, 1000, 1, true, false},
		{"outage: translated", down, legacy, 1000, 2, false, false},
		{"back up: pinned flow stays translated", up, legacy, 1000, 3, false, false},
		{"back up: another new flow", up, legacy, 2000, 4, true, false},
		{"peer speaks shim6: never translated", down, other, 3000, 5, true, true},
		{"no live alternative", both, legacy, 4000, 6, true, true},
		{"pinned flow idle too long", up, legacy, 1000, 3 + int64(2*time.Minute), true, false},
	}
	for _, s := range steps {
		r.Publish(s.tab)
		pkt := ip6(fbHost, s.dst, 6, tcp(fbHost, s.dst, 0x10, nil, pattern(100)))
		binaryPort(pkt, s.sport)
		if got := s.tab.Untouched(rewrite.Outbound, pkt); got != s.tabToo {
			t.Errorf("%s: Table.Untouched = %v, want %v", s.name, got, s.tabToo)
		}
		got := r.Untouched(rewrite.Outbound, pkt, s.now)
		buf, start, end := place(pkt)
		res := r.Process(rewrite.Outbound, buf, start, end, s.now)
		same := bytes.Equal(buf[res.Start:res.End], pkt)
		if got != s.want || same != s.want {
			t.Errorf("%s: Untouched = %v, Process left it unchanged = %v, want %v", s.name, got, same, s.want)
		}
	}
}

// binaryPort sets the TCP source port of an IPv6 packet without
// extension headers and fixes the checksum by recomputing it.
func binaryPort(pkt []byte, port uint16) {
	seg := pkt[40:]
	old := uint32(seg[0])<<8 | uint32(seg[1])
	seg[0], seg[1] = byte(port>>8), byte(port)
	// RFC 1624: HC' = ~(~HC + ~m + m')
	sum := uint32(^(uint16(seg[16])<<8 | uint16(seg[17])))
	sum += uint32(^uint16(old)) + uint32(port)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	seg[16], seg[17] = byte(c>>8), byte(c)
}

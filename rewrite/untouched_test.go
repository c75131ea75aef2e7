package rewrite_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/shim6gw/shim6gw/rewrite"
)

type untouchedCase struct {
	name string
	dir  rewrite.Direction
	pkt  []byte
	want bool
}

func untouchedCases() []untouchedCase {
	ack := byte(0x10)
	syn := byte(0x02)
	data := pattern(1400)
	// T is a TCP/IPv6 packet.
	T := func(src, dst netip.Addr, flags byte, opts, data []byte) []byte {
		return ip6(src, dst, 6, tcp(src, dst, flags, opts, data))
	}
	return []untouchedCase{
		{"outbound no context", rewrite.Auto, T(host2, legacy, ack, nil, data), true},
		{"outbound context on ULID pair", rewrite.Outbound, T(host2, peer2, ack, nil, data), true},
		{"outbound udp no context", rewrite.Auto, ip6(host2, legacy, 17, udp(host2, legacy, 53, data, false)), true},
		{"inbound plain", rewrite.Auto, T(legacy, host2, ack, nil, data), true},
		{"inbound on context ULIDs", rewrite.Inbound, T(peerULID, hostULID, ack, nil, data), true},
		{"outbound shimmed context", rewrite.Auto, T(hostULID, peerULID, ack, nil, data), false},
		{"outbound shimmed context udp", rewrite.Outbound, ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 9, data, false)), false},
		{"outbound syn", rewrite.Auto, T(host2, legacy, syn, []byte{2, 4, 0x05, 0xb4}, nil), false},
		{"inbound syn", rewrite.Auto, T(legacy, host2, syn|ack, []byte{2, 4, 0x05, 0xb4}, nil), false},
		{"outbound fallback host", rewrite.Auto, T(fbHost, legacy, ack, nil, data), false},
		{"inbound to fallback locator", rewrite.Auto, T(legacy, fbHostLoc, ack, nil, data), false},
		{"inbound payload header", rewrite.Inbound, ip6(peerLoc, hostLoc, 6, tcp(peerULID, hostULID, ack, nil, data), shimHdr(tagLocal)), false},
		{"icmpv6", rewrite.Auto, ip6(legacy, host2, 58, icmpMsg(legacy, host2, 1, 0, 0, data[:100])), false},
		{"fragment", rewrite.Auto, ip6(host2, legacy, 6, data[:64], frag(8)), false},
		{"truncated", rewrite.Auto, T(host2, legacy, ack, nil, data)[:30], false},
		{"not ipv6", rewrite.Auto, append([]byte{0x45}, T(host2, legacy, ack, nil, data)[1:]...), false},
	}
}

// TestUntouched checks the table and that Process indeed leaves every
// packet Untouched accepts unchanged.
func TestUntouched(t *testing.T) {
	r := newRewriter(t, siteConfig(false))
	for _, tc := range untouchedCases() {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Table().Untouched(tc.dir, tc.pkt); got != tc.want {
				t.Fatalf("Untouched = %v, want %v", got, tc.want)
			}
			if !tc.want {
				return
			}
			buf, start, end := place(tc.pkt)
			res := r.Process(tc.dir, buf, start, end, 1)
			if res.Verdict != rewrite.Forward || res.Path != rewrite.PathPassthrough || res.Start != start || res.End != end || !bytes.Equal(buf[start:end], tc.pkt) {
				t.Errorf("Process changed an untouched packet: %+v", res)
			}
		})
	}
}

func TestUntouchedZeroAllocs(t *testing.T) {
	r := newRewriter(t, siteConfig(false))
	pkt := tcp(host2, legacy, 0x10, nil, pattern(1400))
	if a := testing.AllocsPerRun(100, func() { r.Table().Untouched(rewrite.Auto, pkt) }); a != 0 {
		t.Errorf("%v allocations, want 0", a)
	}
}

// FuzzUntouched: never panics, and a packet it reports untouched comes out
// of Process byte for byte as it went in.
func FuzzUntouched(f *testing.F) {
	for _, tc := range untouchedCases() {
		f.Add(tc.pkt, uint8(tc.dir))
	}
	r := newRewriter(f, siteConfig(false))
	f.Fuzz(func(t *testing.T, pkt []byte, dir uint8) {
		d := rewrite.Direction(dir % 3)
		if d == 2 {
			d = rewrite.Auto
		}
		if !r.Table().Untouched(d, pkt) {
			return
		}
		buf, start, end := place(pkt)
		res := r.Process(d, buf, start, end, 1)
		if res.Verdict != rewrite.Forward || res.Start != start || !bytes.Equal(buf[start:res.End], pkt[:res.End-start]) {
			t.Fatalf("untouched packet changed: %+v", res)
		}
	})
}

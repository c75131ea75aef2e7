package rewrite_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
)

// pathCase is one packet kind for benchmarks and allocation tests. Uplinks
// have MTU 9000 here so that 1500-byte packets can take the header.
type pathCase struct {
	name string
	dir  rewrite.Direction
	want rewrite.PathKind
	make func(size int) []byte
}

func benchConfig() rewrite.Config {
	cfg := siteConfig(true) // uplink A down: fallback active
	for i := range cfg.Uplinks {
		cfg.Uplinks[i].MTU = 9000
	}
	cfg.Contexts = append(cfg.Contexts, forkedContext())
	return cfg
}

// sized builds a packet of exactly size bytes with a UDP payload.
func sized(src, dst netip.Addr, size int, exts ...ext) []byte {
	n := size - 40 - 8
	for _, e := range exts {
		n -= len(e.body) + 1
	}
	return ip6(src, dst, 17, udp(src, dst, 4000, pattern(max(n, 0)), false), exts...)
}

var pathCases = []pathCase{
	{"passthrough", rewrite.Outbound, rewrite.PathPassthrough, func(n int) []byte { return sized(host2, peer2, n) }},
	{"outbound_shim", rewrite.Outbound, rewrite.PathOutboundShim, func(n int) []byte { return sized(hostULID, peerULID, n) }},
	{"inbound_shim", rewrite.Inbound, rewrite.PathInboundShim, func(n int) []byte {
		p := sized(peerULID, hostULID, n-8)
		return ip6(peerLoc, hostLoc, 17, p[40:], shimHdr(tagLocal))
	}},
	{"inbound_forked", rewrite.Inbound, rewrite.PathInboundShim, func(n int) []byte {
		p := sized(peerULID, hostULID, n-8)
		return ip6(peerLoc, hostLoc, 17, p[40:], shimHdr(tagFork))
	}},
	{"control_divert", rewrite.Inbound, rewrite.PathControl, func(n int) []byte {
		return ip6(peerLoc, hostLoc, 59, pattern(n-48), ext{140, []byte{byte((n-40)/8 - 1), 0x42, 0, 0, 0, 0, 0}})
	}},
	{"fallback_out", rewrite.Outbound, rewrite.PathFallbackOut, func(n int) []byte { return sized(fbHost, legacy, n) }},
	{"fallback_in", rewrite.Inbound, rewrite.PathFallbackIn, func(n int) []byte { return sized(legacy, fbHostLoc, n) }},
}

var sizes = []int{64, 1280, 1500}

// restoreLen is how much of a packet Process may modify in place (headers
// only); benchmarks restore just that much per iteration.
const restoreLen = 96

func TestZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are noisy under -short runs with -race")
	}
	r := newRewriter(t, benchConfig())
	for _, pc := range pathCases {
		for _, size := range sizes {
			in := pc.make(size)
			buf, start, end := place(in)
			var res rewrite.Result
			allocs := testing.AllocsPerRun(200, func() {
				copy(buf[start:], in[:min(len(in), restoreLen)])
				res = r.Process(pc.dir, buf, start, end, 1)
			})
			if res.Path != pc.want {
				t.Errorf("%s/%d: path %v", pc.name, size, res.Path)
			}
			if allocs != 0 {
				t.Errorf("%s/%d: %v allocs per packet", pc.name, size, allocs)
			}
		}
	}
	// Notices and PTB replies allocate nothing either.
	other := netip.MustParseAddr("2001:db8:f::9")
	for name, c := range map[string]struct {
		dir rewrite.Direction
		in  []byte
	}{
		"traffic seen": {rewrite.Outbound, sized(hostULID, other, 100)},
		"unknown tag":  {rewrite.Inbound, ip6(peerLoc, hostLoc, 17, pattern(20), shimHdr(12345))},
		"too big":      {rewrite.Outbound, sized(hostULID, peerULID, 9000)},
		"icmp error":   {rewrite.Inbound, ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 1, 3, 0, ip6(hostLoc, peerLoc, 17, pattern(20), shimHdr(tagPeer))))},
	} {
		buf, start, end := place(c.in)
		now := int64(0)
		allocs := testing.AllocsPerRun(100, func() {
			copy(buf[start:], c.in)
			now += 2e9
			r.Process(c.dir, buf, start, end, now)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per packet", name, allocs)
		}
	}
}

func BenchmarkProcess(b *testing.B) {
	r := newRewriter(b, benchConfig())
	for _, pc := range pathCases {
		for _, size := range sizes {
			b.Run(fmt.Sprintf("%s/%d", pc.name, size), func(b *testing.B) {
				in := pc.make(size)
				buf, start, end := place(in)
				k := min(len(in), restoreLen)
				b.ReportAllocs()
				b.SetBytes(int64(len(in)))
				for i := 0; b.Loop(); i++ {
					copy(buf[start:start+k], in[:k])
					if res := r.Process(pc.dir, buf, start, end, int64(i)); res.Path != pc.want {
						b.Fatalf("path %v", res.Path)
					}
				}
			})
		}
	}
}

// BenchmarkLargeTable measures the map lookups with 10000 contexts.
func BenchmarkLargeTable(b *testing.B) {
	cfg := benchConfig()
	for i := range 10000 {
		l := netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 0, 0xa, 0, 1, 0, 0, 0, 0, 0, 1, byte(i >> 8), byte(i)})
		p := netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 0, 0xc, 0, 1, 0, 0, 0, 0, 0, 1, byte(i >> 8), byte(i)})
		lp := netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 0, 0xb, 0, 1, 0, 0, 0, 0, 0, 1, byte(i >> 8), byte(i)})
		cfg.Contexts = append(cfg.Contexts, rewrite.ContextConfig{
			LocalULID: l, PeerULID: p, LocalTag: shim6.ContextTag(1000 + i), PeerTag: shim6.ContextTag(5000 + i),
			LocalLocator: lp, PeerLocator: p,
		})
	}
	r := newRewriter(b, cfg)
	for _, pc := range pathCases[1:3] {
		b.Run(pc.name, func(b *testing.B) {
			in := pc.make(1280)
			buf, start, end := place(in)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				copy(buf[start:start+restoreLen], in[:restoreLen])
				if res := r.Process(pc.dir, buf, start, end, int64(i)); res.Path != pc.want {
					b.Fatalf("path %v", res.Path)
				}
			}
		})
	}
}

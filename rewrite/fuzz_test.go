package rewrite_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/rewrite"
)

const guardLen = 64

// fuzzSeeds are packets from the table tests: every path kind.
func fuzzSeeds() [][]byte {
	seg := tcp(hostULID, peerULID, 0x02, []byte{1, 2, 4, 5, 0xb4}, pattern(20))
	s := [][]byte{
		ip6(hostULID, peerULID, 6, seg),
		ip6(hostULID, peerULID, 6, seg, hbh(), dstOpts(), routing(), frag(0)),
		ip6(peerLoc, hostLoc, 6, seg, shimHdr(tagLocal)),
		ip6(peerLoc, hostLoc, 6, seg, hbh(), shimHdr(tagLocal)),
		ip6(peerLoc, hostLoc, 6, seg, frag(0), shimHdr(tagLocal)),
		ip6(peerLoc, hostLoc, 6, seg, shimHdr(tagFork)),
		ip6(peerLoc, hostLoc, 59, pattern(8), ext{140, []byte{1, 0x42, 0, 0, 0, 0, 0}}),
		ip6(fbHost, legacy, 17, udp(fbHost, legacy, 1, pattern(9), false)),
		ip6(legacy, fbHostLoc, 17, udp(legacy, fbHostLoc, 1, pattern(9), true)),
		sized(hostULID, peerULID, 1500),
		ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 2, 0, 1400, ip6(hostLoc, peerLoc, 17, pattern(20), shimHdr(tagPeer)))),
		ip6(router, fbHostLoc, 58, icmpMsg(router, fbHostLoc, 1, 0, 0, ip6(fbHostLoc, legacy, 17, pattern(8)))),
	}
	return s
}

// FuzzRewrite feeds random bytes in a random direction: Process must not
// panic, must write only inside buf (guard bytes around it stay intact,
// also in the capacity beyond len) and must return sane bounds.
func FuzzRewrite(f *testing.F) {
	for i, s := range fuzzSeeds() {
		f.Add(s, uint8(i%3), uint8(32), uint16(100))
		f.Add(s, uint8(i%3), uint8(0), uint16(0))
	}
	cfg := siteConfig(true)
	cfg.Uplinks[1].MTU = 1280
	cfg.Contexts = append(cfg.Contexts, forkedContext())
	tab, err := rewrite.NewTable(cfg)
	if err != nil {
		f.Fatal(err)
	}
	r := rewrite.NewRewriter(rewrite.RewriterConfig{FlowSlots: 16})
	r.Publish(tab)
	f.Fuzz(func(t *testing.T, pkt []byte, dir, head uint8, tail uint16) {
		start := int(head % 48)
		n := start + len(pkt) + int(tail%2048)
		mem := make([]byte, guardLen+n+guardLen)
		for i := range mem {
			mem[i] = 0xa5
		}
		buf := mem[guardLen : guardLen+n] // cap reaches into the tail guard
		copy(buf[start:], pkt)
		d := [...]rewrite.Direction{rewrite.Outbound, rewrite.Inbound, rewrite.Auto}[dir%3]
		res := r.Process(d, buf, start, start+len(pkt), 1)
		guard := bytes.Repeat([]byte{0xa5}, guardLen)
		if !bytes.Equal(mem[:guardLen], guard) || !bytes.Equal(mem[guardLen+n:], guard) {
			t.Fatalf("wrote outside buf")
		}
		if res.Start < 0 || res.Start > res.End || res.End > len(buf) {
			t.Fatalf("bounds [%d,%d) outside buf of %d", res.Start, res.End, len(buf))
		}
		if res.Verdict == rewrite.Drop {
			if res.Reason == rewrite.NotDropped {
				t.Fatal("drop without reason")
			}
			return
		}
		p := buf[res.Start:res.End]
		if len(p) < 40 || p[0]>>4 != 6 || 40+int(binary.BigEndian.Uint16(p[4:])) != len(p) {
			t.Fatalf("%v result is not a consistent IPv6 packet: % x", res.Path, p[:min(len(p), 48)])
		}
	})
}

// FuzzInsertStrip: any packet of a shimmed pair survives gateway A's
// outbound and gateway B's inbound rewriting byte for byte.
func FuzzInsertStrip(f *testing.F) {
	f.Add([]byte("hello"), uint8(0))
	f.Add(pattern(300), uint8(0xff))
	f.Add([]byte{}, uint8(0x5a))
	a, err := rewrite.NewTable(siteConfig(false))
	if err != nil {
		f.Fatal(err)
	}
	b, err := rewrite.NewTable(peerConfig())
	if err != nil {
		f.Fatal(err)
	}
	ra, rb := rewrite.NewRewriter(rewrite.RewriterConfig{}), rewrite.NewRewriter(rewrite.RewriterConfig{})
	ra.Publish(a)
	rb.Publish(b)
	f.Fuzz(func(t *testing.T, data []byte, flags uint8) {
		// Leave room for 40 bytes of extension headers, the TCP header
		// and the payload header within the 1500-byte uplink MTU.
		if len(data) > 1380 {
			data = data[:1380]
		}
		var exts []ext
		if flags&1 != 0 {
			exts = append(exts, hbh())
		}
		if flags&2 != 0 {
			exts = append(exts, dstOpts(), routing())
		}
		if flags&4 != 0 {
			exts = append(exts, frag(uint16(flags&8)<<4))
		}
		if flags&16 != 0 {
			exts = append(exts, dstOpts())
		}
		var in []byte
		switch flags >> 5 & 3 {
		case 0:
			in = ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, flags&0x12, nil, data), exts...)
		case 1:
			in = ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 9, data, flags&0x80 != 0), exts...)
		default:
			in = ip6(hostULID, peerULID, 253, data, exts...)
		}
		buf, start, end := place(in)
		r1 := ra.Process(rewrite.Outbound, buf, start, end, 1)
		if r1.Path != rewrite.PathOutboundShim {
			t.Fatalf("outbound: %v/%v", r1.Path, r1.Reason)
		}
		r2 := rb.Process(rewrite.Inbound, buf, r1.Start, r1.End, 1)
		if r2.Path != rewrite.PathInboundShim {
			t.Fatalf("inbound: %v/%v", r2.Path, r2.Reason)
		}
		// No TCP options are built, so MSS clamping leaves the bytes alone.
		if got := buf[r2.Start:r2.End]; !bytes.Equal(in, got) {
			t.Fatalf("round trip (-want +got):\n%s", cmp.Diff(in, got))
		}
	})
}

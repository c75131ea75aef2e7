package slaac

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestOutboundThenInboundRestoresEveryTransport(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name  string
		proto uint8
		body  []byte
		exts  [][]byte
	}{
		{"tcp", protoTCP, tcpSeg(100), nil},
		{"tcp odd length", protoTCP, tcpSeg(33), nil},
		{"udp", protoUDP, udpDgram(77), nil},
		{"icmpv6 echo", protoICMPv6, echoReq(56), nil},
		{"tcp after hop-by-hop and dstopts", protoTCP, tcpSeg(10), [][]byte{{0, 0, 1, 4, 0, 0, 0, 0, protoHopByHop}, {0, 0, 1, 4, 0, 0, 0, 0, protoDstOpts}}},
		{"udp first fragment", protoUDP, udpDgram(40), [][]byte{{0, 0, 0, 1, 0, 0, 0, 7, protoFragment}}},
	} {
		out := buildPacket(hostStable, peer, tc.proto, tc.body, tc.exts...)
		buf, s, e := place(out)
		if v := f.tr.Outbound(buf, s, e, f.now); v != Translated {
			t.Fatalf("%s: outbound %v", tc.name, v)
		}
		p := buf[s:e]
		if got := netip.AddrFrom16([16]byte(p[8:24])); got != f.ulid(4) {
			t.Errorf("%s: source %v, want entry 4's ULID %v", tc.name, got, f.ulid(4))
		}
		if !checksumOK(p) {
			t.Errorf("%s: outbound checksum wrong", tc.name)
		}
		// The peer's answer comes back to the ULID.
		in := buildPacket(peer, f.ulid(4), tc.proto, tc.body, tc.exts...)
		buf, s, e = place(in)
		if v := f.tr.Inbound(buf, s, e, f.now); v != Translated {
			t.Fatalf("%s: inbound %v", tc.name, v)
		}
		if want := buildPacket(peer, hostStable, tc.proto, tc.body, tc.exts...); !bytes.Equal(buf[s:e], want) {
			t.Errorf("%s: inbound\n got %x\nwant %x", tc.name, buf[s:e], want)
		}
	}
	if st := f.tr.Stats(); st.TranslatedOut != 6 || st.TranslatedIn != 6 || st.Mappings != 1 || st.Created != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestUDPZeroChecksumStaysZero(t *testing.T) {
	f := newFixture(t, nil)
	p := buildPacket(hostStable, peer, protoUDP, udpDgram(8))
	p[46], p[47] = 0, 0
	buf, s, e := place(p)
	f.tr.Outbound(buf, s, e, f.now)
	if ck := binary.BigEndian.Uint16(buf[s+46:]); ck != 0 {
		t.Errorf("UDP checksum 0 became %#x", ck)
	}
}

func TestICMPErrorsTranslateTheQuote(t *testing.T) {
	f := newFixture(t, nil)
	// The host's first packet makes the mapping.
	buf, s, e := place(buildPacket(hostStable, peer, protoUDP, udpDgram(20)))
	f.tr.Outbound(buf, s, e, f.now)
	ulid := f.ulid(4)

	// A router on the path reports the packet the peer saw (from ULID).
	quote := buildPacket(ulid, peer, protoUDP, udpDgram(20))
	in := buildPacket(router, ulid, protoICMPv6, icmpErr(1, quote))
	buf, s, e = place(in)
	if v := f.tr.Inbound(buf, s, e, f.now); v != Translated {
		t.Fatalf("inbound error %v", v)
	}
	want := buildPacket(router, hostStable, protoICMPv6, icmpErr(1, buildPacket(hostStable, peer, protoUDP, udpDgram(20))))
	if !bytes.Equal(buf[s:e], want) {
		t.Errorf("inbound error\n got %x\nwant %x", buf[s:e], want)
	}

	// The host reports a packet from the peer (to its SLAAC address).
	quote = buildPacket(peer, hostStable, protoTCP, tcpSeg(12))
	out := buildPacket(hostStable, peer, protoICMPv6, icmpErr(1, quote))
	buf, s, e = place(out)
	if v := f.tr.Outbound(buf, s, e, f.now); v != Translated {
		t.Fatalf("outbound error %v", v)
	}
	want = buildPacket(ulid, peer, protoICMPv6, icmpErr(1, buildPacket(peer, ulid, protoTCP, tcpSeg(12))))
	if !bytes.Equal(buf[s:e], want) {
		t.Errorf("outbound error\n got %x\nwant %x", buf[s:e], want)
	}

	// A truncated quote (no transport checksum in it) still gets its
	// address and a valid ICMPv6 checksum.
	short := buildPacket(ulid, peer, protoTCP, tcpSeg(0))[:44]
	buf, s, e = place(buildPacket(router, ulid, protoICMPv6, icmpErr(3, short)))
	f.tr.Inbound(buf, s, e, f.now)
	if !checksumOK(buf[s:e]) || netip.AddrFrom16([16]byte(buf[s+48+8:s+48+24])) != hostStable {
		t.Errorf("truncated quote: %x", buf[s:e])
	}
}

func TestPacketsOutsideTheTranslationAreUntouched(t *testing.T) {
	f := newFixture(t, nil)
	for name, p := range map[string][]byte{
		"static host":         buildPacket(f.ulid(0), peer, protoTCP, tcpSeg(1)),
		"to a static ULID":    buildPacket(peer, f.ulid(0), protoTCP, tcpSeg(1)),
		"to a non-book /64":   buildPacket(peer, netip.MustParseAddr("2001:db8:a:1::99"), protoTCP, tcpSeg(1)),
		"truncated":           buildPacket(hostStable, peer, protoTCP, tcpSeg(1))[:50],
		"ipv4":                append([]byte{0x45}, make([]byte, 59)...),
		"to the second /64":   buildPacket(peer, f.book.Entry(4).Addresses[1], protoTCP, tcpSeg(1)),
		"shorter than header": {0x60, 0, 0},
	} {
		buf, s, e := place(p)
		orig := append([]byte(nil), buf...)
		if v := f.tr.Outbound(buf, s, e, f.now); v != Untouched {
			t.Errorf("%s: outbound %v", name, v)
		}
		if v := f.tr.Inbound(buf, s, e, f.now); v != Untouched {
			t.Errorf("%s: inbound %v", name, v)
		}
		if !bytes.Equal(buf, orig) {
			t.Errorf("%s: bytes changed", name)
		}
	}
	for name, c := range map[string]struct {
		pkt  []byte
		want bool
	}{
		"from a SLAAC host":      {buildPacket(hostStable, peer, protoTCP, tcpSeg(1)), true},
		"to a ULID of the range": {buildPacket(peer, f.ulid(5), protoTCP, tcpSeg(1)), true},
		"to a static host":       {buildPacket(peer, f.ulid(0), protoTCP, tcpSeg(1)), false},
		"from a static host":     {buildPacket(f.ulid(0), peer, protoTCP, tcpSeg(1)), false},
	} {
		if got := f.tr.Touches(c.pkt); got != c.want {
			t.Errorf("Touches %s = %v", name, got)
		}
	}
	// Inbound to a pool entry nobody is mapped to is dropped.
	buf, s, e := place(buildPacket(peer, f.ulid(5), protoTCP, tcpSeg(1)))
	if v := f.tr.Inbound(buf, s, e, f.now); v != Drop || f.tr.Stats().DroppedIn != 1 {
		t.Errorf("inbound to unmapped pool entry: %v", v)
	}
}

func TestZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are noisy under -short runs with -race")
	}
	f := newFixture(t, nil)
	ulid := f.ulid(4)
	for _, c := range []struct {
		name string
		out  bool
		pkt  []byte
	}{
		{"outbound tcp", true, buildPacket(hostStable, peer, protoTCP, tcpSeg(1200))},
		{"inbound tcp", false, buildPacket(peer, ulid, protoTCP, tcpSeg(1200))},
		{"inbound icmp error", false, buildPacket(router, ulid, protoICMPv6, icmpErr(1, buildPacket(ulid, peer, protoUDP, udpDgram(20))))},
	} {
		buf, s, e := place(c.pkt)
		f.tr.Outbound(buf, s, e, f.now) // creates the mapping once
		allocs := testing.AllocsPerRun(200, func() {
			copy(buf[s:], c.pkt)
			if c.out {
				f.tr.Outbound(buf, s, e, f.now)
			} else {
				f.tr.Inbound(buf, s, e, f.now)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per packet", c.name, allocs)
		}
	}
}

// FuzzTranslate: no input panics Outbound or Inbound, a translated packet
// whose checksum was right is still right, and translating back restores
// the bytes.
func FuzzTranslate(f *testing.F) {
	fx := newFixture(f, nil)
	ulid := fx.ulid(4)
	f.Add(buildPacket(hostStable, peer, protoTCP, tcpSeg(10)))
	f.Add(buildPacket(peer, ulid, protoUDP, udpDgram(3)))
	f.Add(buildPacket(router, ulid, protoICMPv6, icmpErr(1, buildPacket(ulid, peer, protoUDP, udpDgram(20)))))
	f.Add(buildPacket(hostStable, peer, protoICMPv6, icmpErr(1, buildPacket(peer, hostStable, protoTCP, tcpSeg(4)))))
	f.Add(buildPacket(hostStable, peer, protoUDP, udpDgram(40), []byte{0, 0, 0, 1, 0, 0, 0, 7, protoFragment}))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, out := range []bool{true, false} {
			buf, s, e := place(in)
			n := 0
			if len(in) >= 40 {
				n = min(len(in), 40+int(binary.BigEndian.Uint16(in[4:])))
			}
			okBefore := n >= 40 && checksumOK(in[:n])
			var v Verdict
			if out {
				v = fx.tr.Outbound(buf, s, e, fx.now)
			} else {
				v = fx.tr.Inbound(buf, s, e, fx.now)
			}
			if v != Translated {
				if !bytes.Equal(buf[s:e], in) {
					t.Fatalf("untranslated packet changed")
				}
				continue
			}
			p := buf[s : s+n]
			if okBefore && !checksumOK(p) {
				t.Fatalf("checksum broken by translation: %x", p)
			}
			// Translating back restores the packet, unless a UDP
			// checksum had to become 0xffff; a ones' complement sum
			// may come back as the other zero (0x0000 for 0xffff).
			field, quoted, a := offSrc, offDst, [16]byte(in[offSrc:offSrc+16])
			if !out {
				field, quoted, a = offDst, offSrc, [16]byte(in[offDst:offDst+16])
			}
			translate(p, field, quoted, [16]byte(p[field:field+16]), a)
			if off, ulp := upperLayer(in[:n]); ulp != protoUDP || checksumOff(in[:n], off, ulp) < 0 {
				if !sameUpToZero(p, in[:n]) {
					t.Fatalf("round trip\n got %x\nwant %x", p, in[:n])
				}
			}
		}
	})
}

// sameUpToZero reports whether a and b differ at most in 16-bit words
// that are 0x0000 in one and 0xffff in the other (the two zeros of ones'
// complement arithmetic).
func sameUpToZero(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] == b[i] {
			continue
		}
		w := i &^ 1
		if w+1 >= len(a) {
			return false
		}
		x, y := binary.BigEndian.Uint16(a[w:]), binary.BigEndian.Uint16(b[w:])
		if x^y != 0xffff || x != 0 && y != 0 {
			return false
		}
		i = w + 1
	}
	return true
}

package ip6

import (
	"net/netip"
	"testing"
)

// packet builds a fixed header naming first, followed by exts.
func packet(first uint8, exts ...[]byte) []byte {
	p := make([]byte, HeaderLen)
	p[0] = 0x60
	p[OffNextHeader] = first
	src, dst := netip.MustParseAddr("2001:db8::1").As16(), netip.MustParseAddr("2001:db8::2").As16()
	copy(p[OffSrc:], src[:])
	copy(p[OffDst:], dst[:])
	for _, e := range exts {
		p = append(p, e...)
	}
	n := len(p) - HeaderLen
	p[4], p[5] = byte(n>>8), byte(n)
	return p
}

// ext is an extension header of n 8-octet units naming next.
func ext(next uint8, units int) []byte {
	b := make([]byte, units*8)
	b[0], b[1] = next, byte(units-1)
	return b
}

func frag(next uint8, offset uint16) []byte {
	return []byte{next, 0, byte(offset >> 5), byte(offset << 3), 0, 0, 0, 1}
}

func ah(next uint8) []byte { // 12-octet ICV: (4+2)*4 = 24 octets
	b := make([]byte, 24)
	b[0], b[1] = next, 4
	return b
}

func TestHeader(t *testing.T) {
	p := append(packet(17, make([]byte, 8)), 0, 0) // two bytes of link padding
	h := Header(p)
	if !h.Valid() || h.PayloadLen() != 8 || h.NextHeader() != 17 || h.End() != HeaderLen+8 {
		t.Fatalf("valid %v len %d next %d end %d", h.Valid(), h.PayloadLen(), h.NextHeader(), h.End())
	}
	if h.Src() != netip.MustParseAddr("2001:db8::1") || h.Dst() != netip.MustParseAddr("2001:db8::2") {
		t.Errorf("src %v dst %v", h.Src(), h.Dst())
	}
	if Header(p[:HeaderLen-1]).Valid() {
		t.Error("short header valid")
	}
	p[0] = 0x45
	if h.Valid() {
		t.Error("version 4 valid")
	}
	q := packet(17)
	q[4] = 1 // payload length 256, packet shorter
	if Header(q).End() != len(q) {
		t.Errorf("End past the slice: %d", Header(q).End())
	}
}

func TestIter(t *testing.T) {
	type stop struct {
		proto      uint8
		off, nhOff int
		truncated  bool
	}
	tests := []struct {
		name string
		pkt  []byte
		want stop
	}{
		{"no extension headers", packet(6, make([]byte, 20)), stop{6, 40, 6, false}},
		{"every kind", packet(ProtoHopByHop, ext(ProtoDstOpts, 1), ext(ProtoRouting, 2), ext(ProtoFragment, 1),
			frag(ProtoAH, 0), ah(6), make([]byte, 20)), stop{6, 40 + 8 + 16 + 8 + 8 + 24, 40 + 8 + 16 + 8 + 8, false}},
		{"shim6 ends the walk", packet(ProtoDstOpts, ext(140, 1), make([]byte, 8)), stop{140, 48, 40, false}},
		{"non-first fragment", packet(ProtoFragment, frag(6, 185), make([]byte, 8)), stop{ProtoFragment, 40, 6, false}},
		{"header runs past the packet", packet(ProtoHopByHop, ext(6, 2))[:HeaderLen+8], stop{ProtoHopByHop, 40, 6, true}},
		{"header cut before its length", packet(ProtoRouting, ext(6, 1))[:HeaderLen+4], stop{ProtoRouting, 40, 6, true}},
	}
	long := make([][]byte, MaxExtHeaders)
	for i := range long {
		long[i] = ext(ProtoDstOpts, 1)
	}
	tests = append(tests, struct {
		name string
		pkt  []byte
		want stop
	}{"chain too long", packet(ProtoDstOpts, long...), stop{ProtoDstOpts, 40 + 8*(MaxExtHeaders-1), 40 + 8*(MaxExtHeaders-2), true}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := NewIter(tt.pkt)
			for it.Next() {
			}
			got := stop{it.Proto(), it.Offset(), it.NextHeaderOffset(), it.Truncated()}
			if got != tt.want {
				t.Errorf("stopped at %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzIter: any bytes after a fixed header walk without panicking, and
// every step moves forward within the packet.
func FuzzIter(f *testing.F) {
	f.Add(packet(ProtoHopByHop, ext(ProtoFragment, 1), frag(ProtoAH, 0), ah(6)))
	f.Add(packet(ProtoRouting, ext(ProtoRouting, 1))[:HeaderLen+9])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < HeaderLen {
			return
		}
		it := NewIter(b)
		steps := 0
		for {
			off := it.Offset()
			if !it.Next() {
				break
			}
			steps++
			if it.Offset() <= off || it.Offset() > len(b) || it.NextHeaderOffset() != off {
				t.Fatalf("step %d: %d → %d (nh at %d) in %d bytes", steps, off, it.Offset(), it.NextHeaderOffset(), len(b))
			}
		}
		if steps >= MaxExtHeaders {
			t.Fatalf("%d steps", steps)
		}
	})
}

package checksum

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// refChecksum is the RFC 1071 reference: 16-bit words, end-around carry.
func refChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
		s = s&0xffff + s>>16
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := Checksum(b, 0), refChecksum(b); got != want {
			t.Fatalf("len %d: Checksum = %#04x, reference %#04x", n, got, want)
		}
	}
}

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 §3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Fold(Sum(b, 0)); got != 0xddf2 {
		t.Fatalf("sum = %#04x, want 0xddf2", got)
	}
}

func TestIncrementalMatchesFull(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 200; n++ {
		b := make([]byte, 64)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		old := Checksum(b, 0)
		var a16, c16 [16]byte
		copy(a16[:], b[8:24])
		for i := range c16 {
			c16[i] = byte(r.Uint32())
		}
		copy(b[8:24], c16[:])
		got := UpdateAddr(old, netip.AddrFrom16(a16), netip.AddrFrom16(c16))
		if want := Checksum(b, 0); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			t.Fatalf("incremental %#04x, full %#04x", got, want)
		}
		w := b[30:32]
		oldw := uint16(w[0])<<8 | uint16(w[1])
		old = Checksum(b, 0)
		neww := uint16(r.Uint32())
		w[0], w[1] = byte(neww>>8), byte(neww)
		got = Update16(old, oldw, neww)
		if want := Checksum(b, 0); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			t.Fatalf("16-bit incremental %#04x, full %#04x", got, want)
		}
	}
}

func TestPseudoHeader(t *testing.T) {
	src := netip.MustParseAddr("2001:db8::1")
	dst := netip.MustParseAddr("2001:db8::2")
	var ph [40]byte
	s, d := src.As16(), dst.As16()
	copy(ph[0:], s[:])
	copy(ph[16:], d[:])
	ph[34], ph[35] = 0x12, 0x34 // length 0x1234
	ph[39] = 17
	if got, want := Fold(PseudoHeader(src, dst, 0x1234, 17)), Fold(Sum(ph[:], 0)); got != want {
		t.Fatalf("pseudo-header sum %#04x, want %#04x", got, want)
	}
}

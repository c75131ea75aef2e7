package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/shim6gw/shim6gw/tunnel"
)

// superSpec describes a synthetic GSO super-packet.
type superSpec struct {
	name    string
	udp     bool
	ext     int // bytes of a Destination Options header before L4, 0 or a multiple of 8
	tcpOpts int // bytes of TCP options, a multiple of 4
	payload int
	size    int
	flags   byte // TCP flags of the super-packet
}

// naiveSum is RFC 1071 over 16-bit words, the slow obvious way.
func naiveSum(b []byte, sum uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func naiveFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// l4Sum is the pseudo-header (RFC 8200 §8.1) plus the transport bytes.
func l4Sum(pkt []byte, l4Off int, proto byte) uint16 {
	l4 := pkt[l4Off:]
	var ph [40]byte
	copy(ph[:32], pkt[8:40])
	binary.BigEndian.PutUint32(ph[32:], uint32(len(l4)))
	ph[39] = proto
	return naiveFold(naiveSum(l4, naiveSum(ph[:], 0)))
}

// buildSuper builds a super-packet for spec as the kernel hands it over:
// checksum field holding the partial (pseudo-header) sum, payload length
// of the whole packet, header with NEEDS_CSUM.
func buildSuper(s superSpec, rng *rand.Rand) ([]byte, tunnel.GSOInfo) {
	l4Off := 40 + s.ext
	thl := 8
	proto := byte(17)
	if !s.udp {
		thl, proto = 20+s.tcpOpts, 6
	}
	hdrLen := l4Off + thl
	p := make([]byte, hdrLen+s.payload)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	p[0], p[1], p[2], p[3] = 0x60, 0x01, 0x23, 0x45
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	p[7] = 64
	if s.ext > 0 {
		p[6] = 60 // Destination Options
		p[40], p[41] = proto, byte(s.ext/8-1)
		// PadN over the rest, so the header is well formed.
		p[42], p[43] = 1, byte(s.ext-4)
		clear(p[44:l4Off])
	} else {
		p[6] = proto
	}
	l4 := p[l4Off:]
	g := tunnel.GSOInfo{Flags: 1, HdrLen: uint16(hdrLen), Size: uint16(s.size), CsumStart: uint16(l4Off)}
	if s.udp {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		g.Type, g.CsumOffset = uint8(tunnel.GSOUDPL4), 6
	} else {
		l4[12] = byte(thl/4) << 4
		l4[13] = s.flags
		g.Type, g.CsumOffset = uint8(tunnel.GSOTCPv6), 16
	}
	ck := l4[g.CsumOffset:]
	ck[0], ck[1] = 0, 0
	// Partial: only the pseudo-header, uncomplemented (CHECKSUM_PARTIAL).
	var ph [40]byte
	copy(ph[:32], p[8:40])
	binary.BigEndian.PutUint32(ph[32:], uint32(len(l4)))
	ph[39] = proto
	binary.BigEndian.PutUint16(ck, naiveFold(naiveSum(ph[:], 0)))
	return p, g
}

// refSegments builds the expected segments one by one from the spec.
func refSegments(s superSpec, super []byte) [][]byte {
	l4Off := 40 + s.ext
	hdrLen := l4Off + 8
	if !s.udp {
		hdrLen = l4Off + 20 + s.tcpOpts
	}
	payload := super[hdrLen:]
	var segs [][]byte
	seq := binary.BigEndian.Uint32(super[l4Off+4:])
	for off := 0; off < len(payload); off += s.size {
		end := min(off+s.size, len(payload))
		seg := append(append([]byte(nil), super[:hdrLen]...), payload[off:end]...)
		binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)-40))
		l4 := seg[l4Off:]
		proto := byte(17)
		ckAt := 6
		if s.udp {
			binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		} else {
			proto, ckAt = 6, 16
			binary.BigEndian.PutUint32(l4[4:], seq+uint32(off))
			flags := s.flags
			if end < len(payload) {
				flags &^= 0x01 | 0x08 // FIN, PSH
			}
			if off > 0 {
				flags &^= 0x80 // CWR
			}
			l4[13] = flags
		}
		l4[ckAt], l4[ckAt+1] = 0, 0
		c := ^l4Sum(seg, l4Off, proto)
		if c == 0 && s.udp {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[ckAt:], c)
		segs = append(segs, seg)
	}
	return segs
}

var superSpecs = []superSpec{
	{name: "tcp", payload: 64000, size: 1440, flags: 0x18 | 0x01},
	{name: "tcp-exact-multiple", payload: 1440 * 8, size: 1440, flags: 0x10},
	{name: "tcp-options-ext-cwr", ext: 16, tcpOpts: 12, payload: 30001, size: 1388, flags: 0x80 | 0x18},
	{name: "tcp-odd-size", payload: 9999, size: 1001, flags: 0x18},
	{name: "tcp-one-short-segment", payload: 100, size: 1440, flags: 0x18},
	{name: "udp", udp: true, payload: 5000, size: 1200},
	{name: "udp-odd", udp: true, ext: 8, payload: 4097, size: 1111},
}

func splitBufs(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

func TestSplitGSOMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range superSpecs {
		t.Run(s.name, func(t *testing.T) {
			super, g := buildSuper(s, rng)
			orig := append([]byte(nil), super...)
			want := refSegments(s, super)
			bufs, sizes := splitBufs(64, tunnel.Offset+2048)
			n, err := tunnel.SplitGSO(super, g, bufs, sizes, tunnel.Offset)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(super, orig) {
				t.Error("SplitGSO modified its input")
			}
			if n != len(want) {
				t.Fatalf("%d segments, want %d", n, len(want))
			}
			proto := byte(6)
			if s.udp {
				proto = 17
			}
			var total int
			for j := range n {
				got := bufs[j][tunnel.Offset : tunnel.Offset+sizes[j]]
				if !bytes.Equal(got, want[j]) {
					t.Fatalf("segment %d differs from the reference at byte %d (len %d, want %d)", j, firstDiff(got, want[j]), len(got), len(want[j]))
				}
				if c := l4Sum(got, 40+s.ext, proto); c != 0xffff {
					t.Errorf("segment %d: checksum does not verify (sum %#04x)", j, c)
				}
				total += len(got) - (len(want[0]) - min(s.size, s.payload))
			}
			if total != s.payload {
				t.Errorf("segments carry %d payload bytes, want %d", total, s.payload)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSplitGSOErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	super, g := buildSuper(superSpecs[0], rng)
	bufs, sizes := splitBufs(64, tunnel.Offset+2048)
	tests := []struct {
		name string
		pkt  []byte
		g    func(tunnel.GSOInfo) tunnel.GSOInfo
		bufs [][]byte
		want error
	}{
		{"tcpv4 type", super, func(g tunnel.GSOInfo) tunnel.GSOInfo { g.Type = uint8(tunnel.GSOTCPv4); return g }, bufs, tunnel.ErrBadGSO},
		{"no gso", super, func(g tunnel.GSOInfo) tunnel.GSOInfo { g.Type = 0; return g }, bufs, tunnel.ErrBadGSO},
		{"zero size", super, func(g tunnel.GSOInfo) tunnel.GSOInfo { g.Size = 0; return g }, bufs, tunnel.ErrBadGSO},
		{"csum start in ipv6 header", super, func(g tunnel.GSOInfo) tunnel.GSOInfo { g.CsumStart = 20; return g }, bufs, tunnel.ErrBadGSO},
		{"csum start past end", super, func(g tunnel.GSOInfo) tunnel.GSOInfo { g.CsumStart = 65000; return g }, bufs, tunnel.ErrBadGSO},
		{"wrong tcp csum offset", super, func(g tunnel.GSOInfo) tunnel.GSOInfo { g.CsumOffset = 6; return g }, bufs, tunnel.ErrBadGSO},
		{"not ipv6", append([]byte{0x45}, super[1:]...), func(g tunnel.GSOInfo) tunnel.GSOInfo { return g }, bufs, tunnel.ErrBadGSO},
		{"headers only", super[:60], func(g tunnel.GSOInfo) tunnel.GSOInfo { return g }, bufs, tunnel.ErrBadGSO},
		{"too many segments", super, func(g tunnel.GSOInfo) tunnel.GSOInfo { g.Size = 100; return g }, bufs, tunnel.ErrTooManySegments},
		{"buffers too small", super, func(g tunnel.GSOInfo) tunnel.GSOInfo { return g }, bufs[:0:0], tunnel.ErrTooManySegments},
	}
	small, _ := splitBufs(64, tunnel.Offset+1000)
	tests = append(tests, struct {
		name string
		pkt  []byte
		g    func(tunnel.GSOInfo) tunnel.GSOInfo
		bufs [][]byte
		want error
	}{"segment overflows buffer", super, func(g tunnel.GSOInfo) tunnel.GSOInfo { return g }, small, tunnel.ErrTooBig})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tunnel.SplitGSO(tc.pkt, tc.g(g), tc.bufs, sizes, tunnel.Offset)
			if !errors.Is(err, tc.want) || n != 0 {
				t.Errorf("SplitGSO = %d, %v; want 0, %v", n, err, tc.want)
			}
		})
	}
}

func TestCompleteChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range []superSpec{
		{name: "tcp", payload: 1000, size: 1440, flags: 0x18},
		{name: "tcp-odd", payload: 999, size: 1440, tcpOpts: 12, ext: 8},
		{name: "udp", udp: true, payload: 77, size: 1440},
	} {
		t.Run(s.name, func(t *testing.T) {
			p, g := buildSuper(s, rng)
			g.Type, g.Size = 0, 0
			want := refSegments(s, p)[0] // one segment: the complete packet
			if err := tunnel.CompleteChecksum(p, g); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, want) {
				t.Errorf("completed packet differs at byte %d", firstDiff(p, want))
			}
		})
	}
	p, g := buildSuper(superSpecs[0], rng)
	g.CsumStart = uint16(len(p))
	if err := tunnel.CompleteChecksum(p, g); !errors.Is(err, tunnel.ErrBadGSO) {
		t.Errorf("csum start at the end: %v, want ErrBadGSO", err)
	}
	before := append([]byte(nil), p...)
	if err := tunnel.CompleteChecksum(p, tunnel.GSOInfo{}); err != nil || !bytes.Equal(p, before) {
		t.Errorf("without NeedsCsum: err %v, changed %v", err, !bytes.Equal(p, before))
	}
}

func TestSplitGSOZeroAllocs(t *testing.T) {
	super, g := buildSuper(superSpecs[0], rand.New(rand.NewPCG(7, 8)))
	bufs, sizes := splitBufs(64, tunnel.Offset+2048)
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := tunnel.SplitGSO(super, g, bufs, sizes, tunnel.Offset); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per split, want 0", allocs)
	}
}

func TestGSOInfo(t *testing.T) {
	g := tunnel.GSOInfo{Flags: 1, Type: uint8(tunnel.GSOTCPv6) | 0x80}
	if g.Kind() != tunnel.GSOTCPv6 || !g.IsSuper() || !g.NeedsCsum() || g.IsZero() {
		t.Errorf("%+v: kind %v super %v csum %v zero %v", g, g.Kind(), g.IsSuper(), g.NeedsCsum(), g.IsZero())
	}
	var z tunnel.GSOInfo
	if z.IsSuper() || z.NeedsCsum() || !z.IsZero() {
		t.Error("zero GSOInfo is not a plain packet")
	}
}

func BenchmarkSplitGSO(b *testing.B) {
	super, g := buildSuper(superSpecs[0], rand.New(rand.NewPCG(9, 10)))
	bufs, sizes := splitBufs(64, tunnel.Offset+2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(super)))
	for b.Loop() {
		if _, err := tunnel.SplitGSO(super, g, bufs, sizes, tunnel.Offset); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzSplitGSO feeds arbitrary packets and headers: no panic, and every
// segment SplitGSO returns fits its buffer and carries a valid checksum.
func FuzzSplitGSO(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, s := range superSpecs {
		s.payload = min(s.payload, 3000)
		p, g := buildSuper(s, rng)
		f.Add(p, g.Flags, g.Type, g.Size, g.CsumStart, g.CsumOffset)
	}
	bufs, sizes := splitBufs(16, tunnel.Offset+1600)
	f.Fuzz(func(t *testing.T, pkt []byte, flags, typ uint8, size, csumStart, csumOffset uint16) {
		g := tunnel.GSOInfo{Flags: flags, Type: typ, Size: size, CsumStart: csumStart, CsumOffset: csumOffset}
		orig := append([]byte(nil), pkt...)
		n, err := tunnel.SplitGSO(pkt, g, bufs, sizes, tunnel.Offset)
		if !bytes.Equal(pkt, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			if n != 0 {
				t.Fatalf("%d segments with error %v", n, err)
			}
			return
		}
		proto := byte(6)
		if g.Kind() == tunnel.GSOUDPL4 {
			proto = 17
		}
		for j := range n {
			seg := bufs[j][tunnel.Offset : tunnel.Offset+sizes[j]]
			if c := l4Sum(seg, int(csumStart), proto); c != 0xffff {
				t.Fatalf("segment %d: bad checksum %#04x", j, c)
			}
		}
		// CompleteChecksum on the same bytes must not panic either.
		_ = tunnel.CompleteChecksum(pkt, g)
	})
}

package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/tunnel"
)

// segSpec describes one TCP/IPv6 segment of a GRO test batch.
type segSpec struct {
	flow    byte   // source port low byte: distinguishes flows
	seq     uint32 // relative to 1000
	ack     uint32
	payload int
	flags   byte // default ACK
	hop     byte // default 64
	label   byte // flow label low byte
	opts    byte // TCP option filler; 0 means no options, else 12 bytes of it
	optLen  int  // TCP option bytes when opts != 0, default 12
	badSum  bool
	udp     bool
	window  uint16         // default 512
	hdr     tunnel.GSOInfo // a non-zero virtio-net header to write before it
}

const groOff = tunnel.WriteHeadroom

// buildSeg builds s as a TCP/IPv6 packet with a valid checksum (unless
// badSum); the payload bytes depend on seq so that merges are checkable.
func buildSeg(s segSpec) []byte {
	thl := 20
	if s.opts != 0 {
		thl += cmpOr(s.optLen, 12)
	}
	l4len := thl + s.payload
	if s.udp {
		l4len = 8 + s.payload
	}
	p := make([]byte, 40+l4len)
	p[0], p[1], p[2], p[3] = 0x60, 0x00, 0x00, s.label
	binary.BigEndian.PutUint16(p[4:], uint16(l4len))
	p[6], p[7] = 6, cmpOr(s.hop, 64)
	copy(p[8:], []byte{0xfd, 0, 0, 5, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	copy(p[24:], []byte{0xfd, 0, 0, 5, 0, 0xb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	l4 := p[40:]
	binary.BigEndian.PutUint16(l4[0:], 40000+uint16(s.flow))
	binary.BigEndian.PutUint16(l4[2:], 5201)
	ckAt := 16
	if s.udp {
		p[6], ckAt = 17, 6
		binary.BigEndian.PutUint16(l4[4:], uint16(l4len))
		for i := range s.payload {
			l4[8+i] = byte(i)
		}
	} else {
		binary.BigEndian.PutUint32(l4[4:], 1000+s.seq)
		binary.BigEndian.PutUint32(l4[8:], s.ack)
		l4[12] = byte(thl/4) << 4
		l4[13] = cmpOr(s.flags, 0x10)
		binary.BigEndian.PutUint16(l4[14:], cmpOr(s.window, 512))
		for i := 20; i < thl; i++ {
			l4[i] = s.opts
		}
		for i := range s.payload {
			l4[thl+i] = byte(s.seq + uint32(i))
		}
	}
	c := ^l4Sum(p, 40, p[6])
	if s.badSum {
		c ^= 0x0101
	}
	binary.BigEndian.PutUint16(l4[ckAt:], c)
	return p
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// groBatch lays the packets out as the pipeline hands them to Write: each
// at groOff in a buffer with spare capacity room behind it, header before.
func groBatch(pkts [][]byte, hdrs []tunnel.GSOInfo, room int) [][]byte {
	bufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		b := make([]byte, groOff+len(p), groOff+len(p)+room)
		copy(b[groOff-tunnel.VirtioHeaderLen:], vnetHdr(hdrs[i]))
		copy(b[groOff:], p)
		bufs[i] = b
	}
	return bufs
}

func decodeHdr(h []byte) tunnel.GSOInfo {
	return tunnel.GSOInfo{
		Flags: h[0], Type: h[1],
		HdrLen: binary.NativeEndian.Uint16(h[2:]), Size: binary.NativeEndian.Uint16(h[4:]),
		CsumStart: binary.NativeEndian.Uint16(h[6:]), CsumOffset: binary.NativeEndian.Uint16(h[8:]),
	}
}

// wantMerged builds the super-packet the segments must coalesce into: the
// first one's headers with the total payload length, PSH if the last has
// it, the payloads in order, the partial (pseudo-header) checksum; and
// its virtio-net header.
func wantMerged(segs [][]byte) ([]byte, tunnel.GSOInfo) {
	first := segs[0]
	thl := int(first[52]>>4) * 4
	p := append([]byte(nil), first...)
	for _, s := range segs[1:] {
		p = append(p, s[40+thl:]...)
	}
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	p[53] |= segs[len(segs)-1][53] & 0x08
	var ph [40]byte
	copy(ph[:32], p[8:40])
	binary.BigEndian.PutUint32(ph[32:], uint32(len(p)-40))
	ph[39] = 6
	binary.BigEndian.PutUint16(p[56:], naiveFold(naiveSum(ph[:], 0)))
	g := tunnel.GSOInfo{Flags: 1, Type: uint8(tunnel.GSOTCPv6), HdrLen: uint16(40 + thl),
		Size: uint16(len(first) - 40 - thl), CsumStart: 40, CsumOffset: 16}
	return p, g
}

var superHdr = tunnel.GSOInfo{Flags: 1, Type: uint8(tunnel.GSOTCPv6), HdrLen: 60, Size: 100, CsumStart: 40, CsumOffset: 16}

var groCases = []struct {
	name string
	segs []segSpec
	room int     // spare capacity behind each packet; default 64 KiB
	want [][]int // per packet written, in order: the inputs merged into it
}{
	{"one flow", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100}, {seq: 200, payload: 100}}, 0,
		[][]int{{0, 1, 2}}},
	{"shorter last", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100}, {seq: 200, payload: 37}}, 0,
		[][]int{{0, 1, 2}}},
	{"nothing after a shorter one", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 50}, {seq: 150, payload: 50}}, 0,
		[][]int{{0, 1}, {2}}},
	{"larger after smaller", []segSpec{{seq: 0, payload: 50}, {seq: 50, payload: 100}}, 0,
		[][]int{{0}, {1}}},
	{"psh on the last", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100, flags: 0x18}}, 0,
		[][]int{{0, 1}}},
	{"nothing after psh", []segSpec{{seq: 0, payload: 100, flags: 0x18}, {seq: 100, payload: 100}}, 0,
		[][]int{{0}, {1}}},
	{"psh ends the merge", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100, flags: 0x18}, {seq: 200, payload: 100}}, 0,
		[][]int{{0, 1}, {2}}},
	{"sequence gap", []segSpec{{seq: 0, payload: 100}, {seq: 200, payload: 100}, {seq: 300, payload: 100}}, 0,
		[][]int{{0}, {1, 2}}},
	{"other ack", []segSpec{{seq: 0, payload: 100, ack: 1}, {seq: 100, payload: 100, ack: 2}}, 0,
		[][]int{{0}, {1}}},
	{"two flows interleaved", []segSpec{{flow: 1, seq: 0, payload: 100}, {flow: 2, seq: 0, payload: 80},
		{flow: 1, seq: 100, payload: 100}, {flow: 2, seq: 80, payload: 80}}, 0,
		[][]int{{0, 2}, {1, 3}}},
	{"hop limit differs", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100, hop: 63}}, 0,
		[][]int{{0}, {1}}},
	{"window differs", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100, window: 511}}, 0,
		[][]int{{0}, {1}}},
	{"flow label differs", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100, label: 9}}, 0,
		[][]int{{0}, {1}}},
	{"same options", []segSpec{{seq: 0, payload: 100, opts: 1}, {seq: 100, payload: 100, opts: 1}}, 0,
		[][]int{{0, 1}}},
	{"options differ", []segSpec{{seq: 0, payload: 100, opts: 1}, {seq: 100, payload: 100, opts: 2}}, 0,
		[][]int{{0}, {1}}},
	{"option lengths differ", []segSpec{{seq: 0, payload: 100, opts: 1}, {seq: 100, payload: 100, opts: 1, optLen: 8}}, 0,
		[][]int{{0}, {1}}},
	{"bad checksum not merged", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100, badSum: true}, {seq: 200, payload: 100}}, 0,
		[][]int{{0}, {1}, {2}}},
	{"bad head checksum", []segSpec{{seq: 0, payload: 100, badSum: true}, {seq: 100, payload: 100}}, 0,
		[][]int{{0}, {1}}},
	{"fin of the flow is not overtaken", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100, flags: 0x11}, {seq: 200, payload: 100}}, 0,
		[][]int{{0}, {1}, {2}}},
	{"pure ack of the flow is not overtaken", []segSpec{{seq: 0, payload: 100}, {seq: 100}, {seq: 100, payload: 100}}, 0,
		[][]int{{0}, {1}, {2}}},
	{"kept super-packet of the flow is not overtaken", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100, hdr: superHdr}, {seq: 200, payload: 100}}, 0,
		[][]int{{0}, {1}, {2}}},
	{"udp passes", []segSpec{{udp: true, payload: 100}, {udp: true, payload: 100}}, 0,
		[][]int{{0}, {1}}},
	{"no room behind: moved to a spare buffer", []segSpec{{seq: 0, payload: 100}, {seq: 100, payload: 100}, {seq: 200, payload: 100}}, 150,
		[][]int{{0, 1, 2}}},
}

func TestCoalesce(t *testing.T) {
	var c tunnel.Coalescer
	for _, tc := range groCases {
		t.Run(tc.name, func(t *testing.T) {
			pkts := make([][]byte, len(tc.segs))
			hdrs := make([]tunnel.GSOInfo, len(tc.segs))
			for i, s := range tc.segs {
				pkts[i], hdrs[i] = buildSeg(s), s.hdr
			}
			bufs := groBatch(pkts, hdrs, cmpOr(tc.room, 1<<16))
			idx := c.Coalesce(bufs, groOff)
			if len(idx) != len(tc.want) {
				t.Fatalf("wrote %v, want %d packets %v", idx, len(tc.want), tc.want)
			}
			for k, group := range tc.want {
				got := bufs[idx[k]]
				if idx[k] != group[0] {
					t.Errorf("packet %d is input %d, want %d", k, idx[k], group[0])
				}
				gotHdr := decodeHdr(got[groOff-tunnel.VirtioHeaderLen:])
				if len(group) == 1 {
					// Unchanged, header and all.
					if !bytes.Equal(got[groOff:], pkts[group[0]]) || gotHdr != hdrs[group[0]] {
						t.Errorf("packet %d changed: %+v %x", k, gotHdr, got[groOff:])
					}
					continue
				}
				var segs [][]byte
				for _, i := range group {
					segs = append(segs, pkts[i])
				}
				want, wantHdr := wantMerged(segs)
				if d := cmp.Diff(wantHdr, gotHdr); d != "" {
					t.Errorf("packet %d header (-want +got):\n%s", k, d)
				}
				if !bytes.Equal(got[groOff:], want) {
					t.Errorf("packet %d: %d bytes, want %d; first difference at %d", k, len(got)-groOff, len(want), firstDiff(got[groOff:], want))
				}
				// The kernel's segmentation gives the inputs back.
				checkSplit(t, got[groOff:], gotHdr, segs)
			}
		})
	}
}

// checkSplit segments super with SplitGSO and compares with segs.
func checkSplit(t *testing.T, super []byte, g tunnel.GSOInfo, segs [][]byte) {
	t.Helper()
	out, sizes := splitBufs(len(segs)+1, 2048)
	n, err := tunnel.SplitGSO(super, g, out, sizes, 0)
	if err != nil {
		t.Fatalf("SplitGSO: %v", err)
	}
	if n != len(segs) {
		t.Fatalf("split into %d segments, want %d", n, len(segs))
	}
	for j := range n {
		if got := out[j][:sizes[j]]; !bytes.Equal(got, segs[j]) {
			t.Errorf("segment %d differs from its input at byte %d", j, firstDiff(got, segs[j]))
		}
	}
}

func TestCoalesceManyFlows(t *testing.T) {
	// More flows than MaxGROFlows, each twice, the second round in reverse:
	// the flows still open merge (in order), the ones evicted start anew.
	const flows = tunnel.MaxGROFlows + 4
	var pkts [][]byte
	second := map[int]int{} // flow → index of its second packet
	for f := range flows {
		pkts = append(pkts, buildSeg(segSpec{flow: byte(f), payload: 100}))
	}
	for f := flows - 1; f >= 0; f-- {
		second[f] = len(pkts)
		pkts = append(pkts, buildSeg(segSpec{flow: byte(f), seq: 100, payload: 100}))
	}
	bufs := groBatch(pkts, make([]tunnel.GSOInfo, len(pkts)), 1<<16)
	var c tunnel.Coalescer
	idx := c.Coalesce(bufs, groOff)
	seen := map[int]bool{}
	merged := 0
	for _, i := range idx {
		if seen[i] {
			t.Fatalf("input %d written twice", i)
		}
		seen[i] = true
		p := bufs[i][groOff:]
		if len(p) == len(pkts[i]) {
			if !bytes.Equal(p, pkts[i]) {
				t.Errorf("packet %d changed", i)
			}
			continue
		}
		merged++
		if i >= flows {
			t.Fatalf("second-round packet %d grew", i)
		}
		want, _ := wantMerged([][]byte{pkts[i], pkts[second[i]]})
		if !bytes.Equal(p, want) {
			t.Errorf("flow %d merged wrongly", i)
		}
	}
	for f, j := range second {
		grew := len(bufs[f]) > groOff+len(pkts[f])
		if grew == seen[j] {
			t.Errorf("flow %d: merged %v, second packet written %v", f, grew, seen[j])
		}
	}
	// Round-robin eviction leaves the MaxGROFlows flows seen last open.
	if merged != tunnel.MaxGROFlows || len(idx)+merged != len(pkts) {
		t.Errorf("%d written, %d merged of %d packets", len(idx), merged, len(pkts))
	}
}

func TestCoalesceSmallOffset(t *testing.T) {
	pkts := [][]byte{buildSeg(segSpec{payload: 100}), buildSeg(segSpec{seq: 100, payload: 100})}
	bufs := groBatch(pkts, make([]tunnel.GSOInfo, 2), 1<<16)
	for i := range bufs {
		bufs[i] = bufs[i][groOff-4:]
	}
	var c tunnel.Coalescer
	if idx := c.Coalesce(bufs, 4); !cmp.Equal(idx, []int{0, 1}) {
		t.Errorf("offset 4: wrote %v, want both unchanged", idx)
	}
}

// bigBatch is a full 64 KiB worth of 1440-byte segments of one flow,
// plus one of another flow in the middle.
func bigBatch() ([][]byte, [][]byte) {
	var pkts [][]byte
	for j := range 44 {
		pkts = append(pkts, buildSeg(segSpec{seq: uint32(j * 1440), payload: 1440}))
		if j == 20 {
			pkts = append(pkts, buildSeg(segSpec{flow: 7, payload: 1000}))
		}
	}
	bufs := groBatch(pkts, make([]tunnel.GSOInfo, len(pkts)), 1<<16)
	return pkts, bufs
}

func TestCoalesceBigAndZeroAllocs(t *testing.T) {
	pkts, bufs := bigBatch()
	var c tunnel.Coalescer
	idx := c.Coalesce(bufs, groOff)
	if !cmp.Equal(idx, []int{0, 21}) {
		t.Fatalf("wrote %v, want [0 21]", idx)
	}
	segs := append(append([][]byte{}, pkts[:21]...), pkts[22:]...)
	want, wantHdr := wantMerged(segs)
	if got := bufs[0][groOff:]; !bytes.Equal(got, want) {
		t.Fatalf("merged packet differs at %d", firstDiff(got, want))
	}
	if got := decodeHdr(bufs[0][groOff-tunnel.VirtioHeaderLen:]); got != wantHdr {
		t.Fatalf("header %+v, want %+v", got, wantHdr)
	}
	checkSplit(t, bufs[0][groOff:], wantHdr, segs)

	saved := make([][]byte, len(bufs))
	for i := range bufs {
		saved[i] = bufs[i]
	}
	allocs := testing.AllocsPerRun(50, func() {
		for i := range bufs {
			bufs[i] = saved[i][:groOff+len(pkts[i])]
			copy(bufs[i][groOff:], pkts[i])
			clear(bufs[i][groOff-tunnel.VirtioHeaderLen : groOff])
		}
		if n := len(c.Coalesce(bufs, groOff)); n != 2 {
			t.Fatalf("wrote %d packets, want 2", n)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}

func BenchmarkCoalesce(b *testing.B) {
	pkts, bufs := bigBatch()
	saved := append([][]byte(nil), bufs...)
	var c tunnel.Coalescer
	var bytes int
	for _, p := range pkts {
		bytes += len(p)
	}
	b.ReportAllocs()
	b.SetBytes(int64(bytes))
	for b.Loop() {
		b.StopTimer()
		for i := range bufs {
			bufs[i] = saved[i][:groOff+len(pkts[i])]
			copy(bufs[i][groOff:], pkts[i])
			clear(bufs[i][groOff-tunnel.VirtioHeaderLen : groOff])
		}
		b.StartTimer()
		c.Coalesce(bufs, groOff)
	}
}

// fuzzBatch turns fuzz bytes into a batch of up to 12 packets: each op
// byte picks a mutation of a valid segment of one of three flows (so that
// merges happen), or raw bytes taken from data.
func fuzzBatch(ops, data []byte) ([][]byte, []tunnel.GSOInfo) {
	var pkts [][]byte
	var hdrs []tunnel.GSOInfo
	seqs := [3]uint32{}
	for k, op := range ops[:min(len(ops), 12)] {
		flow := int(op>>6) % 3
		s := segSpec{flow: byte(flow), seq: seqs[flow], payload: 1 + int(op&7)*13}
		var hdr tunnel.GSOInfo
		switch (op >> 3) & 7 {
		case 0, 1, 2: // the next segment of the flow
		case 3:
			s.flags = 0x18
		case 4:
			s.seq += 5 // a gap
		case 5:
			s.hop, s.badSum = 63, op&1 == 0
		case 6:
			hdr = superHdr
		case 7: // raw bytes, maybe a broken TCP packet
			n := min(len(data), 40+int(op&7)*9)
			p := append([]byte(nil), data[:n]...)
			data = data[n:]
			if len(p) > 7 && k%2 == 0 {
				p[0], p[6] = 0x60, 6
			}
			pkts, hdrs = append(pkts, p), append(hdrs, hdr)
			continue
		}
		seqs[flow] = s.seq + uint32(s.payload)
		pkts, hdrs = append(pkts, buildSeg(s)), append(hdrs, hdr)
	}
	return pkts, hdrs
}

// FuzzCoalesce checks on random batches that Coalesce never panics, never
// writes outside a buffer's capacity or before the virtio-net header, and
// that every input comes out exactly once: written unchanged, or inside a
// written super-packet whose segmentation (SplitGSO) gives back the
// inputs merged into it, in order.
func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, []byte{})
	f.Add([]byte{0x00, 0x40, 0x01, 0x41, 0x18, 0x02, 0x80, 0x81}, []byte{})
	f.Add([]byte{0x07, 0x07, 0x27, 0x07, 0x3f, 0x07, 0x30, 0x37}, bytes.Repeat([]byte{0x60, 0, 0, 0, 0, 20, 6, 64}, 20))
	for _, tc := range groCases {
		ops := make([]byte, 0, len(tc.segs))
		for _, s := range tc.segs {
			ops = append(ops, s.flow<<6|byte(s.payload%8))
		}
		f.Add(ops, []byte{})
	}
	const guard = 32
	f.Fuzz(func(t *testing.T, ops, data []byte) {
		pkts, hdrs := fuzzBatch(ops, data)
		if len(pkts) == 0 {
			return
		}
		room := 150
		if len(ops) > 0 && ops[0]&1 == 1 {
			room = 1 << 16
		}
		// One backing array, each buffer followed by guard bytes.
		var backing []byte
		var starts []int
		for _, p := range pkts {
			starts = append(starts, len(backing))
			backing = append(backing, make([]byte, groOff+len(p)+room+guard)...)
		}
		for i := range backing {
			backing[i] = 0xa5
		}
		bufs := make([][]byte, len(pkts))
		for i, p := range pkts {
			s := starts[i]
			b := backing[s : s+groOff+len(p) : s+groOff+len(p)+room]
			copy(b[groOff-tunnel.VirtioHeaderLen:], vnetHdr(hdrs[i]))
			copy(b[groOff:], p)
			bufs[i] = b
		}
		var c tunnel.Coalescer
		idx := c.Coalesce(bufs, groOff)
		for i, s := range starts {
			end := s + groOff + len(pkts[i]) + room
			for j := s; j < s+groOff-tunnel.VirtioHeaderLen; j++ {
				if backing[j] != 0xa5 {
					t.Fatalf("buffer %d: headroom byte %d written", i, j-s)
				}
			}
			for j := end; j < end+guard; j++ {
				if backing[j] != 0xa5 {
					t.Fatalf("buffer %d: byte %d past its capacity written", i, j-end)
				}
			}
		}
		written := map[int]bool{}
		for _, i := range idx {
			if i < 0 || i >= len(pkts) || written[i] {
				t.Fatalf("bad or repeated index %d in %v", i, idx)
			}
			written[i] = true
		}
		claimed := map[int]bool{}
		for _, i := range idx {
			got := bufs[i][groOff:]
			g := decodeHdr(bufs[i][groOff-tunnel.VirtioHeaderLen:])
			if bytes.Equal(got, pkts[i]) && g == hdrs[i] {
				continue
			}
			if !hdrs[i].IsZero() || g.Kind() != tunnel.GSOTCPv6 {
				t.Fatalf("packet %d changed without becoming a super-packet: %+v", i, g)
			}
			out, sizes := splitBufs(len(pkts)+1, 2048)
			n, err := tunnel.SplitGSO(got, g, out, sizes, 0)
			if err != nil || n < 2 {
				t.Fatalf("packet %d: split into %d: %v", i, n, err)
			}
			prev := i
			for j := range n {
				seg := out[j][:sizes[j]]
				k := i
				if j > 0 {
					for k = prev + 1; k < len(pkts); k++ {
						if !written[k] && !claimed[k] && sameSeg(seg, pkts[k]) {
							break
						}
					}
				}
				if k == len(pkts) || !sameSeg(seg, pkts[k]) {
					t.Fatalf("packet %d: segment %d matches no input after %d", i, j, prev)
				}
				claimed[k], prev = true, k
			}
		}
		for k := range pkts {
			if !written[k] && !claimed[k] {
				t.Fatalf("input %d lost", k)
			}
		}
	})
}

// sameSeg compares segments, the TCP checksums' two encodings of zero
// (0x0000 and 0xffff, RFC 1071) taken as equal.
func sameSeg(a, b []byte) bool {
	if len(a) != len(b) || len(a) < 60 {
		return bytes.Equal(a, b)
	}
	ca, cb := binary.BigEndian.Uint16(a[56:]), binary.BigEndian.Uint16(b[56:])
	if ca != cb && ca^cb != 0xffff || ca != cb && ca != 0 && cb != 0 {
		return false
	}
	return bytes.Equal(a[:56], b[:56]) && bytes.Equal(a[58:], b[58:])
}

// TestCoalesceRestore: packets whose buffers cannot grow (segments split
// into one-MTU buffers) are merged in spare buffers, at most groScratch
// per batch; Restore gives the caller its own buffers back.
func TestCoalesceRestore(t *testing.T) {
	const flows = 40 // more than the 32 spare buffers
	var pkts [][]byte
	for f := range flows {
		for k := range 3 {
			pkts = append(pkts, buildSeg(segSpec{seq: uint32(k * 100), payload: 100, flow: byte(f)}))
		}
	}
	bufs := groBatch(pkts, make([]tunnel.GSOInfo, len(pkts)), 150)
	orig := make([]*byte, len(bufs))
	for i := range bufs {
		orig[i] = &bufs[i][:1][0]
	}
	var c tunnel.Coalescer
	idx := c.Coalesce(bufs, groOff)
	merged, grown := 0, 0
	for _, i := range idx {
		switch len(bufs[i]) - groOff {
		case len(pkts[i]) + 200:
			merged++
			checkSplit(t, bufs[i][groOff:], decodeHdr(bufs[i][groOff-tunnel.VirtioHeaderLen:]), pkts[i:i+3])
		case len(pkts[i]) + 100:
			grown++ // one segment appended in its own room
		default:
			if !bytes.Equal(bufs[i][groOff:], pkts[i]) {
				t.Errorf("packet %d changed", i)
			}
		}
	}
	if merged != 32 || grown != flows-32 || len(idx) != 32+2*(flows-32) {
		t.Errorf("merged %d, grown %d, wrote %d; want 32, %d, %d", merged, grown, len(idx), flows-32, 32+2*(flows-32))
	}
	c.Restore(bufs)
	for i := range bufs {
		if &bufs[i][:1][0] != orig[i] {
			t.Fatalf("buffer %d not restored", i)
		}
	}
}

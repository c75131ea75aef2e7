package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/tunnel"
	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

// virtioFake is a VirtioDevice over the channel fake: Inbound frames and
// Outbound packets are a 10-byte virtio-net header followed by the packet.
type virtioFake struct{ *tuntest.Device }

func newVirtioFake(batch int, discard bool) virtioFake {
	return virtioFake{tuntest.New(tuntest.Config{BatchSize: batch, Buffer: 256, Discard: discard, MinWriteOffset: 1})}
}

func (virtioFake) VirtioHeaders() bool { return true }

func (d virtioFake) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.Device.Read(bufs, sizes, offset-tunnel.VirtioHeaderLen)
	for i := range n {
		sizes[i] -= tunnel.VirtioHeaderLen
	}
	return n, err
}

func (d virtioFake) Write(bufs [][]byte, offset int) (int, error) {
	return d.Device.Write(bufs, offset-tunnel.VirtioHeaderLen)
}

func vnetHdr(g tunnel.GSOInfo) []byte {
	h := make([]byte, tunnel.VirtioHeaderLen)
	h[0], h[1] = g.Flags, g.Type
	binary.NativeEndian.PutUint16(h[2:], g.HdrLen)
	binary.NativeEndian.PutUint16(h[4:], g.Size)
	binary.NativeEndian.PutUint16(h[6:], g.CsumStart)
	binary.NativeEndian.PutUint16(h[8:], g.CsumOffset)
	return h
}

func frame(g tunnel.GSOInfo, pkt []byte) []byte { return append(vnetHdr(g), pkt...) }

// gsoInputs is a plain packet, a TCP super-packet and a single packet with
// a partial checksum, with what splitting and completing must make of them.
type gsoInputs struct {
	plain, super, partial []byte
	superG, partialG      tunnel.GSOInfo
	segments              [][]byte
	completed             []byte
}

func newGSOInputs() gsoInputs {
	rng := rand.New(rand.NewPCG(21, 22))
	var in gsoInputs
	in.plain = pkt(7, 200)
	spec := superSpec{payload: 20000, size: 1440, flags: 0x18}
	in.super, in.superG = buildSuper(spec, rng)
	in.segments = refSegments(spec, in.super)
	pspec := superSpec{payload: 500, size: 1440, flags: 0x18}
	in.partial, in.partialG = buildSuper(pspec, rng)
	in.partialG.Type, in.partialG.Size = 0, 0
	in.completed = refSegments(pspec, in.partial)[0]
	return in
}

func (in gsoInputs) send(d virtioFake) {
	d.Inbound <- frame(tunnel.GSOInfo{}, in.plain)
	d.Inbound <- frame(in.superG, in.super)
	d.Inbound <- frame(in.partialG, in.partial)
}

func recvFrames(t *testing.T, d virtioFake, n int) [][]byte {
	t.Helper()
	var out [][]byte
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case f := <-d.Outbound:
			out = append(out, f)
		case <-timeout:
			t.Fatalf("got %d of %d packets", len(out), n)
		}
	}
	return out
}

// TestPipelineGSOKeepsWhole: with a GSOFilter that keeps everything
// (Passthrough), super-packets and partial checksums are written back
// byte for byte with the header they were read with.
func TestPipelineGSOKeepsWhole(t *testing.T) {
	in := newGSOInputs()
	dev := newVirtioFake(8, false)
	r := start(t, dev, tunnel.Config{Processor: tunnel.Passthrough{}, BufSize: tunnel.BufSize})
	in.send(dev)
	got := recvFrames(t, dev, 3)
	want := [][]byte{frame(tunnel.GSOInfo{}, in.plain), frame(in.superG, in.super), frame(in.partialG, in.partial)}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("packet %d differs at byte %d (len %d, want %d)", i, firstDiff(got[i], want[i]), len(got[i]), len(want[i]))
		}
	}
	st := r.p.Stats()
	if st.GSOPackets.Load() != 1 || st.GSOKept.Load() != 1 || st.GSOSegments.Load() != 0 || st.GSOErrors.Load() != 0 {
		t.Errorf("gso stats: packets %d kept %d segments %d errors %d; want 1 1 0 0",
			st.GSOPackets.Load(), st.GSOKept.Load(), st.GSOSegments.Load(), st.GSOErrors.Load())
	}
}

// TestPipelineGSOSplitsForProcessor: a Processor without GSOFilter sees
// the super-packet as its segments and the partial checksum completed, in
// read order, none with GSO set; they are written with a zero header.
func TestPipelineGSOSplitsForProcessor(t *testing.T) {
	in := newGSOInputs()
	dev := newVirtioFake(8, false)
	var mu sync.Mutex
	var seen [][]byte
	proc := tunnel.ProcessorFunc(func(b *tunnel.Batch) {
		mu.Lock()
		defer mu.Unlock()
		for i := range b.Packets {
			if !b.Packets[i].GSO.IsZero() {
				t.Errorf("processor got packet %d with GSO %+v", i, b.Packets[i].GSO)
			}
			seen = append(seen, append([]byte(nil), b.Data(i)...))
			// Move it as a payload-header insertion would.
			buf, p := b.Buf(i), &b.Packets[i]
			copy(buf[p.Start-8:], buf[p.Start:p.End])
			p.Start, p.End = p.Start-8, p.End-8
		}
	})
	r := start(t, dev, tunnel.Config{Processor: proc, BufSize: tunnel.BufSize})
	in.send(dev)
	want := append(append([][]byte{in.plain}, in.segments...), in.completed)
	got := recvFrames(t, dev, len(want))
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Fatalf("processor saw %d packets, want %d", len(seen), len(want))
	}
	zero := make([]byte, tunnel.VirtioHeaderLen)
	for i := range want {
		if !bytes.Equal(seen[i], want[i]) {
			t.Errorf("processor packet %d differs at byte %d", i, firstDiff(seen[i], want[i]))
		}
		if !bytes.Equal(got[i][:tunnel.VirtioHeaderLen], zero) || !bytes.Equal(got[i][tunnel.VirtioHeaderLen:], want[i]) {
			t.Errorf("written packet %d: header % x, body differs at %d", i, got[i][:tunnel.VirtioHeaderLen], firstDiff(got[i][tunnel.VirtioHeaderLen:], want[i]))
		}
	}
	st := r.p.Stats()
	if st.GSOPackets.Load() != 1 || st.GSOKept.Load() != 0 || st.GSOSegments.Load() != uint64(len(in.segments)) {
		t.Errorf("gso stats: packets %d kept %d segments %d; want 1 0 %d",
			st.GSOPackets.Load(), st.GSOKept.Load(), st.GSOSegments.Load(), len(in.segments))
	}
}

// keepAndMove promises to keep packets whole and then moves them anyway.
type keepAndMove struct{}

func (keepAndMove) KeepWhole([]byte, tunnel.GSOInfo) bool { return true }
func (keepAndMove) Process(b *tunnel.Batch) {
	for i := range b.Packets {
		b.Packets[i].Start -= 8
	}
}

// TestPipelineGSOKeptPacketMovedIsDropped: a kept super-packet that the
// Processor resizes cannot be written with its header; it is dropped and
// counted, while a plain packet in the same batch goes through.
func TestPipelineGSOKeptPacketMovedIsDropped(t *testing.T) {
	in := newGSOInputs()
	dev := newVirtioFake(8, false)
	r := start(t, dev, tunnel.Config{Processor: keepAndMove{}, BufSize: tunnel.BufSize})
	dev.Inbound <- frame(in.superG, in.super)
	dev.Inbound <- frame(tunnel.GSOInfo{}, in.plain)
	got := recvFrames(t, dev, 1)
	if len(got[0]) != tunnel.VirtioHeaderLen+len(in.plain)+8 {
		t.Errorf("wrote %d bytes, want the moved plain packet (%d)", len(got[0]), tunnel.VirtioHeaderLen+len(in.plain)+8)
	}
	r.stop(t)
	if n := r.p.Stats().BadBounds.Load(); n != 1 {
		t.Errorf("BadBounds %d, want 1", n)
	}
}

// TestPipelineGSOBadHeaderDropped: a super-packet whose header does not
// describe it is dropped and counted, not written.
func TestPipelineGSOBadHeaderDropped(t *testing.T) {
	in := newGSOInputs()
	dev := newVirtioFake(8, false)
	r := start(t, dev, tunnel.Config{Processor: tunnel.ProcessorFunc(func(*tunnel.Batch) {}), BufSize: tunnel.BufSize})
	bad := in.superG
	bad.Type = uint8(tunnel.GSOTCPv4)
	dev.Inbound <- frame(bad, in.super)
	dev.Inbound <- frame(tunnel.GSOInfo{}, in.plain)
	got := recvFrames(t, dev, 1)
	if !bytes.Equal(got[0][tunnel.VirtioHeaderLen:], in.plain) {
		t.Error("the plain packet behind the bad one was not forwarded")
	}
	r.stop(t)
	if n := r.p.Stats().GSOErrors.Load(); n != 1 {
		t.Errorf("GSOErrors %d, want 1", n)
	}
}

// TestPipelineGSOSplitZeroAllocs: reading a super-packet, splitting it,
// processing and writing the segments allocates nothing.
func TestPipelineGSOSplitZeroAllocs(t *testing.T) {
	in := newGSOInputs()
	dev := newVirtioFake(8, true)
	dev.Writes = make(chan int, 64)
	start(t, dev, tunnel.Config{Processor: tunnel.ProcessorFunc(func(*tunnel.Batch) {}), BufSize: tunnel.BufSize})
	f := frame(in.superG, in.super)
	want := uint64(0)
	round := func() {
		dev.Inbound <- f
		want += uint64(len(in.segments))
		for dev.WrittenPackets.Load() < want {
			<-dev.Writes
		}
	}
	round()
	if allocs := testing.AllocsPerRun(50, round); allocs != 0 {
		t.Errorf("%v allocations per super-packet, want 0", allocs)
	}
}

func TestNewPipelineVirtioNeedsFullBuffers(t *testing.T) {
	dev := newVirtioFake(8, true)
	if _, err := tunnel.NewPipeline(dev, tunnel.Config{BufSize: tunnel.Offset + 2048}); !errors.Is(err, tunnel.ErrBadConfig) {
		t.Errorf("NewPipeline with small buffers on a virtio device: %v, want ErrBadConfig", err)
	}
}

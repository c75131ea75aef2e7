package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"testing/synctest"

	"github.com/shim6gw/shim6gw/tunnel"
	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

// boundsProc moves each packet's bounds by the deltas and sets the verdict
// found in its own first bytes, however wrong they are.
var boundsProc = tunnel.ProcessorFunc(func(b *tunnel.Batch) {
	for i := range b.Packets {
		p := &b.Packets[i]
		d := b.Data(i)
		if len(d) < 5 {
			continue
		}
		p.Start += int(int16(binary.BigEndian.Uint16(d[0:])))
		p.End += int(int16(binary.BigEndian.Uint16(d[2:])))
		p.Verdict = tunnel.Verdict(d[4] % 4) // includes an unknown verdict
	}
})

// FuzzPipelineBounds checks that whatever bounds and verdicts a Processor
// leaves, the pipeline never panics, writes exactly the packets that are
// valid forwards, byte for byte, and accounts for every packet once.
func FuzzPipelineBounds(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 1, 2, 3}, []byte{0xff, 0xf8, 0, 0, 0, 9, 9})
	f.Add([]byte{0xff, 0xf0, 0, 0, 0}, []byte{0, 0, 0x10, 0, 0})
	f.Add([]byte{0, 4, 0xff, 0xff, 2, 7, 7, 7}, []byte{0x80, 0, 0x7f, 0xff, 1})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		const bufSize = tunnel.Offset + 1280
		in := [][]byte{a, b}
		var want [][]byte
		var forwards, bad uint64
		for _, p := range in {
			if len(p) == 0 || tunnel.Offset+len(p) > bufSize {
				t.Skip()
			}
			if len(p) < 5 {
				want = append(want, p)
				forwards++
				continue
			}
			start := tunnel.Offset + int(int16(binary.BigEndian.Uint16(p[0:])))
			end := tunnel.Offset + len(p) + int(int16(binary.BigEndian.Uint16(p[2:])))
			v := tunnel.Verdict(p[4] % 4)
			valid := start >= tunnel.WriteHeadroom && start <= end && end <= bufSize
			switch {
			case v == tunnel.Drop:
			case !valid:
				bad++
			case v == tunnel.Forward:
				// The bytes at [start, end) are the packet read at
				// Offset, with zeros around it in a fresh buffer.
				buf := make([]byte, bufSize)
				copy(buf[tunnel.Offset:], p)
				want = append(want, buf[start:end])
				forwards++
			default: // Divert without a queue, or an unknown verdict: dropped
			}
		}
		synctest.Test(t, func(t *testing.T) {
			dev := tuntest.New(tuntest.Config{BatchSize: 2, Buffer: 2})
			dev.Inbound <- a
			dev.Inbound <- b
			r := start(t, dev, tunnel.Config{Processor: boundsProc, Batches: 2, BufSize: bufSize})
			// Wait until both packets went through and every goroutine
			// blocks again; Outbound has room for both.
			synctest.Wait()
			got := recvN(t, dev, len(want))
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("packet %d = %x, want %x", i, got[i], want[i])
				}
			}
			r.stop(t)
			s := r.p.Stats()
			accounted := s.TxPackets.Load() + s.Dropped.Load() + s.DivertDrops.Load() + s.BadBounds.Load()
			if s.RxPackets.Load() != 2 || accounted != 2 {
				t.Errorf("rx %d, accounted %d (tx %d drop %d divert %d bad %d), want 2 2",
					s.RxPackets.Load(), accounted, s.TxPackets.Load(), s.Dropped.Load(), s.DivertDrops.Load(), s.BadBounds.Load())
			}
			if s.TxPackets.Load() != forwards || s.BadBounds.Load() != bad {
				t.Errorf("tx %d bad %d, want %d %d", s.TxPackets.Load(), s.BadBounds.Load(), forwards, bad)
			}
		})
	})
}

package tunnel_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/tunnel"
)

// TestPipelineDivertsOwnSlotBehindSplitSuperPacket: a control message read
// in the same batch as a super-packet that was split sits in a read buffer
// whose index is not its packet index; the divert queue must get its own
// bytes, not those of whatever buffer has its packet index.
func TestPipelineDivertsOwnSlotBehindSplitSuperPacket(t *testing.T) {
	in := newGSOInputs()
	dev := newVirtioFake(8, true)
	ctl := pkt(0xff, 96)
	// Queued before the pipeline starts, so that one read returns both.
	dev.Inbound <- frame(in.superG, in.super)
	dev.Inbound <- frame(tunnel.GSOInfo{}, ctl)
	batches := make(chan int, 4)
	proc := tunnel.ProcessorFunc(func(b *tunnel.Batch) {
		batches <- b.Len()
		divertFF.Process(b)
	})
	q := tunnel.NewDivertQueue(4, 2048)
	start(t, dev, tunnel.Config{Processor: proc, Divert: q, BufSize: tunnel.BufSize})
	if n := <-batches; n != len(in.segments)+1 {
		t.Fatalf("first batch has %d packets, want the %d segments and the control message", n, len(in.segments)+1)
	}
	select {
	case d := <-q.C():
		if !bytes.Equal(d.Bytes(), ctl) {
			t.Errorf("diverted %d bytes differing at %d, want the control message's %d", len(d.Bytes()), firstDiff(d.Bytes(), ctl), len(ctl))
		}
		d.Release()
	case <-time.After(10 * time.Second):
		t.Fatal("nothing diverted")
	}
}

package tunnel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/tunnel"
	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

var _ tunnel.Device = (*tuntest.Device)(nil)

// testBufSize keeps test batches small; nothing here needs GRO room.
const testBufSize = tunnel.Offset + 2048

// pkt returns a recognisable fake packet: id in the first byte, then a
// fill pattern.
func pkt(id byte, n int) []byte {
	b := make([]byte, n)
	b[0] = id
	for i := 1; i < n; i++ {
		b[i] = byte(i) ^ id
	}
	return b
}

type runner struct {
	p      *tunnel.Pipeline
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, dev tunnel.Device, cfg tunnel.Config) *runner {
	t.Helper()
	if cfg.BufSize == 0 {
		cfg.BufSize = testBufSize
	}
	p, err := tunnel.NewPipeline(dev, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{p: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *runner) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err, ok := <-r.done; ok {
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		close(r.done)
	}
}

func recvN(t *testing.T, d *tuntest.Device, n int) [][]byte {
	t.Helper()
	var got [][]byte
	for range n {
		got = append(got, <-d.Outbound)
	}
	return got
}

func TestPipelineForwardsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := tuntest.New(tuntest.Config{BatchSize: 8, Buffer: 64})
		var want [][]byte
		for i := range 40 {
			p := pkt(byte(i), 60+i*7)
			want = append(want, p)
			dev.Inbound <- p
		}
		r := start(t, dev, tunnel.Config{})
		got := recvN(t, dev, len(want))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("packets (-want +got):\n%s", diff)
		}
		r.stop(t)
		s := r.p.Stats()
		if s.RxPackets.Load() != 40 || s.TxPackets.Load() != 40 {
			t.Errorf("rx %d tx %d packets, want 40 40", s.RxPackets.Load(), s.TxPackets.Load())
		}
		var wantBytes uint64
		for _, p := range want {
			wantBytes += uint64(len(p))
		}
		if s.RxBytes.Load() != wantBytes || s.TxBytes.Load() != wantBytes {
			t.Errorf("rx %d tx %d bytes, want %d", s.RxBytes.Load(), s.TxBytes.Load(), wantBytes)
		}
		// 40 queued packets in batches of at most 8: exactly 5 full batches.
		if got := s.Batches.Load(); got != 5 {
			t.Errorf("batches = %d, want 5", got)
		}
		if got := dev.WriteCalls.Load(); got != 5 {
			t.Errorf("write calls = %d, want one per batch (5)", got)
		}
	})
}

// shimProc imitates the rewrite package: it moves packet bounds within the
// buffer's headroom and tail.
type shimProc struct{}

var shimHdr = []byte{0x3b, 0, 0x80, 0, 0xde, 0xad, 0xbe, 0xef}

func (shimProc) Process(b *tunnel.Batch) {
	for i := range b.Packets {
		p := &b.Packets[i]
		buf := b.Buf(i)
		switch buf[p.Start] {
		case 1: // insert 8 bytes after a 4-byte "header", moving it forward
			copy(buf[p.Start-8:], buf[p.Start:p.Start+4])
			p.Start -= 8
			copy(buf[p.Start+4:], shimHdr)
		case 2: // strip 4 bytes after the first byte
			copy(buf[p.Start+4:], buf[p.Start:p.Start+1])
			p.Start += 4
		case 3: // build a 10-byte reply behind the packet
			reply := buf[p.End+100 : p.End+110]
			for j := range reply {
				reply[j] = 0xa0 + byte(j)
			}
			p.Start, p.End = p.End+100, p.End+110
		case 4: // rewrite a byte in place
			buf[p.Start+1] = 0xff
		}
	}
}

func TestPipelineProcessorModifies(t *testing.T) {
	p1 := pkt(1, 50)
	p2 := pkt(2, 50)
	p3 := pkt(3, 50)
	p4 := pkt(4, 50)
	want := [][]byte{
		append(append(append([]byte{}, p1[:4]...), shimHdr...), p1[4:]...),
		append([]byte{2}, p2[5:]...),
		{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9},
		append([]byte{4, 0xff}, p4[2:]...),
	}
	synctest.Test(t, func(t *testing.T) {
		dev := tuntest.New(tuntest.Config{BatchSize: 4, Buffer: 8})
		for _, p := range [][]byte{p1, p2, p3, p4} {
			dev.Inbound <- p
		}
		start(t, dev, tunnel.Config{Processor: shimProc{}})
		got := recvN(t, dev, 4)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("packets (-want +got):\n%s", diff)
		}
	})
}

func TestPipelineDropsAndBadBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := tuntest.New(tuntest.Config{BatchSize: 16, Buffer: 16})
		proc := tunnel.ProcessorFunc(func(b *tunnel.Batch) {
			for i := range b.Packets {
				p := &b.Packets[i]
				switch b.Data(i)[0] % 4 {
				case 1:
					p.Verdict = tunnel.Drop
				case 2:
					p.Start = tunnel.WriteHeadroom - 1 // no room for the virtio header
				case 3:
					p.End = len(b.Buf(i)) + 1
				}
			}
		})
		var want [][]byte
		for i := range 16 {
			p := pkt(byte(i), 40)
			if i%4 == 0 {
				want = append(want, p)
			}
			dev.Inbound <- p
		}
		r := start(t, dev, tunnel.Config{Processor: proc})
		got := recvN(t, dev, len(want))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("packets (-want +got):\n%s", diff)
		}
		r.stop(t)
		s := r.p.Stats()
		if s.Dropped.Load() != 4 || s.BadBounds.Load() != 8 || s.TxPackets.Load() != 4 {
			t.Errorf("dropped %d bad bounds %d tx %d, want 4 8 4", s.Dropped.Load(), s.BadBounds.Load(), s.TxPackets.Load())
		}
	})
}

// divertFF diverts packets whose first byte is 0xff.
var divertFF = tunnel.ProcessorFunc(func(b *tunnel.Batch) {
	for i := range b.Packets {
		if b.Data(i)[0] == 0xff {
			b.Packets[i].Verdict = tunnel.Divert
		}
	}
})

func TestPipelineDivertFullIsCountedNotBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := tuntest.New(tuntest.Config{BatchSize: 4, Buffer: 32})
		q := tunnel.NewDivertQueue(2, 256)
		var ctl [][]byte
		var data [][]byte
		for i := range 10 {
			c := pkt(0xff, 30+i)
			d := pkt(byte(i), 60)
			ctl = append(ctl, c)
			data = append(data, d)
			dev.Inbound <- c
			dev.Inbound <- d
		}
		r := start(t, dev, tunnel.Config{Processor: divertFF, Divert: q})
		// Nobody reads the divert queue: data must still flow.
		got := recvN(t, dev, len(data))
		if diff := cmp.Diff(data, got); diff != "" {
			t.Errorf("data packets (-want +got):\n%s", diff)
		}
		synctest.Wait()
		s := r.p.Stats()
		if s.Diverted.Load() != 2 || s.DivertDrops.Load() != 8 {
			t.Errorf("diverted %d drops %d, want 2 8", s.Diverted.Load(), s.DivertDrops.Load())
		}
		if q.Pushed.Load() != 2 || q.Dropped.Load() != 8 {
			t.Errorf("queue pushed %d dropped %d, want 2 8", q.Pushed.Load(), q.Dropped.Load())
		}
		// The first two control messages are queued, in order, intact.
		for i := range 2 {
			d := <-q.C()
			if !bytes.Equal(d.Bytes(), ctl[i]) {
				t.Errorf("diverted %d = %x, want %x", i, d.Bytes(), ctl[i])
			}
			d.Release()
		}
		// Released buffers take new control messages.
		dev.Inbound <- ctl[9]
		d := <-q.C()
		if !bytes.Equal(d.Bytes(), ctl[9]) {
			t.Errorf("diverted after release = %x, want %x", d.Bytes(), ctl[9])
		}
		d.Release()
	})
}

func TestPipelineDivertWithoutQueueDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := tuntest.New(tuntest.Config{BatchSize: 4, Buffer: 4})
		dev.Inbound <- pkt(0xff, 40)
		dev.Inbound <- pkt(1, 40)
		r := start(t, dev, tunnel.Config{Processor: divertFF})
		got := recvN(t, dev, 1)
		if got[0][0] != 1 {
			t.Errorf("forwarded packet id %d, want 1", got[0][0])
		}
		synctest.Wait()
		if n := r.p.Stats().DivertDrops.Load(); n != 1 {
			t.Errorf("divert drops = %d, want 1", n)
		}
	})
}

func TestPipelineBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Outbound is unbuffered and nobody reads it: the writer blocks on
		// its first packet. The reader may then fill the rest of the ring
		// and must stop reading.
		dev := tuntest.New(tuntest.Config{BatchSize: 1})
		inbound := make(chan []byte, 100)
		dev.Inbound = inbound
		for i := range 100 {
			inbound <- pkt(byte(i), 40)
		}
		r := start(t, dev, tunnel.Config{Batches: 3})
		synctest.Wait()
		// One batch in the writer, two queued: three packets read.
		if got := r.p.Stats().RxPackets.Load(); got != 3 {
			t.Errorf("read %d packets while the writer is stuck, want 3", got)
		}
		if len(inbound) != 97 {
			t.Errorf("%d packets left in the device, want 97", len(inbound))
		}
		// Draining the writer lets everything through in order.
		for i := range 100 {
			if p := <-dev.Outbound; p[0] != byte(i) {
				t.Fatalf("packet %d has id %d", i, p[0])
			}
		}
	})
}

func TestPipelineShutdown(t *testing.T) {
	tests := []struct {
		name string
		stop func(r *runner, dev *tuntest.Device)
	}{
		{"context", func(r *runner, _ *tuntest.Device) { r.cancel() }},
		{"device close", func(_ *runner, dev *tuntest.Device) { dev.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				before := runtime.NumGoroutine()
				dev := tuntest.New(tuntest.Config{BatchSize: 4, Buffer: 4})
				p, err := tunnel.NewPipeline(dev, tunnel.Config{BufSize: testBufSize})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				r := &runner{p: p, cancel: cancel, done: make(chan error, 1)}
				go func() { r.done <- p.Run(ctx) }()
				dev.Inbound <- pkt(1, 40)
				<-dev.Outbound
				tt.stop(r, dev)
				if err := <-r.done; err != nil {
					t.Errorf("Run = %v, want nil after close", err)
				}
				select {
				case <-dev.Closed():
				default:
					t.Error("device not closed after Run returned")
				}
				if after := runtime.NumGoroutine(); after != before {
					t.Errorf("%d goroutines after Run, %d before", after, before)
				}
				if err := p.Run(context.Background()); !errors.Is(err, tunnel.ErrAlreadyRun) {
					t.Errorf("second Run = %v, want ErrAlreadyRun", err)
				}
			})
		})
	}
}

// failingDev fails every read with a non-close error.
type failingDev struct{ *tuntest.Device }

var errBroken = errors.New("broken")

func (failingDev) Read([][]byte, []int, int) (int, error) { return 0, errBroken }

func TestPipelineGivesUpOnBrokenDevice(t *testing.T) {
	dev := failingDev{tuntest.New(tuntest.Config{})}
	p, err := tunnel.NewPipeline(dev, tunnel.Config{BufSize: testBufSize})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(context.Background())
	if !errors.Is(err, errBroken) {
		t.Errorf("Run = %v, want %v", err, errBroken)
	}
	if p.Stats().ReadErrors.Load() == 0 {
		t.Error("read errors not counted")
	}
	select {
	case <-dev.Closed():
	default:
		t.Error("device left open after fatal error")
	}
}

func TestPipelineInject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := tuntest.New(tuntest.Config{BatchSize: 4, Buffer: 4})
		r := start(t, dev, tunnel.Config{})
		msg := pkt(9, 72)
		if err := r.p.Inject(msg); err != nil {
			t.Fatal(err)
		}
		if got := <-dev.Outbound; !bytes.Equal(got, msg) {
			t.Errorf("injected %x, got %x", msg, got)
		}
		if err := r.p.Inject(make([]byte, testBufSize)); !errors.Is(err, tunnel.ErrTooBig) {
			t.Errorf("oversized inject = %v, want ErrTooBig", err)
		}
		r.stop(t)
		if err := r.p.Inject(msg); !tunnel.IsClosed(err) {
			t.Errorf("inject after close = %v, want closed", err)
		}
	})
}

func TestNewPipelineRejectsBadConfig(t *testing.T) {
	dev := tuntest.New(tuntest.Config{})
	for _, cfg := range []tunnel.Config{
		{Batches: 1},
		{BufSize: tunnel.Offset + 100},
	} {
		if _, err := tunnel.NewPipeline(dev, cfg); !errors.Is(err, tunnel.ErrBadConfig) {
			t.Errorf("NewPipeline(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
}

// TestPipelineZeroAllocs checks the steady state: a batch read, processed
// and written allocates nothing.
func TestPipelineZeroAllocs(t *testing.T) {
	const batch = 32
	dev := tuntest.New(tuntest.Config{BatchSize: batch, Discard: true, Buffer: batch})
	// Room for one notification per packet, so none is lost.
	dev.Writes = make(chan int, batch)
	proc := tunnel.ProcessorFunc(func(b *tunnel.Batch) {
		for i := range b.Packets {
			b.Packets[i].Start -= 8 // as if a header was inserted
			if b.Data(i)[8] == 0xff {
				b.Packets[i].Verdict = tunnel.Divert
			}
		}
	})
	q := tunnel.NewDivertQueue(4, 2048)
	r := start(t, dev, tunnel.Config{Processor: proc, Divert: q})
	data := pkt(1, 1280)
	ctl := pkt(0xff, 100)
	round := func() {
		dev.Inbound <- ctl
		for range batch - 1 {
			dev.Inbound <- data
		}
		for n := 0; n < batch-1; n += <-dev.Writes {
		}
		(<-q.C()).Release()
	}
	round() // warm up
	allocs := testing.AllocsPerRun(50, round)
	if allocs != 0 {
		t.Errorf("%v allocations per batch of %d, want 0", allocs, batch)
	}
	if got := r.p.Stats().Diverted.Load(); got != 51+1 {
		t.Errorf("diverted %d, want 52", got)
	}
}

// batchDev hands out exactly the batches sent on its channel, so that a
// test controls batch boundaries.
type batchDev struct {
	*tuntest.Device
	batches chan [][]byte
}

func (d batchDev) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case <-d.Closed():
		return 0, os.ErrClosed
	case b := <-d.batches:
		for i, p := range b {
			sizes[i] = copy(bufs[i][offset:], p)
		}
		return len(b), nil
	}
}

// sizeRecorder records every value observed.
type sizeRecorder struct {
	mu   sync.Mutex
	seen []float64
}

func (r *sizeRecorder) Observe(v float64) {
	r.mu.Lock()
	r.seen = append(r.seen, v)
	r.mu.Unlock()
}

// TestBatchSizesObserved: every read's packet count reaches
// Config.BatchSizes, once per read.
func TestBatchSizesObserved(t *testing.T) {
	sizes := []int{1, 2, 3, 4, 5, 8, 9, 128, 129}
	want := []float64{1, 2, 3, 4, 5, 8, 9, 128, 129}
	synctest.Test(t, func(t *testing.T) {
		dev := batchDev{tuntest.New(tuntest.Config{BatchSize: 200, Buffer: 200}), make(chan [][]byte)}
		var rec sizeRecorder
		r := start(t, dev, tunnel.Config{Batches: 2, BufSize: tunnel.Offset + 1280, BatchSizes: &rec})
		for _, n := range sizes {
			b := make([][]byte, n)
			for i := range b {
				b[i] = pkt(byte(i), 40)
			}
			dev.batches <- b
			if diff := cmp.Diff(b, recvN(t, dev.Device, n)); diff != "" {
				t.Errorf("batch of %d (-want +got):\n%s", n, diff)
			}
		}
		r.stop(t)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if diff := cmp.Diff(want, rec.seen); diff != "" {
			t.Errorf("observed sizes (-want +got):\n%s", diff)
		}
	})
}

func TestVerdictString(t *testing.T) {
	got := fmt.Sprint(tunnel.Forward, tunnel.Drop, tunnel.Divert, tunnel.Verdict(9))
	if want := "forward drop divert unknown"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

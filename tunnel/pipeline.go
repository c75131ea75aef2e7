package tunnel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// DefaultBatches is the default number of batches in a pipeline's ring:
// one being read and processed, one being written, and two queued between
// them to absorb jitter.
const DefaultBatches = 4

// maxReadErrors is how many consecutive failed reads (other than close)
// Run tolerates before it gives up, so a broken device cannot spin.
const maxReadErrors = 1000

// Config configures a Pipeline. The zero value forwards every packet
// unchanged and drops packets marked Divert.
type Config struct {
	// Processor handles each batch; nil means Passthrough.
	Processor Processor
	// Divert receives packets marked Divert; nil drops them (counted in
	// Stats.DivertDrops).
	Divert *DivertQueue
	// Batches is the ring size, at least 2; 0 means DefaultBatches. Each
	// batch holds BatchSize() buffers of BufSize bytes.
	Batches int
	// BufSize is the length of every buffer; 0 means BufSize (room for a
	// 64 KiB GRO super-packet), which a VirtioDevice requires. A device
	// without offloads may use less, at least Offset + its MTU + what the
	// Processor builds behind a packet.
	BufSize int
	// SplitBuffers is, for a VirtioDevice, the number of extra buffers per
	// batch that the segments of super-packets are written to; 0 means
	// DefaultSplitBuffers. A super-packet whose segments do not fit the
	// buffers left is dropped (Stats.GSOErrors).
	SplitBuffers int
	// BatchSizes, if set, observes the number of packets of every read
	// (a prometheus.Histogram fits).
	BatchSizes Observer
}

// Observer takes one value per observation; safe for concurrent use.
type Observer interface{ Observe(float64) }

// DefaultSplitBuffers holds the segments of 16 64 KiB super-packets of
// 1440-byte segments, what one read of the offload backend returns.
const DefaultSplitBuffers = 768

// Stats are a pipeline's counters, read at scrape time.
type Stats struct {
	// RxPackets and RxBytes count packets handed to the Processor (after
	// GSO splitting; a super-packet kept whole counts once).
	RxPackets, RxBytes atomic.Uint64
	// TxPackets and TxBytes count packets handed to a successful Write
	// (before GRO coalescing).
	TxPackets, TxBytes atomic.Uint64
	// Batches counts reads that returned packets (their sizes go to
	// Config.BatchSizes).
	Batches atomic.Uint64
	// Dropped counts packets the Processor marked Drop.
	Dropped atomic.Uint64
	// Diverted counts packets queued for the control loop; DivertDrops
	// counts packets marked Divert that the queue could not take.
	Diverted, DivertDrops atomic.Uint64
	// BadBounds counts packets whose Start/End the Processor left outside
	// the buffer or its write headroom; they are dropped.
	BadBounds atomic.Uint64
	// ReadErrors and WriteErrors count failed device calls (not closes).
	ReadErrors, WriteErrors atomic.Uint64
	// For a VirtioDevice: GSOPackets counts super-packets read; GSOKept
	// those forwarded whole; GSOSegments the segments the others were
	// split into; GSOErrors super-packets and partial-checksum packets
	// dropped because they could not be split or completed.
	GSOPackets, GSOKept, GSOSegments, GSOErrors atomic.Uint64
}

// Pipeline moves batches from a Device through a Processor and back to
// the Device. Reading and processing run on one goroutine, writing on
// another, so a read and a write can be in flight at once; a ring of
// preallocated batches between them gives back-pressure.
type Pipeline struct {
	dev       Device
	proc      Processor
	virtio    bool      // dev is a VirtioDevice with headers on
	filter    GSOFilter // proc's, or nil
	divert    *DivertQueue
	batchSize int
	batchObs  Observer
	stats     Stats

	free chan *Batch // batches ready to be read into
	full chan *Batch // processed batches waiting for the writer

	running atomic.Bool

	injectMu   sync.Mutex
	injectBuf  []byte
	injectBufs [][]byte
}

// NewPipeline allocates a pipeline's batches for dev.
func NewPipeline(dev Device, cfg Config) (*Pipeline, error) {
	if cfg.Batches == 0 {
		cfg.Batches = DefaultBatches
	}
	if cfg.BufSize == 0 {
		cfg.BufSize = BufSize
	}
	if cfg.Processor == nil {
		cfg.Processor = Passthrough{}
	}
	bs := dev.BatchSize()
	if cfg.Batches < 2 || cfg.BufSize < Offset+1280 || bs < 1 {
		return nil, fmt.Errorf("%w: %d batches of %d buffers of %d bytes", ErrBadConfig, cfg.Batches, bs, cfg.BufSize)
	}
	p := &Pipeline{
		dev:       dev,
		proc:      cfg.Processor,
		divert:    cfg.Divert,
		batchSize: bs,
		batchObs:  cfg.BatchSizes,
		free:      make(chan *Batch, cfg.Batches),
		// full never holds more than every batch, so the reader only
		// waits on free: that is the back-pressure.
		full:       make(chan *Batch, cfg.Batches),
		injectBuf:  make([]byte, cfg.BufSize),
		injectBufs: make([][]byte, 1),
	}
	splits, splitSize := 0, 0
	if vd, ok := dev.(VirtioDevice); ok && vd.VirtioHeaders() {
		if cfg.BufSize < BufSize {
			// A super-packet may be 64 KiB whatever the MTU.
			return nil, fmt.Errorf("%w: buffers of %d bytes for a virtio device, want %d", ErrBadConfig, cfg.BufSize, BufSize)
		}
		p.virtio = true
		p.filter, _ = cfg.Processor.(GSOFilter)
		splits = cfg.SplitBuffers
		if splits <= 0 {
			splits = DefaultSplitBuffers
		}
		// A segment is at most one MTU; the rest is room for what the
		// Processor builds behind a packet (a Packet Too Big quotes up to
		// 1232 bytes, RFC 4443 §3.2).
		mtu, err := dev.MTU()
		if err != nil || mtu < 1280 {
			mtu = 1500
		}
		splitSize = min(cfg.BufSize, Offset+mtu+ShimHeaderLen+1536)
	}
	for range cfg.Batches {
		p.free <- newSplitBatch(bs, cfg.BufSize, splits, splitSize)
	}
	return p, nil
}

// Stats returns the live counters.
func (p *Pipeline) Stats() *Stats { return &p.stats }

// Run moves packets until the device is closed, either by the caller or
// because ctx is done (Run then closes it). It returns nil after a close
// and an error if the device keeps failing; every goroutine it started has
// exited when it returns. Run may be called once.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			p.dev.Close()
		case <-stop:
		}
	}()
	go func() {
		defer wg.Done()
		p.write()
	}()
	err := p.read()
	if err != nil {
		// Unblock the writer if the device is still open.
		p.dev.Close()
	}
	close(p.full)
	close(stop)
	wg.Wait()
	return err
}

// read is the reader stage: read, process, sort out verdicts, pass on.
func (p *Pipeline) read() error {
	failures := 0
	for {
		b := <-p.free
		n, err := p.dev.Read(b.bufs[:p.batchSize], b.sizes, Offset)
		if n > 0 {
			p.process(b, n)
			p.full <- b
		} else {
			p.free <- b
		}
		if err != nil {
			if IsClosed(err) {
				return nil
			}
			p.stats.ReadErrors.Add(1)
			if failures++; failures >= maxReadErrors {
				return fmt.Errorf("tunnel: %d consecutive read errors: %w", failures, err)
			}
			continue
		}
		failures = 0
	}
}

func (p *Pipeline) process(b *Batch, n int) {
	if p.virtio {
		p.unpack(b, n)
	} else {
		b.Packets = b.Packets[:n]
		b.slot = b.slot[:n]
		for i := range n {
			b.Packets[i] = Packet{Start: Offset, End: Offset + b.sizes[i]}
			b.slot[i] = i
		}
	}
	var bytes uint64
	for i := range b.Packets {
		bytes += uint64(b.Packets[i].Len())
	}
	p.stats.RxPackets.Add(uint64(len(b.Packets)))
	p.stats.RxBytes.Add(bytes)
	p.stats.Batches.Add(1)
	if p.batchObs != nil {
		p.batchObs.Observe(float64(n))
	}

	p.proc.Process(b)

	for i := range b.Packets {
		pk := &b.Packets[i]
		if pk.Verdict != Drop && (!b.valid(i) || !pk.GSO.IsZero() && (pk.Start != Offset || pk.End != Offset+b.sizes[b.slot[i]])) {
			p.stats.BadBounds.Add(1)
			pk.Verdict = Drop
			continue
		}
		switch pk.Verdict {
		case Forward:
		case Divert:
			if p.divert != nil && p.divert.Push(b.Data(i)) {
				p.stats.Diverted.Add(1)
			} else {
				p.stats.DivertDrops.Add(1)
			}
		case Drop:
			p.stats.Dropped.Add(1)
		default:
			p.stats.Dropped.Add(1)
			pk.Verdict = Drop
		}
	}
}

// unpack turns the n packets a VirtioDevice read into the batch's
// packets: plain ones as they are, super-packets and partial checksums
// kept whole when the filter says so, and otherwise split into the split
// buffers or completed, in read order.
func (p *Pipeline) unpack(b *Batch, n int) {
	b.Packets = b.Packets[:0]
	b.slot = b.slot[:0]
	next := p.batchSize // first free split buffer
	for i := range n {
		buf := b.bufs[i]
		end := Offset + b.sizes[i]
		g := decodeVirtio(buf[Offset-VirtioHeaderLen : Offset])
		if g.IsZero() {
			b.Packets = append(b.Packets, Packet{Start: Offset, End: end})
			b.slot = append(b.slot, i)
			continue
		}
		pkt := buf[Offset:end]
		super := g.IsSuper()
		if super {
			p.stats.GSOPackets.Add(1)
		}
		if p.filter != nil && p.filter.KeepWhole(pkt, g) {
			if super {
				p.stats.GSOKept.Add(1)
			}
			b.Packets = append(b.Packets, Packet{Start: Offset, End: end, GSO: g})
			b.slot = append(b.slot, i)
			continue
		}
		if !super {
			if CompleteChecksum(pkt, g) != nil {
				p.stats.GSOErrors.Add(1)
				continue
			}
			b.Packets = append(b.Packets, Packet{Start: Offset, End: end})
			b.slot = append(b.slot, i)
			continue
		}
		k, err := SplitGSO(pkt, g, b.bufs[next:], b.sizes[next:], Offset)
		if err != nil {
			p.stats.GSOErrors.Add(1)
			continue
		}
		for j := next; j < next+k; j++ {
			b.Packets = append(b.Packets, Packet{Start: Offset, End: Offset + b.sizes[j]})
			b.slot = append(b.slot, j)
		}
		next += k
		p.stats.GSOSegments.Add(uint64(k))
	}
}

// write is the writer stage: one Write per batch, then back to the ring.
// After a close it keeps draining so that the reader never blocks.
func (p *Pipeline) write() {
	for b := range p.full {
		b.scratch = b.scratch[:0]
		var bytes uint64
		for i := range b.Packets {
			pk := &b.Packets[i]
			if pk.Verdict != Forward {
				continue
			}
			buf := b.bufs[b.slot[i]]
			if p.virtio {
				// Segments, rewritten packets and replies go out as plain
				// packets with complete checksums; kept ones as read.
				encodeVirtio(buf[pk.Start-VirtioHeaderLen:pk.Start], pk.GSO)
			}
			b.scratch = append(b.scratch, buf[pk.Start-WriteHeadroom:pk.End])
			bytes += uint64(pk.End - pk.Start)
		}
		if len(b.scratch) > 0 {
			_, err := p.dev.Write(b.scratch, WriteHeadroom)
			switch {
			case err == nil:
				p.stats.TxPackets.Add(uint64(len(b.scratch)))
				p.stats.TxBytes.Add(bytes)
			case IsClosed(err):
			default:
				p.stats.WriteErrors.Add(1)
			}
		}
		p.free <- b
	}
}

// Inject writes one packet built elsewhere (a control message from the
// control loop) to the device. It copies pkt, so the caller keeps it, and
// may be called concurrently with Run.
func (p *Pipeline) Inject(pkt []byte) error {
	p.injectMu.Lock()
	defer p.injectMu.Unlock()
	if Offset+len(pkt) > len(p.injectBuf) {
		return fmt.Errorf("%w: %d bytes", ErrTooBig, len(pkt))
	}
	n := copy(p.injectBuf[Offset:], pkt)
	clear(p.injectBuf[Offset-VirtioHeaderLen : Offset]) // a plain packet
	p.injectBufs[0] = p.injectBuf[:Offset+n]
	_, err := p.dev.Write(p.injectBufs, Offset)
	if err != nil {
		if IsClosed(err) {
			return errors.Join(ErrClosed, err)
		}
		return fmt.Errorf("tunnel: inject: %w", err)
	}
	return nil
}

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
	// 64 KiB GRO super-packet). A device without offloads may use less,
	// at least Offset + its MTU + what the Processor builds behind a
	// packet.
	BufSize int
}

// Stats are a pipeline's counters, read at scrape time.
type Stats struct {
	// RxPackets and RxBytes count packets read (after GSO splitting).
	RxPackets, RxBytes atomic.Uint64
	// TxPackets and TxBytes count packets handed to a successful Write
	// (before GRO coalescing).
	TxPackets, TxBytes atomic.Uint64
	// Batches counts reads that returned packets; BatchSizes is their size
	// histogram (see NumBatchBuckets).
	Batches    atomic.Uint64
	BatchSizes [NumBatchBuckets]atomic.Uint64
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
}

// Pipeline moves batches from a Device through a Processor and back to
// the Device. Reading and processing run on one goroutine, writing on
// another, so a read and a write can be in flight at once; a ring of
// preallocated batches between them gives back-pressure.
type Pipeline struct {
	dev       Device
	proc      Processor
	divert    *DivertQueue
	batchSize int
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
		free:      make(chan *Batch, cfg.Batches),
		// full never holds more than every batch, so the reader only
		// waits on free: that is the back-pressure.
		full:       make(chan *Batch, cfg.Batches),
		injectBuf:  make([]byte, cfg.BufSize),
		injectBufs: make([][]byte, 1),
	}
	for range cfg.Batches {
		p.free <- newBatch(bs, cfg.BufSize)
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
	b.Packets = b.Packets[:n]
	var bytes uint64
	for i := range n {
		b.Packets[i] = Packet{Start: Offset, End: Offset + b.sizes[i]}
		bytes += uint64(b.sizes[i])
	}
	p.stats.RxPackets.Add(uint64(n))
	p.stats.RxBytes.Add(bytes)
	p.stats.Batches.Add(1)
	p.stats.BatchSizes[batchBucket(n)].Add(1)

	p.proc.Process(b)

	for i := range b.Packets {
		pk := &b.Packets[i]
		if pk.Verdict != Drop && !b.valid(i) {
			p.stats.BadBounds.Add(1)
			pk.Verdict = Drop
			continue
		}
		switch pk.Verdict {
		case Forward:
		case Divert:
			if p.divert != nil && p.divert.Push(b.bufs[i][pk.Start:pk.End]) {
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
			b.scratch = append(b.scratch, b.bufs[i][pk.Start-WriteHeadroom:pk.End])
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

// Package tuntest provides a channel-backed fake tunnel.Device for tests
// that run without root, in the spirit of wireguard-go's tun/tuntest.
package tuntest

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// DefaultMTU is the MTU a Device reports unless configured otherwise.
const DefaultMTU = 1500

// MinWriteOffset is the smallest Write offset a Device accepts by default,
// the virtio-net header that the wireguard backend needs in front of every
// packet, so that tests catch a pipeline that forgets the headroom.
const MinWriteOffset = 10

// Config configures a Device. Zero fields take defaults.
type Config struct {
	// BatchSize is what BatchSize returns and the most packets one Read
	// collects; 0 means 1.
	BatchSize int
	// MTU is what MTU returns; 0 means DefaultMTU.
	MTU int
	// Name is what Name returns; "" means "tuntest0".
	Name string
	// MinWriteOffset is the smallest offset Write accepts; 0 means
	// MinWriteOffset.
	MinWriteOffset int
	// Discard makes Write count packets instead of copying them to
	// Outbound, so that benchmarks allocate nothing per packet.
	Discard bool
	// Buffer is the capacity of Inbound and Outbound.
	Buffer int
}

// Device is a fake TUN. Packets sent on Inbound come out of Read (as if
// the kernel routed them into the TUN); packets given to Write are copied
// to Outbound (as if written to the kernel), or counted when Discard is
// set. Read gathers up to BatchSize packets: it blocks for the first one
// and takes the rest only if they are already waiting.
type Device struct {
	// Inbound carries packets for Read. The Device never closes it.
	Inbound chan []byte
	// Outbound receives a copy of every written packet unless Discard.
	Outbound chan []byte
	// Writes receives the number of packets of every Write call when it
	// is not nil and has room (it never blocks Write); tests use it to
	// wait for a batch without polling.
	Writes chan int

	// WrittenPackets and WrittenBytes count what Write accepted.
	WrittenPackets, WrittenBytes atomic.Uint64
	// WriteCalls counts Write calls.
	WriteCalls atomic.Uint64

	cfg       Config
	closed    chan struct{}
	closeOnce sync.Once
}

// New returns a Device.
func New(cfg Config) *Device {
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.Name == "" {
		cfg.Name = "tuntest0"
	}
	if cfg.MinWriteOffset == 0 {
		cfg.MinWriteOffset = MinWriteOffset
	}
	return &Device{
		Inbound:  make(chan []byte, cfg.Buffer),
		Outbound: make(chan []byte, cfg.Buffer),
		cfg:      cfg,
		closed:   make(chan struct{}),
	}
}

// Read implements tunnel.Device. After Close it returns os.ErrClosed.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var pkt []byte
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	case pkt = <-d.Inbound:
	}
	n := 0
	for {
		if offset+len(pkt) > len(bufs[n]) {
			return n, fmt.Errorf("tuntest: packet of %d bytes overflows buffer of %d at offset %d", len(pkt), len(bufs[n]), offset)
		}
		sizes[n] = copy(bufs[n][offset:], pkt)
		n++
		if n == len(bufs) || n == d.cfg.BatchSize {
			return n, nil
		}
		select {
		case pkt = <-d.Inbound:
		default:
			return n, nil
		}
	}
}

// Write implements tunnel.Device. It is safe for concurrent use; after
// Close it returns os.ErrClosed.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	default:
	}
	if offset < d.cfg.MinWriteOffset {
		return 0, fmt.Errorf("tuntest: write offset %d below %d", offset, d.cfg.MinWriteOffset)
	}
	d.WriteCalls.Add(1)
	total := 0
	for _, b := range bufs {
		data := b[offset:]
		if !d.cfg.Discard {
			msg := make([]byte, len(data))
			copy(msg, data)
			select {
			case <-d.closed:
				return total, os.ErrClosed
			case d.Outbound <- msg:
			}
		}
		d.WrittenPackets.Add(1)
		d.WrittenBytes.Add(uint64(len(data)))
		total += len(data)
	}
	if d.Writes != nil {
		select {
		case d.Writes <- len(bufs):
		default:
		}
	}
	return total, nil
}

// BatchSize implements tunnel.Device.
func (d *Device) BatchSize() int { return d.cfg.BatchSize }

// Name implements tunnel.Device.
func (d *Device) Name() (string, error) { return d.cfg.Name, nil }

// MTU implements tunnel.Device.
func (d *Device) MTU() (int, error) { return d.cfg.MTU, nil }

// Close implements tunnel.Device: it unblocks Read and Write.
func (d *Device) Close() error {
	d.closeOnce.Do(func() { close(d.closed) })
	return nil
}

// Closed returns a channel closed by Close.
func (d *Device) Closed() <-chan struct{} { return d.closed }

package tunnel

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
)

// WaterBatch is the BatchSize of a water Device. The kernel hands a plain
// TUN fd one packet per read(2), so Read blocks for the first packet and
// then reads more without blocking until the queue is empty or the batch
// is full; Write writes the packets one by one.
const WaterBatch = 64

// Water is one queue of a plain (no virtio header, no offloads) TUN opened
// with github.com/songgao/water. A multi-queue interface is opened as one
// Water per queue: the kernel spreads flows over the queues, and each
// queue gets its own pipeline.
type Water struct {
	f    *os.File
	rc   syscall.RawConn
	name string
	ctl  *ifctl

	// Read state for the non-blocking follow-up reads; only the reader
	// touches it. readFn is built once so that Read does not allocate.
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	closeOnce sync.Once
	closeErr  error
}

var _ Device = (*Water)(nil)

// OpenWater creates the TUN device name in the calling thread's network
// namespace and returns one Device per queue. Without multiQueue, queues
// must be 1. Closing every returned Device removes the interface. The MTU
// is the kernel default (1500) until the plumbing sets it.
func OpenWater(name string, multiQueue bool, queues int) ([]*Water, error) {
	if queues < 1 || (!multiQueue && queues != 1) {
		return nil, fmt.Errorf("%w: %d queues, multiQueue %v", ErrBadConfig, queues, multiQueue)
	}
	var out []*Water
	fail := func(err error) ([]*Water, error) {
		for _, w := range out {
			w.Close()
		}
		return nil, err
	}
	for i := range queues {
		ifce, err := water.New(water.Config{
			DeviceType:             water.TUN,
			PlatformSpecificParams: water.PlatformSpecificParams{Name: name, MultiQueue: multiQueue},
		})
		if err != nil {
			return fail(fmt.Errorf("tunnel: create water tun %q queue %d: %w", name, i, err))
		}
		// Later queues must attach to the interface the first one got.
		name = ifce.Name()
		f, ok := ifce.ReadWriteCloser.(*os.File)
		if !ok {
			ifce.Close()
			return fail(fmt.Errorf("tunnel: water tun %q: unexpected %T", name, ifce.ReadWriteCloser))
		}
		w, err := newWater(f, name)
		if err != nil {
			ifce.Close()
			return fail(err)
		}
		out = append(out, w)
	}
	return out, nil
}

func newWater(f *os.File, name string) (*Water, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("tunnel: water tun %q: %w", name, err)
	}
	ctl, err := newIfctl(name)
	if err != nil {
		return nil, err
	}
	w := &Water{f: f, rc: rc, name: name, ctl: ctl}
	w.readFn = func(fd uintptr) bool {
		w.rn, w.rerr = unix.Read(int(fd), w.rbuf)
		return true // never wait: EAGAIN ends the batch
	}
	return w, nil
}

// Read implements Device: it blocks for one packet, then takes whatever
// else is queued, up to min(len(bufs), WaterBatch) packets.
func (w *Water) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := w.f.Read(bufs[0][offset:])
	if err != nil {
		return 0, mapClosed(err)
	}
	sizes[0] = n
	count := 1
	for count < len(bufs) && count < WaterBatch {
		w.rbuf = bufs[count][offset:]
		if err := w.rc.Read(w.readFn); err != nil || w.rerr != nil || w.rn <= 0 {
			break
		}
		sizes[count] = w.rn
		count++
	}
	w.rbuf = nil
	return count, nil
}

// Write implements Device: one write(2) per packet. It keeps going after a
// failed packet and returns the first error.
func (w *Water) Write(bufs [][]byte, offset int) (int, error) {
	var first error
	total := 0
	for _, b := range bufs {
		n, err := w.f.Write(b[offset:])
		if err != nil {
			err = mapClosed(err)
			if IsClosed(err) {
				return total, err
			}
			if first == nil {
				first = err
			}
			continue
		}
		total += n
	}
	return total, first
}

// BatchSize implements Device.
func (w *Water) BatchSize() int { return WaterBatch }

// Name implements Device.
func (w *Water) Name() (string, error) { return w.name, nil }

// MTU implements Device.
func (w *Water) MTU() (int, error) { return w.ctl.mtu() }

// Close implements Device.
func (w *Water) Close() error {
	w.closeOnce.Do(func() {
		w.closeErr = w.f.Close()
		if err := w.ctl.close(); err != nil && w.closeErr == nil {
			w.closeErr = err
		}
	})
	return w.closeErr
}

func mapClosed(err error) error {
	if errors.Is(err, unix.EBADFD) || errors.Is(err, unix.EBADF) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

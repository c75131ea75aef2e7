package tunnel

import (
	"fmt"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"
)

// WireGuard is a Device backed by wireguard-go's Linux TUN: IFF_VNET_HDR
// with TCP (and, from Linux 6.2, UDP) segmentation offloads. Read splits
// GSO super-packets into up to BatchSize() packets; Write coalesces TCP and
// UDP flows of a batch (GRO) before writing, which is why the pipeline
// writes a whole batch in one call.
type WireGuard struct {
	dev  tun.Device
	ctl  *ifctl
	up   atomic.Bool
	done chan struct{} // closed when the event drainer exits

	closeOnce sync.Once
	closeErr  error
}

var _ Device = (*WireGuard)(nil)

// OpenWireGuard creates (or attaches to) the TUN device name in the calling
// thread's network namespace with the given MTU and offloads on. Use
// InNamespace to create it in another namespace.
func OpenWireGuard(name string, mtu int) (*WireGuard, error) {
	if name == "" || mtu < 1280 || mtu > MaxPacket {
		return nil, fmt.Errorf("%w: name %q mtu %d", ErrBadConfig, name, mtu)
	}
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("tunnel: create wireguard tun %q: %w", name, err)
	}
	real, err := dev.Name()
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("tunnel: name of %q: %w", name, err)
	}
	ctl, err := newIfctl(real)
	if err != nil {
		dev.Close()
		return nil, err
	}
	w := &WireGuard{dev: dev, ctl: ctl, done: make(chan struct{})}
	// wireguard-go's status listeners block on its event channel until
	// someone reads it, and only close it after Close: drain it here.
	go w.drainEvents()
	return w, nil
}

func (w *WireGuard) drainEvents() {
	defer close(w.done)
	for e := range w.dev.Events() {
		switch {
		case e&tun.EventUp != 0:
			w.up.Store(true)
		case e&tun.EventDown != 0:
			w.up.Store(false)
		}
	}
}

// Up reports whether the kernel last reported the interface running.
func (w *WireGuard) Up() bool { return w.up.Load() }

// Read implements Device.
func (w *WireGuard) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return w.dev.Read(bufs, sizes, offset)
}

// Write implements Device. offset must be ≥ VirtioHeaderLen.
func (w *WireGuard) Write(bufs [][]byte, offset int) (int, error) {
	return w.dev.Write(bufs, offset)
}

// BatchSize implements Device: 128 with offloads, 1 without.
func (w *WireGuard) BatchSize() int { return w.dev.BatchSize() }

// Name implements Device.
func (w *WireGuard) Name() (string, error) { return w.dev.Name() }

// MTU implements Device; it works from any namespace.
func (w *WireGuard) MTU() (int, error) { return w.ctl.mtu() }

// Close implements Device. It waits for wireguard-go's listener goroutines
// to finish.
func (w *WireGuard) Close() error {
	w.closeOnce.Do(func() {
		w.closeErr = w.dev.Close()
		<-w.done
		if err := w.ctl.close(); err != nil && w.closeErr == nil {
			w.closeErr = err
		}
	})
	return w.closeErr
}

package tunnel

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// OffloadBatch is the BatchSize of an Offload device: a read gathers up to
// 16 packets, each up to a 64 KiB super-packet.
const OffloadBatch = 16

// Offload is a Device on a TUN opened with IFF_VNET_HDR and TCP/IPv6
// segmentation offload that hands GSO super-packets to the pipeline whole,
// virtio-net header included (it is a VirtioDevice). Unlike the wireguard
// backend it neither splits on read nor coalesces on write: the pipeline
// writes back whole the super-packets its Processor forwards unchanged,
// and segments the others itself (see GSOFilter). A read gathers up to
// OffloadBatch queued packets (one blocking read, then non-blocking ones);
// a write costs one write(2) per packet.
type Offload struct {
	f    *os.File
	rc   syscall.RawConn
	ctl  *ifctl
	name string

	// Non-blocking read state, set around rc.Read so that readFn, built
	// once, does not allocate.
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	// Write side: the coalescer and whether it is on. Pipeline.Inject may
	// write concurrently with the pipeline's writer, so groMu guards gro.
	groMu sync.Mutex
	gro   Coalescer
	groOn atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

var _ VirtioDevice = (*Offload)(nil)

// OpenOffload creates (or attaches to) the TUN device name in the calling
// thread's network namespace with the given MTU, virtio-net headers and
// TCP/IPv6 offloads. IPv4 TCP is segmented by the kernel before it reaches
// the device; partial checksums (IPv4 or IPv6) are passed through.
func OpenOffload(name string, mtu int) (*Offload, error) {
	if name == "" || mtu < 1280 || mtu > MaxPacket {
		return nil, fmt.Errorf("%w: name %q mtu %d", ErrBadConfig, name, mtu)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tunnel: open /dev/net/tun: %w", err)
	}
	fail := func(what string, err error) (*Offload, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("tunnel: offload tun %q: %s: %w", name, what, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fail("name", err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fail("TUNSETIFF", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO6); err != nil {
		return fail("TUNSETOFFLOAD", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail("nonblock", err)
	}
	real := ifr.Name()
	ctl, err := newIfctl(real)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := ctl.setMTU(mtu); err != nil {
		ctl.close()
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	rc, err := f.SyscallConn()
	if err != nil {
		ctl.close()
		f.Close()
		return nil, fmt.Errorf("tunnel: offload tun %q: %w", name, err)
	}
	d := &Offload{f: f, rc: rc, ctl: ctl, name: real}
	d.groOn.Store(true)
	d.readFn = func(fd uintptr) bool {
		d.rn, d.rerr = unix.Read(int(fd), d.rbuf)
		return true // never wait: a batch takes what is queued
	}
	return d, nil
}

// VirtioHeaders implements VirtioDevice.
func (d *Offload) VirtioHeaders() bool { return true }

// Read implements Device. Each packet's virtio-net header is left in
// bufs[i][offset-VirtioHeaderLen:offset]; offset must be ≥ VirtioHeaderLen.
func (d *Offload) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	const h = VirtioHeaderLen
	if offset < h {
		return 0, fmt.Errorf("%w: read offset %d", ErrBadConfig, offset)
	}
	n, err := d.f.Read(bufs[0][offset-h:])
	if err != nil {
		return 0, err
	}
	if n <= h {
		return 0, nil // no packet behind the header: nothing to do
	}
	sizes[0] = n - h
	count := 1
	for count < len(bufs) && count < OffloadBatch {
		d.rbuf = bufs[count][offset-h:]
		if err := d.rc.Read(d.readFn); err != nil || d.rerr != nil || d.rn <= h {
			break
		}
		sizes[count] = d.rn - h
		count++
	}
	d.rbuf = nil
	return count, nil
}

// SetGRO turns the coalescing of Write on (the default) or off.
func (d *Offload) SetGRO(on bool) { d.groOn.Store(on) }

// Write implements Device. Unless SetGRO(false), the plain TCP/IPv6
// segments of one flow in bufs are first coalesced into super-packets in
// place (Coalescer: a packet grows up to its buffer's capacity and its
// virtio-net header is rewritten). Then one write(2) per packet sends it
// with the VirtioHeaderLen bytes before it as its header. A packet the
// kernel refuses does not stop the others; the first such error is
// returned. The count is of the bytes written, merged ones included.
func (d *Offload) Write(bufs [][]byte, offset int) (int, error) {
	if offset < VirtioHeaderLen {
		return 0, fmt.Errorf("%w: write offset %d", ErrBadConfig, offset)
	}
	if len(bufs) < 2 || !d.groOn.Load() {
		return d.writeEach(bufs, nil, offset)
	}
	d.groMu.Lock()
	defer d.groMu.Unlock()
	// Never nil: the first packet of a batch is always written.
	n, err := d.writeEach(bufs, d.gro.Coalesce(bufs, offset), offset)
	d.gro.Restore(bufs)
	return n, err
}

// writeEach writes bufs[i] for every i in idx, or every packet when idx
// is nil.
func (d *Offload) writeEach(bufs [][]byte, idx []int, offset int) (int, error) {
	total := 0
	var first error
	n := len(bufs)
	if idx != nil {
		n = len(idx)
	}
	for k := range n {
		b := bufs[k]
		if idx != nil {
			b = bufs[idx[k]]
		}
		w, err := d.f.Write(b[offset-VirtioHeaderLen:])
		if err != nil {
			if IsClosed(err) || errors.Is(err, unix.EBADFD) {
				return total, errors.Join(ErrClosed, err)
			}
			if first == nil {
				first = fmt.Errorf("tunnel: offload write: %w", err)
			}
			continue
		}
		total += w - VirtioHeaderLen
	}
	return total, first
}

// BatchSize implements Device.
func (d *Offload) BatchSize() int { return OffloadBatch }

// Name implements Device.
func (d *Offload) Name() (string, error) { return d.name, nil }

// MTU implements Device; it works from any namespace.
func (d *Offload) MTU() (int, error) { return d.ctl.mtu() }

// Close implements Device.
func (d *Offload) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.f.Close()
		if err := d.ctl.close(); err != nil && d.closeErr == nil {
			d.closeErr = err
		}
	})
	return d.closeErr
}

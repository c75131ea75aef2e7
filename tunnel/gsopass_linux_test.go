package tunnel_test

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/tunnel"
)

// gsoPassDev is an experiment for the throughput benchmark, not a backend:
// a vnet-header TUN whose GSO super-packets are passed through whole, the
// 10-byte virtio-net header kept in the headroom right before the packet
// and written back unchanged. It shows what skipping wireguard-go's GSO
// split and GRO coalesce would gain for packets the processor forwards
// unchanged; a processor that resizes a packet would have to fix or
// segment it, which nothing here does.
type gsoPassDev struct {
	f    *os.File
	rc   syscall.RawConn
	name string

	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	closeOnce sync.Once
	closeErr  error
}

func openGSOPass(name string) (*gsoPassDev, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	offloads := unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloads); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETOFFLOAD: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	d := &gsoPassDev{f: f, rc: rc, name: name}
	d.readFn = func(fd uintptr) bool {
		d.rn, d.rerr = unix.Read(int(fd), d.rbuf)
		return true
	}
	return d, nil
}

func (d *gsoPassDev) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	h := tunnel.VirtioHeaderLen
	n, err := d.f.Read(bufs[0][offset-h:])
	if err != nil {
		return 0, err
	}
	sizes[0] = n - h
	count := 1
	for count < len(bufs) {
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

func (d *gsoPassDev) Write(bufs [][]byte, offset int) (int, error) {
	total := 0
	for _, b := range bufs {
		// The header read with the packet sits right before it.
		n, err := d.f.Write(b[offset-tunnel.VirtioHeaderLen:])
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func (d *gsoPassDev) BatchSize() int        { return 64 }
func (d *gsoPassDev) Name() (string, error) { return d.name, nil }
func (d *gsoPassDev) MTU() (int, error)     { return 1500, nil }
func (d *gsoPassDev) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.f.Close() })
	return d.closeErr
}

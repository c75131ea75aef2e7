package tunnel

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/internal/nsrun"
)

// ifctl answers interface ioctls (MTU) through a socket opened when the
// device was created. A socket stays in the network namespace it was
// created in, so MTU() keeps working when the device lives in another
// namespace than the calling thread (wireguard-go's own MTU() opens a new
// socket in the caller's namespace and would look up the wrong interface).
type ifctl struct {
	fd   int
	name string
}

func newIfctl(name string) (*ifctl, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("tunnel: control socket: %w", err)
	}
	return &ifctl{fd: fd, name: name}, nil
}

func (c *ifctl) mtu() (int, error) {
	ifr, err := unix.NewIfreq(c.name)
	if err != nil {
		return 0, fmt.Errorf("tunnel: mtu of %q: %w", c.name, err)
	}
	if err := unix.IoctlIfreq(c.fd, unix.SIOCGIFMTU, ifr); err != nil {
		return 0, fmt.Errorf("tunnel: mtu of %q: %w", c.name, err)
	}
	return int(ifr.Uint32()), nil
}

func (c *ifctl) setMTU(mtu int) error {
	ifr, err := unix.NewIfreq(c.name)
	if err != nil {
		return fmt.Errorf("tunnel: set mtu of %q: %w", c.name, err)
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(c.fd, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("tunnel: set mtu of %q: %w", c.name, err)
	}
	return nil
}

func (c *ifctl) close() error { return unix.Close(c.fd) }

// InNamespace runs fn on a locked OS thread switched into the named network
// namespace (as created by `ip netns add`), then switches back. Devices and
// sockets opened by fn stay bound to that namespace after it returns, which
// is how a TUN is created inside a namespace without moving the process.
// The caller's goroutine never changes namespace.
func InNamespace(name string, fn func() error) error {
	return nsrun.InNamed(name, fn)
}

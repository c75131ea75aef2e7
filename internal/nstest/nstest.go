// Package nstest holds helpers for tests that build network namespaces,
// links and TUN devices: each cleans up after itself, also on failure.
package nstest

import (
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/internal/nsrun"
)

// SkipUnlessRoot skips privileged tests for ordinary users.
func SkipUnlessRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (CI runs as root)")
	}
}

// NewNS creates the named network namespace, returns a handle to it and
// an rtnetlink handle inside it, and removes both when the test ends. The
// calling goroutine stays in its own namespace.
func NewNS(t testing.TB, name string) (netns.NsHandle, *netlink.Handle) {
	t.Helper()
	SkipUnlessRoot(t)
	_ = netns.DeleteNamed(name) // left by an interrupted run
	ns, err := nsrun.NewNamed(name)
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return ns, h
}

// AddTUN creates a persistent TUN device inside ns (the ioctl acts in the
// namespace of the calling thread) and deletes it at cleanup.
func AddTUN(t testing.TB, ns netns.NsHandle, h *netlink.Handle, name string) {
	t.Helper()
	err := nsrun.In(ns, func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name},
			Mode: netlink.TUNTAP_MODE_TUN, Flags: netlink.TUNTAP_NO_PI})
	})
	if err != nil {
		t.Fatalf("add tun %s: %v", name, err)
	}
	t.Cleanup(func() {
		if l, err := h.LinkByName(name); err == nil {
			_ = h.LinkDel(l)
		}
	})
}

// AddVeth creates an up veth pair in the handle's namespace.
func AddVeth(t testing.TB, h *netlink.Handle, name, peer string) (netlink.Link, netlink.Link) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}
	if err := h.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	a, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []netlink.Link{a, b} {
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

// MustCIDR parses s as an address with prefix length; it panics on a
// typo in the test.
func MustCIDR(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

// CheckNoLeaks fails the test if goroutines started during it outlive
// it. Call it first, so that its cleanup runs after every other one.
func CheckNoLeaks(t testing.TB) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
}

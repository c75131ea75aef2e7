package gateway

import (
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// skipUnlessRoot skips privileged tests for ordinary users.
func skipUnlessRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (CI runs as root)")
	}
}

// newNS creates the named network namespace (prefix s6gw-), returns a
// handle to it and an rtnetlink handle inside it, and removes both when
// the test ends. The calling goroutine stays in its own namespace.
func newNS(t *testing.T, name string) (netns.NsHandle, *netlink.Handle) {
	t.Helper()
	skipUnlessRoot(t)
	_ = netns.DeleteNamed(name) // left by an interrupted run
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		// This thread is in the wrong namespace; keep it locked so the
		// runtime discards it with the goroutine.
		t.Fatalf("back to the original namespace: %v", serr)
	}
	orig.Close()
	runtime.UnlockOSThread()
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

// addTUN creates a persistent TUN device inside ns (the ioctl acts in
// the namespace of the calling thread) and deletes it at cleanup.
func addTUN(t *testing.T, ns netns.NsHandle, h *netlink.Handle, name string) {
	t.Helper()
	err := runInNS(ns, func() error {
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

// addVeth creates an up veth pair in the handle's namespace.
func addVeth(t *testing.T, h *netlink.Handle, name, peer string) (netlink.Link, netlink.Link) {
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

// checkNoLeaks fails the test if goroutines of the monitor, the daemon,
// the admin server or the netlink subscriptions outlive it. Register it
// first so that it runs after every other cleanup.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		markers := []string{"gateway.(*Monitor)", "gateway.RunDaemon", "gateway.(*Admin)", "vishvananda/netlink.", "net/http.(*Server)"}
		deadline := time.Now().Add(5 * time.Second)
		for {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			var leaked []string
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "checkNoLeaks") {
					continue
				}
				for _, m := range markers {
					if strings.Contains(g, m) {
						leaked = append(leaked, g)
						break
					}
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines left behind:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

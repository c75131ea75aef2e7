// Package nstest builds the network namespaces of the lan packages'
// TestIntegration* tests: every namespace is named by the caller with the
// prefix "s6lan-" (no other test of the project uses it) and the pid, and removed with
// everything in it, processes included, when the test ends.
package nstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// SkipUnlessRoot skips privileged tests for ordinary users.
func SkipUnlessRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (CI runs as root)")
	}
}

// NS is a named network namespace of a test.
type NS struct {
	Name   string
	Handle netns.NsHandle
	Link   *netlink.Handle // rtnetlink inside the namespace
}

// New creates the namespace "s6lan-<name>-<pid>" with DAD off (the tests
// want addresses usable at once) and loopback up. The pid keeps two runs
// of a test (or a run after an interrupted one) apart.
func New(t *testing.T, name string) *NS {
	t.Helper()
	SkipUnlessRoot(t)
	name = fmt.Sprintf("s6lan-%s-%d", name, os.Getpid())
	_ = netns.DeleteNamed(name) // left by an interrupted run
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	h, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		t.Fatalf("back to the original namespace: %v", serr) // thread stays locked and dies
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	ns := &NS{Name: name, Handle: h}
	t.Cleanup(func() {
		// Processes started with Start die with their context; then the
		// namespace can go.
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	if ns.Link, err = netlink.NewHandleAt(h, unix.NETLINK_ROUTE); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Link.Close)
	for _, k := range []string{"all", "default"} {
		ns.Run(t, "sysctl", "-qw", "net.ipv6.conf."+k+".accept_dad=0")
	}
	lo, err := ns.Link.LinkByName("lo")
	if err == nil {
		err = ns.Link.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// Do runs f on a thread inside the namespace (sockets f opens stay there).
func (ns *NS) Do(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns.Handle); err != nil {
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		panic("nstest: cannot return to the original namespace: " + err.Error())
	}
	return ferr
}

// Run runs a command inside the namespace and fails the test on error.
func (ns *NS) Run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out)
}

// Start starts a long-running command inside the namespace; it is killed
// (SIGKILL) at the end of the test or when the returned stop is called.
func (ns *NS) Start(t *testing.T, name string, args ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		cancel()
		_ = cmd.Wait()
	}
	t.Cleanup(stop)
	return stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Veth connects a (interface an) and b (interface bn) with a veth pair,
// both up.
func Veth(t *testing.T, a *NS, an string, b *NS, bn string) (netlink.Link, netlink.Link) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: an}, PeerName: bn, PeerNamespace: netlink.NsFd(b.Handle)}
	if err := a.Link.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s/%s: %v", an, bn, err)
	}
	la, err := a.Link.LinkByName(an)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Link.LinkByName(bn)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Link.LinkSetUp(la); err != nil {
		t.Fatal(err)
	}
	if err := b.Link.LinkSetUp(lb); err != nil {
		t.Fatal(err)
	}
	return la, lb
}

// Eventually polls cond every 50 ms until it holds or timeout passes.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

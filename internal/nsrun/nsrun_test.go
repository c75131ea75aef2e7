package nsrun_test

import (
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/shim6gw/shim6gw/internal/nsrun"
)

// TestInRunsInsideAndLeavesCallerAlone: f sees the target namespace, its
// error comes back, and the caller's thread stays where it was.
func TestInRunsInsideAndLeavesCallerAlone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (CI runs as root)")
	}
	const name = "s6gw-nsrun-test"
	_ = netns.DeleteNamed(name)
	ns, err := nsrun.NewNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace: %v", err)
		}
	})
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	here, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	if here.Equal(ns) {
		t.Fatal("NewNamed moved the caller into the new namespace")
	}
	errWant := errors.New("from f")
	var inside bool
	err = nsrun.In(ns, func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		inside = cur.Equal(ns)
		return errWant
	})
	if !errors.Is(err, errWant) {
		t.Errorf("In returned %v, want f's error", err)
	}
	if !inside {
		t.Error("f did not run in the target namespace")
	}
	err = nsrun.InNamed(name, func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(ns) {
			return errors.New("not in the named namespace")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(here) {
		t.Error("the caller's thread changed namespace")
	}
	if err := nsrun.InNamed("s6gw-nsrun-none", func() error { return nil }); err == nil {
		t.Error("InNamed of a missing namespace succeeded")
	}
}

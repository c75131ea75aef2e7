// Package nsrun runs code inside a Linux network namespace.
//
// A thread's namespace is per OS thread, and Go moves goroutines between
// threads, so the work runs on a fresh goroutine locked to its thread.
// When the thread cannot be switched back, the goroutine exits still
// locked and the runtime destroys the thread: no other goroutine is ever
// scheduled on a thread left in the wrong namespace.
package nsrun

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// In runs f on a new goroutine whose thread is switched into ns, waits for
// it and returns f's error. Sockets and devices f opens stay in ns after
// it returns. The caller's goroutine and thread never change namespace.
func In(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("nsrun: current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("nsrun: enter namespace: %w", err)
			return
		}
		err = f()
		if serr := netns.Set(orig); serr != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- errors.Join(err, fmt.Errorf("nsrun: restore namespace: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// InNamed is In for a namespace named as by `ip netns add`.
func InNamed(name string, f func() error) error {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("nsrun: namespace %q: %w", name, err)
	}
	defer ns.Close()
	return In(ns, f)
}

// NewNamed creates a network namespace named as by `ip netns add` and
// returns a handle to it, without moving the caller into it.
func NewNamed(name string) (netns.NsHandle, error) {
	cur, err := netns.Get()
	if err != nil {
		return netns.None(), fmt.Errorf("nsrun: current namespace: %w", err)
	}
	defer cur.Close()
	ns := netns.None()
	// netns.NewNamed moves its thread into the new namespace; In moves
	// the thread back (or discards it).
	err = In(cur, func() error {
		var err error
		ns, err = netns.NewNamed(name)
		return err
	})
	if err != nil && ns.IsOpen() {
		ns.Close()
		return netns.None(), err
	}
	return ns, err
}

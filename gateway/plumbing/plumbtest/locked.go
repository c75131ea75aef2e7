package plumbtest

import (
	"sync"

	"github.com/shim6gw/shim6gw/gateway/plumbing"
)

// Locked is a Netlink safe for concurrent use: the daemon's and the
// plumbing watcher's goroutines call it while the test changes F in Do.
type Locked struct {
	mu sync.Mutex
	F  *Netlink
}

// Do runs f with the lock held.
func (l *Locked) Do(f func()) { l.mu.Lock(); defer l.mu.Unlock(); f() }

func (l *Locked) LinkExists(n string) (ok bool, err error) {
	l.Do(func() { ok, err = l.F.LinkExists(n) })
	return
}
func (l *Locked) LinkUp(n string) (ok bool, err error) {
	l.Do(func() { ok, err = l.F.LinkUp(n) })
	return
}
func (l *Locked) SetLink(n string, mtu int) (err error) {
	l.Do(func() { err = l.F.SetLink(n, mtu) })
	return
}
func (l *Locked) Rules() (r []plumbing.Rule, err error) {
	l.Do(func() { r, err = l.F.Rules() })
	return
}
func (l *Locked) AddRule(r plumbing.Rule) (err error) {
	l.Do(func() { err = l.F.AddRule(r) })
	return
}
func (l *Locked) DelRule(r plumbing.Rule) (err error) {
	l.Do(func() { err = l.F.DelRule(r) })
	return
}
func (l *Locked) ReplaceRoute(r plumbing.Route) (err error) {
	l.Do(func() { err = l.F.ReplaceRoute(r) })
	return
}
func (l *Locked) DelRoute(r plumbing.Route) (err error) {
	l.Do(func() { err = l.F.DelRoute(r) })
	return
}
func (l *Locked) Routes(t int) (r []plumbing.Route, err error) {
	l.Do(func() { r, err = l.F.Routes(t) })
	return
}
func (l *Locked) ReadSysctl(k string) (v string, err error) {
	l.Do(func() { v, err = l.F.ReadSysctl(k) })
	return
}
func (l *Locked) WriteSysctl(k, v string) (err error) {
	l.Do(func() { err = l.F.WriteSysctl(k, v) })
	return
}
func (l *Locked) Close() error { return nil }

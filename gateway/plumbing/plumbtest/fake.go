// Package plumbtest provides an in-memory plumbing.NetlinkOps and helpers
// that read what the plumbing installed, for tests.
package plumbtest

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/shim6gw/shim6gw/gateway/config"

	"github.com/shim6gw/shim6gw/gateway/plumbing"
)

// Netlink is a plumbing.NetlinkOps that keeps kernel state in maps and
// records every change as one line of text. Not safe for concurrent use.
type Netlink struct {
	Ops      []string // the changes, in order
	Links    map[string]*Link
	RuleSet  []plumbing.Rule
	RouteSet []plumbing.Route
	Sysctls  map[string]string
	FailOn   string // a change whose text starts with this fails
	// WriteMissing: writing a sysctl that does not exist fails like
	// /proc/sys does for a vanished interface.
	WriteMissing bool
}

// Link is one interface of a Netlink.
type Link struct {
	Up  bool
	MTU int
}

// New returns a Netlink with the named links up, forwarding off and
// accept_ra 1 on every link.
func New(links ...string) *Netlink {
	f := &Netlink{Links: map[string]*Link{}, Sysctls: map[string]string{
		"net/ipv6/conf/all/forwarding": "0",
	}}
	for _, l := range links {
		f.Links[l] = &Link{Up: true, MTU: 1500}
		f.Sysctls["net/ipv6/conf/"+l+"/accept_ra"] = "1"
	}
	return f
}

// ErrInjected is the error of a change that matches FailOn.
var ErrInjected = errors.New("injected failure")

func (f *Netlink) change(format string, args ...any) error {
	s := fmt.Sprintf(format, args...)
	if f.FailOn != "" && strings.HasPrefix(s, f.FailOn) {
		f.Ops = append(f.Ops, s+" -> error")
		return ErrInjected
	}
	f.Ops = append(f.Ops, s)
	return nil
}

func (f *Netlink) LinkExists(name string) (bool, error) { return f.Links[name] != nil, nil }

func (f *Netlink) LinkUp(name string) (bool, error) {
	l := f.Links[name]
	if l == nil {
		return false, syscall.ENODEV
	}
	return l.Up, nil
}

func (f *Netlink) SetLink(name string, mtu int) error {
	l := f.Links[name]
	if l == nil {
		return syscall.ENODEV
	}
	if err := f.change("link set %s mtu %d up", name, mtu); err != nil {
		return err
	}
	l.Up, l.MTU = true, mtu
	return nil
}

func (f *Netlink) Rules() ([]plumbing.Rule, error) { return slices.Clone(f.RuleSet), nil }

func (f *Netlink) AddRule(r plumbing.Rule) error {
	if err := f.change("rule add %v", r); err != nil {
		return err
	}
	f.RuleSet = append(f.RuleSet, r)
	return nil
}

func (f *Netlink) DelRule(r plumbing.Rule) error {
	i := slices.Index(f.RuleSet, r)
	if i < 0 {
		return syscall.ENOENT
	}
	if err := f.change("rule del %v", r); err != nil {
		return err
	}
	f.RuleSet = slices.Delete(f.RuleSet, i, i+1)
	return nil
}

func (f *Netlink) Routes(table int) ([]plumbing.Route, error) {
	var out []plumbing.Route
	for _, r := range f.RouteSet {
		if r.Table == table {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *Netlink) ReplaceRoute(r plumbing.Route) error {
	if l := f.Links[r.Dev]; !r.Unreachable && l == nil {
		return syscall.ENODEV
	} else if !r.Unreachable && !l.Up && r.Gateway.IsValid() {
		return syscall.ENETDOWN // ip6_validate_gw: "Nexthop device is not up"
	}
	if err := f.change("route replace %v", r); err != nil {
		return err
	}
	f.RouteSet = slices.DeleteFunc(f.RouteSet, func(o plumbing.Route) bool {
		return o.Table == r.Table && o.Dst == r.Dst && o.Metric == r.Metric
	})
	f.RouteSet = append(f.RouteSet, r)
	return nil
}

func (f *Netlink) DelRoute(r plumbing.Route) error {
	i := slices.Index(f.RouteSet, r)
	if i < 0 {
		return syscall.ESRCH
	}
	if err := f.change("route del %v", r); err != nil {
		return err
	}
	f.RouteSet = slices.Delete(f.RouteSet, i, i+1)
	return nil
}

func (f *Netlink) ReadSysctl(key string) (string, error) {
	v, ok := f.Sysctls[key]
	if !ok {
		return "", os.ErrNotExist
	}
	return v, nil
}

func (f *Netlink) WriteSysctl(key, value string) error {
	if _, ok := f.Sysctls[key]; !ok && f.WriteMissing {
		return os.ErrNotExist
	}
	if err := f.change("sysctl %s = %s", key, value); err != nil {
		return err
	}
	f.Sysctls[key] = value
	return nil
}

func (f *Netlink) Close() error { return nil }

// Installed returns, as text and sorted, the rules and routes ops shows
// in the default priority range and tables or with the default protocol.
func Installed(t testing.TB, ops plumbing.NetlinkOps) ([]string, []string) {
	t.Helper()
	rules, err := ops.Rules()
	if err != nil {
		t.Fatal(err)
	}
	var rs, ts []string
	for _, r := range rules {
		if r.Protocol == 154 || (r.Priority >= 15000 && r.Priority < 15100) {
			rs = append(rs, r.String())
		}
	}
	for tab := 15000; tab <= 15001+config.MaxUplinks; tab++ {
		routes, err := ops.Routes(tab)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			ts = append(ts, r.String())
		}
	}
	slices.Sort(rs)
	slices.Sort(ts)
	return rs, ts
}

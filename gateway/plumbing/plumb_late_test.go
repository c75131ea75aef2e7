package plumbing_test

import (
	"slices"
	"testing"

	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/gateway/plumbing/plumbtest"
)

// TestPlumberUplinkMissingAtApply: an uplink interface that does not exist
// yet leaves its route pending and its accept_ra deferred; when it appears,
// Reconcile sets both, and Teardown restores accept_ra.
func TestPlumberUplinkMissingAtApply(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upB") // upA (accept_ra: true) absent
	delete(f.Sysctls, "net/ipv6/conf/upA/accept_ra")
	p := plumbing.NewPlumber(f, testPlumbConfig(), nil)
	if err := p.Apply(); err != nil {
		t.Fatalf("Apply with upA missing: %v", err)
	}
	if pend := p.Pending(); len(pend) != 1 || pend[0].Dev != "upA" {
		t.Fatalf("pending = %v, want the upA route", pend)
	}
	if len(f.RuleSet) != 7 {
		t.Errorf("rules = %d, want all 7 (iif upA matches once it exists)", len(f.RuleSet))
	}
	if err := p.Reconcile(); err != nil || len(p.Pending()) != 1 {
		t.Fatalf("Reconcile while absent: %v, pending %v", err, p.Pending())
	}
	f.Links["upA"] = &plumbtest.Link{Up: true, MTU: 1500}
	f.Sysctls["net/ipv6/conf/upA/accept_ra"] = "1"
	if err := p.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(p.Pending()) != 0 || f.Sysctls["net/ipv6/conf/upA/accept_ra"] != "2" {
		t.Errorf("after upA appeared: pending %v accept_ra %s", p.Pending(), f.Sysctls["net/ipv6/conf/upA/accept_ra"])
	}
	if !slices.ContainsFunc(f.RouteSet, func(r plumbing.Route) bool { return r.Dev == "upA" }) {
		t.Errorf("upA route not installed: %v", f.RouteSet)
	}
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
	if f.Sysctls["net/ipv6/conf/upA/accept_ra"] != "1" {
		t.Errorf("accept_ra not restored: %s", f.Sysctls["net/ipv6/conf/upA/accept_ra"])
	}
}

// TestPlumberTeardownUplinkGone: an interface that vanished has no
// accept_ra left to restore; that is not a teardown error.
func TestPlumberTeardownUplinkGone(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upA", "upB")
	p := plumbing.NewPlumber(f, testPlumbConfig(), nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	delete(f.Sysctls, "net/ipv6/conf/upA/accept_ra")
	f.WriteMissing = true
	if err := p.Teardown(); err != nil {
		t.Errorf("Teardown: %v", err)
	}
}

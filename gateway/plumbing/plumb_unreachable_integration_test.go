package plumbing_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/shim6gw/shim6gw/gateway/plumbing"
)

// routeGet runs `ip -6 route get dst from src iif dev` in the namespace
// and returns its output (or the error text ip prints).
func routeGet(t *testing.T, ns, dst, src, dev string) string {
	t.Helper()
	out, _ := exec.Command("ip", "-n", ns, "-6", "route", "get", dst, "from", src, "iif", dev).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// TestIntegrationUnreachableEndsUplinkTable: with uplink a down, a packet
// from the TUN sourced under P_A must not fall through to the main table
// and leave by uplink b; crash recovery removes the unreachable route too.
func TestIntegrationUnreachableEndsUplinkTable(t *testing.T) {
	const name = "s6ops-unreach"
	h, ops := plumbingNS(t, name)
	// The main table's default leaves by uplink b: what a leak would use.
	if out, err := exec.Command("ip", "-n", name, "-6", "route", "add", "default", "via", "fe80::2", "dev", "s6gwupb").CombinedOutput(); err != nil {
		t.Fatalf("main default: %v %s", err, out)
	}
	cfg := integrationPlumbConfig("")
	p := plumbing.NewPlumber(ops, cfg, nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Teardown() })
	const dst, fromA = "2001:db8:ffff::1", "2001:db8:a:1::10"
	if got := routeGet(t, name, dst, fromA, "s6gwtun"); !strings.Contains(got, "dev s6gwupa") {
		t.Fatalf("uplink a up: route get = %q, want via s6gwupa", got)
	}
	upa, err := h.LinkByName("s6gwupa")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(upa); err != nil { // the kernel drops table a's default
		t.Fatal(err)
	}
	got := routeGet(t, name, dst, fromA, "s6gwtun")
	if strings.Contains(got, "s6gwupb") || !strings.Contains(got, "No route to host") {
		t.Errorf("uplink a down: route get = %q, want No route to host, never via s6gwupb", got)
	}
	// From P_B the main-table route is still fine.
	if got := routeGet(t, name, dst, "2001:db8:b:1::10", "s6gwtun"); !strings.Contains(got, "dev s6gwupb") {
		t.Errorf("from P_B: route get = %q, want via s6gwupb", got)
	}

	// A crash leaves the routes; the next start's cleanup removes them all.
	fresh := plumbing.NewPlumber(ops, cfg, nil)
	if _, err := fresh.CleanupStale(); err != nil {
		t.Fatal(err)
	}
	for _, tab := range []int{cfg.Rules.UplinkTable(0), cfg.Rules.UplinkTable(1)} {
		if rs, err := ops.Routes(tab); err != nil || len(rs) != 0 {
			t.Errorf("table %d after cleanup: %v %v", tab, rs, err)
		}
	}
	if rs, err := h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: cfg.Rules.UplinkTable(0)}, netlink.RT_FILTER_TABLE); err != nil || len(rs) != 0 {
		t.Errorf("kernel table %d after cleanup: %v %v", cfg.Rules.UplinkTable(0), rs, err)
	}
}

package plumbing_test

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/gateway/plumbing/plumbtest"
	"github.com/shim6gw/shim6gw/internal/nstest"
)

func integrationPlumbConfig(state string) plumbing.PlumbConfig {
	return plumbing.PlumbConfig{
		TUN: "s6gwtun", TUNMTU: 1400, LAN: "s6gwlan", StateFile: state,
		LANPrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")},
		Uplinks: []plumbing.PlumbUplink{
			{Name: "a", Interface: "s6gwupa", Prefix: netip.MustParsePrefix("2001:db8:a::/48"), Gateway: netip.MustParseAddr("fe80::1"), AcceptRA: true},
			{Name: "b", Interface: "s6gwupb", Prefix: netip.MustParsePrefix("2001:db8:b::/48")},
		},
		Rules: config.RulesConfig{PriorityBase: 15000, TableBase: 15000, Protocol: 154},
	}
}

// plumbingNS is namespace name with the TUN, LAN and uplinks of
// integrationPlumbConfig, and netlink ops inside it.
func plumbingNS(t *testing.T, name string) (*netlink.Handle, plumbing.NetlinkOps) {
	t.Helper()
	ns, h := nstest.NewNS(t, name)
	nstest.AddTUN(t, ns, h, "s6gwtun")
	for _, l := range []string{"s6gwlan", "s6gwupa", "s6gwupb"} {
		nstest.AddVeth(t, h, l, l+"p")
	}
	ops, err := plumbing.NewNetlinkOps(&ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.Close() })
	return h, ops
}

func TestIntegrationPlumbing(t *testing.T) {
	const name = "s6gw-plumb"
	_, ops := plumbingNS(t, name)
	state := filepath.Join(t.TempDir(), "sysctl.json")
	cfg := integrationPlumbConfig(state)
	if v, err := ops.ReadSysctl(plumbing.SysctlForwarding); err != nil || v != "0" {
		t.Fatalf("forwarding in a fresh namespace = %q, %v; want 0", v, err)
	}

	p := plumbing.NewPlumber(ops, cfg, nil)
	if n, err := p.CleanupStale(); n != 0 || err != nil {
		t.Fatalf("CleanupStale on a clean namespace: %d, %v", n, err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Teardown() })

	var wantRules, wantRoutes []string
	for _, r := range cfg.DesiredRules() {
		wantRules = append(wantRules, r.String())
	}
	for _, r := range cfg.DesiredRoutes() {
		wantRoutes = append(wantRoutes, r.String())
	}
	slices.Sort(wantRules)
	slices.Sort(wantRoutes)
	gotRules, gotRoutes := plumbtest.Installed(t, ops)
	if diff := cmp.Diff(wantRules, gotRules); diff != "" {
		t.Errorf("rules while running (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantRoutes, gotRoutes); diff != "" {
		t.Errorf("routes while running (-want +got):\n%s", diff)
	}
	for key, want := range map[string]string{plumbing.SysctlForwarding: "1", "net/ipv6/conf/s6gwupa/accept_ra": "2"} {
		if v, err := ops.ReadSysctl(key); err != nil || v != want {
			t.Errorf("%s = %q, %v; want %s", key, v, err, want)
		}
	}
	if up, err := ops.LinkUp("s6gwtun"); err != nil || !up {
		t.Errorf("tun up = %v, %v", up, err)
	}
	// Cross-check with iproute2's own rendering.
	out, err := exec.Command("ip", "-n", name, "-6", "rule", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip rule: %v\n%s", err, out)
	}
	for _, want := range []string{
		"15000:\tfrom all iif s6gwtun lookup 15001 proto 154",
		"15010:\tfrom 2001:db8:a::/48 iif s6gwtun lookup 15002 proto 154",
		"15011:\tfrom 2001:db8:b::/48 iif s6gwtun lookup 15003 proto 154",
		"15050:\tfrom all iif s6gwtun lookup main proto 154",
		"15060:\tfrom all iif s6gwlan lookup 15000 proto 154",
		"15070:\tfrom all iif s6gwupa lookup 15000 proto 154",
		"15071:\tfrom all iif s6gwupb lookup 15000 proto 154",
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("ip -6 rule lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command("ip", "-n", name, "-6", "route", "show", "table", "15002").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "default via fe80::1 dev s6gwupa proto 154") {
		t.Errorf("ip -6 route show table 15002: %v\n%s", err, out)
	}
	out, err = exec.Command("ip", "-n", name, "-6", "route", "show", "table", "15001").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2001:db8:b:1::/64 dev s6gwlan proto 154") {
		t.Errorf("ip -6 route show table 15001: %v\n%s", err, out)
	}

	// SIGTERM path: Teardown leaves nothing and restores the sysctls.
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
	gotRules, gotRoutes = plumbtest.Installed(t, ops)
	if len(gotRules)+len(gotRoutes) != 0 {
		t.Errorf("after Teardown: rules %v routes %v", gotRules, gotRoutes)
	}
	for key, want := range map[string]string{plumbing.SysctlForwarding: "0", "net/ipv6/conf/s6gwupa/accept_ra": "1"} {
		if v, err := ops.ReadSysctl(key); err != nil || v != want {
			t.Errorf("after Teardown %s = %q, %v; want %s", key, v, err, want)
		}
	}

	// kill -9 path: apply, abandon, and a new run's CleanupStale removes it.
	crashed := plumbing.NewPlumber(ops, cfg, nil)
	if err := crashed.Apply(); err != nil {
		t.Fatal(err)
	}
	fresh := plumbing.NewPlumber(ops, cfg, nil)
	n, err := fresh.CleanupStale()
	if err != nil {
		t.Fatal(err)
	}
	if want := len(wantRules) + len(wantRoutes); n != want {
		t.Errorf("CleanupStale removed %d, want %d", n, want)
	}
	gotRules, gotRoutes = plumbtest.Installed(t, ops)
	if len(gotRules)+len(gotRoutes) != 0 {
		t.Errorf("after crash cleanup: rules %v routes %v", gotRules, gotRoutes)
	}
	if v, _ := ops.ReadSysctl(plumbing.SysctlForwarding); v != "0" {
		t.Errorf("forwarding after crash cleanup = %q, want 0 (from the state file)", v)
	}
	out, err = exec.Command("ip", "-n", name, "-6", "rule", "show").CombinedOutput()
	if err != nil || strings.Contains(string(out), "proto 154") || strings.Contains(string(out), "150") {
		t.Errorf("ip -6 rule after cleanup: %v\n%s", err, out)
	}
}

// TestIntegrationPlumbingLinkBounce checks that Reconcile restores the
// uplink route the kernel drops when the interface goes down.
func TestIntegrationPlumbingLinkBounce(t *testing.T) {
	h, ops := plumbingNS(t, "s6gw-bounce")
	p := plumbing.NewPlumber(ops, integrationPlumbConfig(""), nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Teardown() })
	upa, err := h.LinkByName("s6gwupa")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(upa); err != nil {
		t.Fatal(err)
	}
	if rs, _ := ops.Routes(15002); len(rs) != 1 || !rs[0].Unreachable {
		t.Fatalf("kernel kept %v on a down link; test premise wrong", rs)
	}
	if err := p.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(p.Pending()) != 1 {
		t.Errorf("pending while down = %v", p.Pending())
	}
	if err := h.LinkSetUp(upa); err != nil {
		t.Fatal(err)
	}
	if err := p.Reconcile(); err != nil {
		t.Fatal(err)
	}
	rs, err := ops.Routes(15002)
	if err != nil || len(rs) != 2 || rs[0].String() != "default via fe80::1 dev s6gwupa table 15002 proto 154" {
		t.Errorf("table 15002 after Reconcile = %v, %v", rs, err)
	}
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
}

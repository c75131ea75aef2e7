package plumbing_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/config/configtest"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/gateway/plumbing/plumbtest"
)

func testPlumbConfig() plumbing.PlumbConfig {
	return plumbing.PlumbConfig{
		TUN: "shim6gw0", TUNMTU: 1400, LAN: "lan0",
		LANPrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")},
		Uplinks: []plumbing.PlumbUplink{
			{Name: "a", Interface: "upA", Prefix: netip.MustParsePrefix("2001:db8:a::/48"), Gateway: netip.MustParseAddr("fe80::1"), AcceptRA: true},
			{Name: "b", Interface: "upB", Prefix: netip.MustParsePrefix("2001:db8:b::/48")},
		},
		Rules: config.RulesConfig{PriorityBase: 15000, TableBase: 15000, Protocol: 154},
	}
}

// netipCmp compares netip values by ==.
var netipCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

const goldenApply = `
sysctl net/ipv6/conf/all/forwarding = 1
sysctl net/ipv6/conf/upA/accept_ra = 2
link set shim6gw0 mtu 1400 up
route replace default dev shim6gw0 table 15000 proto 154
route replace 2001:db8:a:1::/64 dev lan0 table 15001 proto 154
route replace 2001:db8:b:1::/64 dev lan0 table 15001 proto 154
route replace default via fe80::1 dev upA table 15002 proto 154
route replace default dev upB table 15003 proto 154
route replace unreachable default table 15002 proto 154 metric 4294967295
route replace unreachable default table 15003 proto 154 metric 4294967295
rule add 15000: from all iif shim6gw0 lookup 15001 proto 154
rule add 15010: from 2001:db8:a::/48 iif shim6gw0 lookup 15002 proto 154
rule add 15011: from 2001:db8:b::/48 iif shim6gw0 lookup 15003 proto 154
rule add 15050: from all iif shim6gw0 lookup main proto 154
rule add 15060: from all iif lan0 lookup 15000 proto 154
rule add 15070: from all iif upA lookup 15000 proto 154
rule add 15071: from all iif upB lookup 15000 proto 154
`

const goldenTeardown = `
rule del 15071: from all iif upB lookup 15000 proto 154
rule del 15070: from all iif upA lookup 15000 proto 154
rule del 15060: from all iif lan0 lookup 15000 proto 154
rule del 15050: from all iif shim6gw0 lookup main proto 154
rule del 15011: from 2001:db8:b::/48 iif shim6gw0 lookup 15003 proto 154
rule del 15010: from 2001:db8:a::/48 iif shim6gw0 lookup 15002 proto 154
rule del 15000: from all iif shim6gw0 lookup 15001 proto 154
route del unreachable default table 15003 proto 154 metric 4294967295
route del unreachable default table 15002 proto 154 metric 4294967295
route del default dev upB table 15003 proto 154
route del default via fe80::1 dev upA table 15002 proto 154
route del 2001:db8:b:1::/64 dev lan0 table 15001 proto 154
route del 2001:db8:a:1::/64 dev lan0 table 15001 proto 154
route del default dev shim6gw0 table 15000 proto 154
sysctl net/ipv6/conf/upA/accept_ra = 1
sysctl net/ipv6/conf/all/forwarding = 0
`

func TestPlumberApplyTeardownGolden(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upA", "upB")
	p := plumbing.NewPlumber(f, testPlumbConfig(), nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lines(goldenApply), f.Ops); diff != "" {
		t.Errorf("apply ops (-want +got):\n%s", diff)
	}
	if f.Links["shim6gw0"].MTU != 1400 || len(f.RuleSet) != 7 || len(f.RouteSet) != 7 {
		t.Errorf("state after apply: mtu %d, %d rules, %d routes", f.Links["shim6gw0"].MTU, len(f.RuleSet), len(f.RouteSet))
	}
	f.Ops = nil
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lines(goldenTeardown), f.Ops); diff != "" {
		t.Errorf("teardown ops (-want +got):\n%s", diff)
	}
	if len(f.RuleSet) != 0 || len(f.RouteSet) != 0 || f.Sysctls["net/ipv6/conf/all/forwarding"] != "0" || f.Sysctls["net/ipv6/conf/upA/accept_ra"] != "1" {
		t.Errorf("left behind: rules %v routes %v sysctls %v", f.RuleSet, f.RouteSet, f.Sysctls)
	}
}

func TestPlumberKeepsSysctlsAlreadySet(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upA", "upB")
	f.Sysctls["net/ipv6/conf/all/forwarding"] = "1"
	f.Sysctls["net/ipv6/conf/upA/accept_ra"] = "2"
	p := plumbing.NewPlumber(f, testPlumbConfig(), nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
	for _, op := range f.Ops {
		if strings.HasPrefix(op, "sysctl") {
			t.Errorf("unexpected %q: the value was already right", op)
		}
	}
	if f.Sysctls["net/ipv6/conf/all/forwarding"] != "1" {
		t.Error("forwarding turned off although it was on before")
	}
}

func TestPlumberApplyFailureUndoes(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upA", "upB")
	f.FailOn = "rule add 15060"
	p := plumbing.NewPlumber(f, testPlumbConfig(), nil)
	err := p.Apply()
	if !errors.Is(err, plumbtest.ErrInjected) {
		t.Fatalf("Apply err = %v, want injected", err)
	}
	if len(f.RuleSet) != 0 || len(f.RouteSet) != 0 || f.Sysctls["net/ipv6/conf/all/forwarding"] != "0" {
		t.Errorf("not undone: rules %v routes %v sysctls %v", f.RuleSet, f.RouteSet, f.Sysctls)
	}
	if got := f.Ops[len(f.Ops)-1]; got != "sysctl net/ipv6/conf/all/forwarding = 0" {
		t.Errorf("last op %q, want the forwarding restore", got)
	}
}

// roSysctl makes every sysctl write fail as in a container.
type roSysctl struct{ *plumbtest.Netlink }

func (roSysctl) WriteSysctl(string, string) error {
	return &os.PathError{Op: "open", Path: "/proc/sys/x", Err: syscall.EROFS}
}

func TestPlumberReadOnlySysctl(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upA", "upB")
	err := plumbing.NewPlumber(roSysctl{f}, testPlumbConfig(), nil).Apply()
	want := "gateway: net/ipv6/conf/all/forwarding is 0 and cannot be set here; set it to 1 on the host " +
		"(sysctl -w net.ipv6.conf.all.forwarding=1): open /proc/sys/x: read-only file system"
	if err == nil || err.Error() != want || !errors.Is(err, syscall.EROFS) {
		t.Errorf("err = %v", err)
	}
	if len(f.Ops) != 0 {
		t.Errorf("ops after a failed start: %v", f.Ops)
	}
	// Already enabled on the host: no write is attempted, so it works.
	f.Sysctls["net/ipv6/conf/all/forwarding"] = "1"
	cfg := testPlumbConfig()
	cfg.Uplinks[0].AcceptRA = false
	p := plumbing.NewPlumber(roSysctl{f}, cfg, nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
}

func TestPlumberPendingRouteAndReconcile(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upA", "upB")
	f.Links["upA"].Up = false
	p := plumbing.NewPlumber(f, testPlumbConfig(), nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	want := []plumbing.Route{{Table: 15002, Dst: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("fe80::1"), Dev: "upA", Protocol: 154}}
	if diff := cmp.Diff(want, p.Pending(), cmp.Comparer(func(a, b plumbing.Route) bool { return a == b })); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
	// Still down: stays pending, no error.
	if err := p.Reconcile(); err != nil || len(p.Pending()) != 1 {
		t.Fatalf("Reconcile while down: err %v pending %v", err, p.Pending())
	}
	f.Links["upA"].Up = true
	f.Ops = nil
	if err := p.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(p.Pending()) != 0 {
		t.Errorf("still pending: %v", p.Pending())
	}
	if !slices.Contains(f.Ops, "route replace default via fe80::1 dev upA table 15002 proto 154") {
		t.Errorf("ops %v lack the uplink route", f.Ops)
	}
	// The kernel dropped a route on link down/up: Reconcile puts it back.
	f.RouteSet = slices.DeleteFunc(f.RouteSet, func(r plumbing.Route) bool { return r.Table == 15003 && !r.Unreachable })
	if err := p.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Routes(15003); len(got) != 2 {
		t.Errorf("table 15003 = %v after Reconcile", got)
	}
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
	if len(f.RouteSet) != 0 || len(f.RuleSet) != 0 {
		t.Errorf("left: %v %v", f.RouteSet, f.RuleSet)
	}
}

func TestPlumberCleanupStale(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upA", "upB")
	state := filepath.Join(t.TempDir(), "run", "sysctl.json")
	cfg := testPlumbConfig()
	cfg.StateFile = state
	crashed := plumbing.NewPlumber(f, cfg, nil)
	if err := crashed.Apply(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("state file: %v", err)
	}
	// Foreign state that must survive: a rule outside the range with
	// another protocol, and a route of another protocol in our table.
	foreign := plumbing.Rule{Priority: 100, Table: 200, SuppressPrefixlen: -1, Protocol: 4}
	f.RuleSet = append(f.RuleSet, foreign)
	other := plumbing.Route{Table: 15002, Dst: netip.MustParsePrefix("2001:db8:ff::/48"), Dev: "upA", Protocol: 4}
	f.RouteSet = append(f.RouteSet, other)
	// A rule of ours outside the range (an earlier priority_base).
	f.RuleSet = append(f.RuleSet, plumbing.Rule{Priority: 9000, Table: 15000, SuppressPrefixlen: -1, Protocol: 154})

	f.Ops = nil
	fresh := plumbing.NewPlumber(f, cfg, nil) // the crashed one is abandoned: kill -9
	n, err := fresh.CleanupStale()
	if err != nil {
		t.Fatal(err)
	}
	if n != 15 {
		t.Errorf("removed %d, want 8 rules + 7 routes", n)
	}
	if diff := cmp.Diff([]plumbing.Rule{foreign}, f.RuleSet, netipCmp); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]plumbing.Route{other}, f.RouteSet, cmp.Comparer(func(a, b plumbing.Route) bool { return a == b })); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if f.Sysctls["net/ipv6/conf/all/forwarding"] != "0" || f.Sysctls["net/ipv6/conf/upA/accept_ra"] != "1" {
		t.Errorf("sysctls not restored: %v", f.Sysctls)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file still there: %v", err)
	}
	// The fresh run can now apply cleanly, and a second cleanup finds nothing.
	if err := fresh.Apply(); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Teardown(); err != nil {
		t.Fatal(err)
	}
	if n, err := plumbing.NewPlumber(f, cfg, nil).CleanupStale(); n != 0 || err != nil {
		t.Errorf("second cleanup: %d, %v", n, err)
	}
}

func TestPlumbConfigFrom(t *testing.T) {
	c, err := config.Load(configtest.Write(t, configtest.Good))
	if err != nil {
		t.Fatal(err)
	}
	got := plumbing.PlumbConfigFrom(c, "/run/x")
	want := plumbing.PlumbConfig{TUN: "shim6gw0", TUNMTU: 1500, TUNTxQueueLen: 1000, LAN: "lan0", StateFile: "/run/x",
		LANPrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")},
		Rules:       config.RulesConfig{PriorityBase: 15000, TableBase: 15000, Protocol: 154},
		Uplinks: []plumbing.PlumbUplink{
			{Name: "a", Interface: "upA", Prefix: netip.MustParsePrefix("2001:db8:a::/48"), Gateway: netip.MustParseAddr("fe80::1")},
			{Name: "b", Interface: "upB", Prefix: netip.MustParsePrefix("2001:db8:b::/48"), Gateway: netip.MustParseAddr("fe80::2")},
		}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPlumberUpdatePrefixes(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upA", "upB")
	cfg := testPlumbConfig()
	p := plumbing.NewPlumber(f, cfg, nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	next := testPlumbConfig()
	next.Uplinks[1].Prefix = netip.MustParsePrefix("2001:db8:c::/48")
	next.LANPrefixes[1] = netip.MustParsePrefix("2001:db8:c:1::/64")
	f.Ops = nil
	if err := p.Update(next); err != nil {
		t.Fatal(err)
	}
	want := lines(`
rule del 15011: from 2001:db8:b::/48 iif shim6gw0 lookup 15003 proto 154
rule add 15011: from 2001:db8:c::/48 iif shim6gw0 lookup 15003 proto 154
route del 2001:db8:b:1::/64 dev lan0 table 15001 proto 154
route replace default dev shim6gw0 table 15000 proto 154
route replace 2001:db8:a:1::/64 dev lan0 table 15001 proto 154
route replace 2001:db8:c:1::/64 dev lan0 table 15001 proto 154
route replace default via fe80::1 dev upA table 15002 proto 154
route replace default dev upB table 15003 proto 154
route replace unreachable default table 15002 proto 154 metric 4294967295
route replace unreachable default table 15003 proto 154 metric 4294967295
`)
	if diff := cmp.Diff(want, f.Ops); diff != "" {
		t.Errorf("update ops (-want +got):\n%s", diff)
	}
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
	if len(f.RuleSet) != 0 || len(f.RouteSet) != 0 {
		t.Errorf("left: %v %v", f.RuleSet, f.RouteSet)
	}
}

func TestPlumberVerify(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upA", "upB")
	p := plumbing.NewPlumber(f, testPlumbConfig(), nil)
	if err := p.Verify(); !errors.Is(err, plumbing.ErrPlumbingMissing) {
		t.Errorf("before Apply: %v", err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err != nil {
		t.Errorf("after Apply: %v", err)
	}
	// Someone runs `ip -6 rule del` and the kernel drops a route.
	f.RuleSet = slices.DeleteFunc(f.RuleSet, func(r plumbing.Rule) bool { return r.Priority == 15060 })
	f.RouteSet = slices.DeleteFunc(f.RouteSet, func(r plumbing.Route) bool { return r.Table == 15003 && !r.Unreachable })
	want := "gateway: plumbing missing: rule 15060: from all iif lan0 lookup 15000 proto 154; " +
		"route default dev upB table 15003 proto 154"
	if err := p.Verify(); err == nil || err.Error() != want {
		t.Errorf("Verify = %v, want %s", err, want)
	}
	if err := p.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err == nil || !strings.Contains(err.Error(), "rule 15060") || strings.Contains(err.Error(), "route") {
		t.Errorf("after Reconcile: %v", err)
	}
}

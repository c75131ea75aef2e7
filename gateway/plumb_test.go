package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeNetlink is a NetlinkOps that keeps kernel state in maps and records
// every change as one line of text.
type fakeNetlink struct {
	ops     []string
	links   map[string]*fakeLink
	rules   []Rule
	routes  []Route
	sysctls map[string]string
	failOn  string // a change whose text starts with this fails
	// writeMissing: writing a sysctl that does not exist fails like
	// /proc/sys does for a vanished interface.
	writeMissing bool
}

type fakeLink struct {
	up  bool
	mtu int
}

func newFakeNetlink(links ...string) *fakeNetlink {
	f := &fakeNetlink{links: map[string]*fakeLink{}, sysctls: map[string]string{
		"net/ipv6/conf/all/forwarding": "0",
	}}
	for _, l := range links {
		f.links[l] = &fakeLink{up: true, mtu: 1500}
		f.sysctls["net/ipv6/conf/"+l+"/accept_ra"] = "1"
	}
	return f
}

var errInjected = errors.New("injected failure")

func (f *fakeNetlink) change(format string, args ...any) error {
	s := fmt.Sprintf(format, args...)
	if f.failOn != "" && strings.HasPrefix(s, f.failOn) {
		f.ops = append(f.ops, s+" -> error")
		return errInjected
	}
	f.ops = append(f.ops, s)
	return nil
}

func (f *fakeNetlink) LinkExists(name string) (bool, error) { return f.links[name] != nil, nil }

func (f *fakeNetlink) LinkUp(name string) (bool, error) {
	l := f.links[name]
	if l == nil {
		return false, syscall.ENODEV
	}
	return l.up, nil
}

func (f *fakeNetlink) SetLink(name string, mtu int) error {
	l := f.links[name]
	if l == nil {
		return syscall.ENODEV
	}
	if err := f.change("link set %s mtu %d up", name, mtu); err != nil {
		return err
	}
	l.up, l.mtu = true, mtu
	return nil
}

func (f *fakeNetlink) Rules() ([]Rule, error) { return slices.Clone(f.rules), nil }

func (f *fakeNetlink) AddRule(r Rule) error {
	if err := f.change("rule add %v", r); err != nil {
		return err
	}
	f.rules = append(f.rules, r)
	return nil
}

func (f *fakeNetlink) DelRule(r Rule) error {
	i := slices.Index(f.rules, r)
	if i < 0 {
		return syscall.ENOENT
	}
	if err := f.change("rule del %v", r); err != nil {
		return err
	}
	f.rules = slices.Delete(f.rules, i, i+1)
	return nil
}

func (f *fakeNetlink) Routes(table int) ([]Route, error) {
	var out []Route
	for _, r := range f.routes {
		if r.Table == table {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeNetlink) ReplaceRoute(r Route) error {
	if l := f.links[r.Dev]; !r.Unreachable && l == nil {
		return syscall.ENODEV
	} else if !r.Unreachable && !l.up && r.Gateway.IsValid() {
		return syscall.ENETDOWN // ip6_validate_gw: "Nexthop device is not up"
	}
	if err := f.change("route replace %v", r); err != nil {
		return err
	}
	f.routes = slices.DeleteFunc(f.routes, func(o Route) bool {
		return o.Table == r.Table && o.Dst == r.Dst && o.Metric == r.Metric
	})
	f.routes = append(f.routes, r)
	return nil
}

func (f *fakeNetlink) DelRoute(r Route) error {
	i := slices.Index(f.routes, r)
	if i < 0 {
		return syscall.ESRCH
	}
	if err := f.change("route del %v", r); err != nil {
		return err
	}
	f.routes = slices.Delete(f.routes, i, i+1)
	return nil
}

func (f *fakeNetlink) ReadSysctl(key string) (string, error) {
	v, ok := f.sysctls[key]
	if !ok {
		return "", os.ErrNotExist
	}
	return v, nil
}

func (f *fakeNetlink) WriteSysctl(key, value string) error {
	if _, ok := f.sysctls[key]; !ok && f.writeMissing {
		return os.ErrNotExist
	}
	if err := f.change("sysctl %s = %s", key, value); err != nil {
		return err
	}
	f.sysctls[key] = value
	return nil
}

func (f *fakeNetlink) Close() error { return nil }

func testPlumbConfig() PlumbConfig {
	return PlumbConfig{
		TUN: "shim6gw0", TUNMTU: 1400, LAN: "lan0",
		LANPrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")},
		Uplinks: []PlumbUplink{
			{Name: "a", Interface: "upA", Prefix: netip.MustParsePrefix("2001:db8:a::/48"), Gateway: netip.MustParseAddr("fe80::1"), AcceptRA: true},
			{Name: "b", Interface: "upB", Prefix: netip.MustParsePrefix("2001:db8:b::/48")},
		},
		Rules: RulesConfig{PriorityBase: 15000, TableBase: 15000, Protocol: 154},
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
	f := newFakeNetlink("shim6gw0", "lan0", "upA", "upB")
	p := NewPlumber(f, testPlumbConfig(), nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lines(goldenApply), f.ops); diff != "" {
		t.Errorf("apply ops (-want +got):\n%s", diff)
	}
	if f.links["shim6gw0"].mtu != 1400 || len(f.rules) != 7 || len(f.routes) != 7 {
		t.Errorf("state after apply: mtu %d, %d rules, %d routes", f.links["shim6gw0"].mtu, len(f.rules), len(f.routes))
	}
	f.ops = nil
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lines(goldenTeardown), f.ops); diff != "" {
		t.Errorf("teardown ops (-want +got):\n%s", diff)
	}
	if len(f.rules) != 0 || len(f.routes) != 0 || f.sysctls["net/ipv6/conf/all/forwarding"] != "0" || f.sysctls["net/ipv6/conf/upA/accept_ra"] != "1" {
		t.Errorf("left behind: rules %v routes %v sysctls %v", f.rules, f.routes, f.sysctls)
	}
}

func TestPlumberKeepsSysctlsAlreadySet(t *testing.T) {
	f := newFakeNetlink("shim6gw0", "lan0", "upA", "upB")
	f.sysctls["net/ipv6/conf/all/forwarding"] = "1"
	f.sysctls["net/ipv6/conf/upA/accept_ra"] = "2"
	p := NewPlumber(f, testPlumbConfig(), nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
	for _, op := range f.ops {
		if strings.HasPrefix(op, "sysctl") {
			t.Errorf("unexpected %q: the value was already right", op)
		}
	}
	if f.sysctls["net/ipv6/conf/all/forwarding"] != "1" {
		t.Error("forwarding turned off although it was on before")
	}
}

func TestPlumberApplyFailureUndoes(t *testing.T) {
	f := newFakeNetlink("shim6gw0", "lan0", "upA", "upB")
	f.failOn = "rule add 15060"
	p := NewPlumber(f, testPlumbConfig(), nil)
	err := p.Apply()
	if !errors.Is(err, errInjected) {
		t.Fatalf("Apply err = %v, want injected", err)
	}
	if len(f.rules) != 0 || len(f.routes) != 0 || f.sysctls["net/ipv6/conf/all/forwarding"] != "0" {
		t.Errorf("not undone: rules %v routes %v sysctls %v", f.rules, f.routes, f.sysctls)
	}
	if got := f.ops[len(f.ops)-1]; got != "sysctl net/ipv6/conf/all/forwarding = 0" {
		t.Errorf("last op %q, want the forwarding restore", got)
	}
}

// roSysctl makes every sysctl write fail as in a container.
type roSysctl struct{ *fakeNetlink }

func (roSysctl) WriteSysctl(string, string) error {
	return &os.PathError{Op: "open", Path: "/proc/sys/x", Err: syscall.EROFS}
}

func TestPlumberReadOnlySysctl(t *testing.T) {
	f := newFakeNetlink("shim6gw0", "lan0", "upA", "upB")
	err := NewPlumber(roSysctl{f}, testPlumbConfig(), nil).Apply()
	want := "gateway: net/ipv6/conf/all/forwarding is 0 and cannot be set here; set it to 1 on the host " +
		"(sysctl -w net.ipv6.conf.all.forwarding=1): open /proc/sys/x: read-only file system"
	if err == nil || err.Error() != want || !errors.Is(err, syscall.EROFS) {
		t.Errorf("err = %v", err)
	}
	if len(f.ops) != 0 {
		t.Errorf("ops after a failed start: %v", f.ops)
	}
	// Already enabled on the host: no write is attempted, so it works.
	f.sysctls["net/ipv6/conf/all/forwarding"] = "1"
	cfg := testPlumbConfig()
	cfg.Uplinks[0].AcceptRA = false
	p := NewPlumber(roSysctl{f}, cfg, nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
}

func TestPlumberPendingRouteAndReconcile(t *testing.T) {
	f := newFakeNetlink("shim6gw0", "lan0", "upA", "upB")
	f.links["upA"].up = false
	p := NewPlumber(f, testPlumbConfig(), nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	want := []Route{{Table: 15002, Dst: defaultRoute, Gateway: netip.MustParseAddr("fe80::1"), Dev: "upA", Protocol: 154}}
	if diff := cmp.Diff(want, p.Pending(), cmp.Comparer(func(a, b Route) bool { return a == b })); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
	// Still down: stays pending, no error.
	if err := p.Reconcile(); err != nil || len(p.Pending()) != 1 {
		t.Fatalf("Reconcile while down: err %v pending %v", err, p.Pending())
	}
	f.links["upA"].up = true
	f.ops = nil
	if err := p.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(p.Pending()) != 0 {
		t.Errorf("still pending: %v", p.Pending())
	}
	if !slices.Contains(f.ops, "route replace default via fe80::1 dev upA table 15002 proto 154") {
		t.Errorf("ops %v lack the uplink route", f.ops)
	}
	// The kernel dropped a route on link down/up: Reconcile puts it back.
	f.routes = slices.DeleteFunc(f.routes, func(r Route) bool { return r.Table == 15003 && !r.Unreachable })
	if err := p.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Routes(15003); len(got) != 2 {
		t.Errorf("table 15003 = %v after Reconcile", got)
	}
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
	if len(f.routes) != 0 || len(f.rules) != 0 {
		t.Errorf("left: %v %v", f.routes, f.rules)
	}
}

func TestPlumberCleanupStale(t *testing.T) {
	f := newFakeNetlink("shim6gw0", "lan0", "upA", "upB")
	state := filepath.Join(t.TempDir(), "run", "sysctl.json")
	cfg := testPlumbConfig()
	cfg.StateFile = state
	crashed := NewPlumber(f, cfg, nil)
	if err := crashed.Apply(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("state file: %v", err)
	}
	// Foreign state that must survive: a rule outside the range with
	// another protocol, and a route of another protocol in our table.
	foreign := Rule{Priority: 100, Table: 200, SuppressPrefixlen: -1, Protocol: 4}
	f.rules = append(f.rules, foreign)
	other := Route{Table: 15002, Dst: netip.MustParsePrefix("2001:db8:ff::/48"), Dev: "upA", Protocol: 4}
	f.routes = append(f.routes, other)
	// A rule of ours outside the range (an earlier priority_base).
	f.rules = append(f.rules, Rule{Priority: 9000, Table: 15000, SuppressPrefixlen: -1, Protocol: 154})

	f.ops = nil
	fresh := NewPlumber(f, cfg, nil) // the crashed one is abandoned: kill -9
	n, err := fresh.CleanupStale()
	if err != nil {
		t.Fatal(err)
	}
	if n != 15 {
		t.Errorf("removed %d, want 8 rules + 7 routes", n)
	}
	if diff := cmp.Diff([]Rule{foreign}, f.rules, netipCmp); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Route{other}, f.routes, cmp.Comparer(func(a, b Route) bool { return a == b })); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if f.sysctls["net/ipv6/conf/all/forwarding"] != "0" || f.sysctls["net/ipv6/conf/upA/accept_ra"] != "1" {
		t.Errorf("sysctls not restored: %v", f.sysctls)
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
	if n, err := NewPlumber(f, cfg, nil).CleanupStale(); n != 0 || err != nil {
		t.Errorf("second cleanup: %d, %v", n, err)
	}
}

func TestPlumbConfigFrom(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	got := PlumbConfigFrom(c, "/run/x")
	want := PlumbConfig{TUN: "shim6gw0", TUNMTU: 1500, TUNTxQueueLen: 1000, LAN: "lan0", StateFile: "/run/x",
		LANPrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")},
		Rules:       RulesConfig{PriorityBase: 15000, TableBase: 15000, Protocol: 154},
		Uplinks: []PlumbUplink{
			{Name: "a", Interface: "upA", Prefix: netip.MustParsePrefix("2001:db8:a::/48"), Gateway: netip.MustParseAddr("fe80::1")},
			{Name: "b", Interface: "upB", Prefix: netip.MustParsePrefix("2001:db8:b::/48"), Gateway: netip.MustParseAddr("fe80::2")},
		}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPlumberUpdatePrefixes(t *testing.T) {
	f := newFakeNetlink("shim6gw0", "lan0", "upA", "upB")
	cfg := testPlumbConfig()
	p := NewPlumber(f, cfg, nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	next := testPlumbConfig()
	next.Uplinks[1].Prefix = netip.MustParsePrefix("2001:db8:c::/48")
	next.LANPrefixes[1] = netip.MustParsePrefix("2001:db8:c:1::/64")
	f.ops = nil
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
	if diff := cmp.Diff(want, f.ops); diff != "" {
		t.Errorf("update ops (-want +got):\n%s", diff)
	}
	if err := p.Teardown(); err != nil {
		t.Fatal(err)
	}
	if len(f.rules) != 0 || len(f.routes) != 0 {
		t.Errorf("left: %v %v", f.rules, f.routes)
	}
}

func TestPlumberVerify(t *testing.T) {
	f := newFakeNetlink("shim6gw0", "lan0", "upA", "upB")
	p := NewPlumber(f, testPlumbConfig(), nil)
	if err := p.Verify(); !errors.Is(err, ErrPlumbingMissing) {
		t.Errorf("before Apply: %v", err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err != nil {
		t.Errorf("after Apply: %v", err)
	}
	// Someone runs `ip -6 rule del` and the kernel drops a route.
	f.rules = slices.DeleteFunc(f.rules, func(r Rule) bool { return r.Priority == 15060 })
	f.routes = slices.DeleteFunc(f.routes, func(r Route) bool { return r.Table == 15003 && !r.Unreachable })
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

package gateway

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/gateway/plumbing/plumbtest"
	"github.com/shim6gw/shim6gw/internal/nstest"
)

// ipNS runs `ip -n ns args...` and fails the test on an error.
func ipNS(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v %s", ns, strings.Join(args, " "), err, out)
	}
}

// waitPlumbing polls (every 10 ms, at most limit) until the namespace holds
// the gateway's 7 rules and 7 routes, and returns how long that took.
func waitPlumbing(t *testing.T, ops plumbing.NetlinkOps, limit time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		rules, routes := plumbtest.Installed(t, ops)
		if len(rules) == 7 && len(routes) == 7 {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not restored within %v: rules %v routes %v", what, limit, rules, routes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantMetric waits up to a second (a pass counts after the kernel took the
// repair) for the exposition line "name value", name with its labels.
func wantMetric(t *testing.T, base, name, value string) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, body := httpGet(t, base+"/metrics")
		if strings.Contains(body, "\n"+name+" "+value+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("no %s %s in /metrics", name, value)
			return
		}
	}
}

// TestIntegrationPlumbingRepair: what systemd-networkd does to foreign
// rules (`ip -6 rule flush protocol 154`) and an operator's route
// deletion are undone within 1 s by the running daemon, and counted.
func TestIntegrationPlumbingRepair(t *testing.T) {
	nstest.CheckNoLeaks(t)
	const name = "s6ops-repair"
	ns, h := nstest.NewNS(t, name)
	for _, l := range []string{"s6gwlan", "s6gwupa", "s6gwupb"} {
		nstest.AddVeth(t, h, l, l+"p")
	}
	d := startNSDaemon(t, ns, h, integrationConfig)
	waitPlumbing(t, d.ops, time.Second, "start")

	ipNS(t, name, "-6", "rule", "flush", "protocol", "154")
	took := waitPlumbing(t, d.ops, time.Second, "rule flush")
	t.Logf("rules restored %v after the flush", took)
	wantMetric(t, d.base, `shim6gw_plumbing_repairs_total{kind="rule"}`, "7")

	ipNS(t, name, "-6", "route", "del", "default", "via", "fe80::1", "dev", "s6gwupb", "table", "15003")
	took = waitPlumbing(t, d.ops, time.Second, "route del")
	t.Logf("route restored %v after the deletion", took)
	wantMetric(t, d.base, `shim6gw_plumbing_repairs_total{kind="route"}`, "1")
	wantMetric(t, d.base, "shim6gw_plumbing_intact", "1")
	d.stop(t)
}

// TestIntegrationLateUplink: the daemon starts while uplink b's interface
// does not exist; when it appears with carrier, an address and a default
// route, the uplink comes up and its table gets its route.
func TestIntegrationLateUplink(t *testing.T) {
	nstest.CheckNoLeaks(t)
	const name = "s6ops-late"
	ns, h := nstest.NewNS(t, name)
	for _, l := range []string{"s6gwlan", "s6gwupa"} {
		nstest.AddVeth(t, h, l, l+"p")
	}
	d := startNSDaemon(t, ns, h, integrationConfig)
	rules, routes := plumbtest.Installed(t, d.ops)
	if len(rules) != 7 || len(routes) != 6 {
		t.Fatalf("at start without s6gwupb: rules %v routes %v", rules, routes)
	}

	upb, _ := nstest.AddVeth(t, h, "s6gwupb", "s6gwupbp")
	if err := h.AddrAdd(upb, &netlink.Addr{IPNet: nstest.MustCIDR("2001:db8:b:ffff::2/64"), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	ipNS(t, name, "-6", "route", "add", "default", "via", "fe80::1", "dev", "s6gwupb")
	deadline := time.After(5 * time.Second)
	for up := false; !up; {
		select {
		case e := <-d.in.Uplinks:
			up = e.Uplink == "b" && e.Up
		case <-deadline:
			t.Fatal("uplink b not up within 5s of its interface appearing")
		}
	}
	waitPlumbing(t, d.ops, time.Second, "late uplink")
	if rs, err := d.ops.Routes(15003); err != nil || len(rs) != 2 || rs[0].String() != "default via fe80::1 dev s6gwupb table 15003 proto 154" {
		t.Errorf("table 15003 = %v %v", rs, err)
	}
	d.stop(t)
}

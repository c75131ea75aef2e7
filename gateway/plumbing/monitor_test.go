package plumbing

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/internal/nstest"
)

func TestUplinkTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	specs := []UplinkSpec{{Name: "a", Interface: "upA"}, {Name: "b", Interface: "upB", RequireDefaultRoute: true}}
	tr := newUplinkTracker(specs)
	gA := netip.MustParseAddr("2001:db8:a:ffff::2")
	type step struct {
		name string
		do   func()
		want []UplinkEvent
	}
	ev := func(u string, up bool, reason string) UplinkEvent {
		return UplinkEvent{Uplink: u, Up: up, Reason: reason, At: t0}
	}
	steps := []step{
		{"initial report", func() {}, []UplinkEvent{ev("a", false, ReasonMissing), ev("b", false, ReasonMissing)}},
		{"links appear without carrier: no news", func() {
			tr.setLink(2, linkFacts{name: "upA", adminUp: true}, true)
			tr.setLink(3, linkFacts{name: "upB", adminUp: true, carrier: true}, true)
		}, nil},
		{"a gets carrier and a link-local address only", func() {
			tr.setLink(2, linkFacts{name: "upA", adminUp: true, carrier: true}, true)
			tr.setAddr(2, netip.MustParseAddr("fe80::2"), true, true)
		}, nil},
		{"a tentative global address is not enough", func() { tr.setAddr(2, gA, false, true) }, nil},
		{"DAD done: a up", func() { tr.setAddr(2, gA, true, true) }, []UplinkEvent{ev("a", true, ReasonUp)}},
		{"b address but no default route", func() { tr.setAddr(3, netip.MustParseAddr("2001:db8:b:ffff::2"), true, true) }, nil},
		{"default route on a does not help b", func() {
			tr.setDefaultRoute(routeKey{table: 254, gw: netip.MustParseAddr("fe80::1"), index: 2}, true)
		}, nil},
		{"b default route: b up", func() {
			tr.setDefaultRoute(routeKey{table: 254, gw: netip.MustParseAddr("fe80::1"), index: 3}, true)
		}, []UplinkEvent{ev("b", true, ReasonUp)}},
		{"same facts again: no news", func() {
			tr.setDefaultRoute(routeKey{table: 254, gw: netip.MustParseAddr("fe80::1"), index: 3}, true)
			tr.setAddr(2, gA, true, true)
		}, nil},
		{"a loses carrier", func() { tr.setLink(2, linkFacts{name: "upA", adminUp: true}, true) },
			[]UplinkEvent{ev("a", false, ReasonNoCarrier)}},
		{"a admin down while down: no news", func() { tr.setLink(2, linkFacts{name: "upA"}, true) }, nil},
		{"a back", func() { tr.setLink(2, linkFacts{name: "upA", adminUp: true, carrier: true}, true) },
			[]UplinkEvent{ev("a", true, ReasonUp)}},
		{"b default route gone", func() {
			tr.setDefaultRoute(routeKey{table: 254, gw: netip.MustParseAddr("fe80::1"), index: 3}, false)
		}, []UplinkEvent{ev("b", false, ReasonNoDefaultRoute)}},
		{"a address removed", func() { tr.setAddr(2, gA, false, false) },
			[]UplinkEvent{ev("a", false, ReasonNoAddress)}},
		{"a interface deleted: still down, reason follows", func() { tr.setLink(2, linkFacts{}, false) }, nil},
	}
	for _, s := range steps {
		s.do()
		got := tr.changes(t0)
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", s.name, diff)
		}
	}
	if tr.last[0].Reason != ReasonMissing || tr.last[0].Up {
		t.Errorf("a = %+v, want down, missing", tr.last[0])
	}
}

func TestApplyRouteFilters(t *testing.T) {
	tr := newUplinkTracker([]UplinkSpec{{Name: "a", Interface: "upA", RequireDefaultRoute: true}})
	_, v4def, _ := net.ParseCIDR("0.0.0.0/0")
	_, specific, _ := net.ParseCIDR("2001:db8::/32")
	for _, r := range []netlink.Route{
		{Family: unix.AF_INET6, LinkIndex: 2, Dst: specific, Table: 254},                     // not default
		{Family: unix.AF_INET, LinkIndex: 2, Dst: v4def, Table: 254},                         // IPv4
		{Family: unix.AF_INET6, LinkIndex: 2, Table: 15001, Protocol: 154},                   // our own
		{Family: unix.AF_INET6, LinkIndex: 2, Table: 254, Protocol: unix.RTPROT_RA, Gw: nil}, // counts
	} {
		applyRoute(tr, true, r, 154)
	}
	want := map[routeKey]bool{{table: 254, index: 2}: true}
	if diff := cmp.Diff(want, tr.defaults, cmp.AllowUnexported(routeKey{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	// Multipath default route: one key per hop.
	tr.reset()
	applyRoute(tr, true, netlink.Route{Family: unix.AF_INET6, Table: 254,
		MultiPath: []*netlink.NexthopInfo{{LinkIndex: 2, Gw: net.ParseIP("fe80::1")}, {LinkIndex: 3, Gw: net.ParseIP("fe80::2")}}}, 154)
	if len(tr.defaults) != 2 {
		t.Errorf("multipath keys = %v", tr.defaults)
	}
}

// TestIntegrationMonitor drives real netlink events in a namespace:
// carrier loss (veth peer down), address removal and default-route
// removal must each bring the uplink down, and their reversal up.
func TestIntegrationMonitor(t *testing.T) {
	nstest.CheckNoLeaks(t)
	ns, h := nstest.NewNS(t, "s6gw-mon")
	upa, peer := nstest.AddVeth(t, h, "s6gwupa", "s6gwupap")
	// Disable DAD so addresses are usable at once.
	ops, err := NewNetlinkOps(&ns)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	addr := &netlink.Addr{IPNet: nstest.MustCIDR("2001:db8:a:ffff::2/64"), Flags: unix.IFA_F_NODAD}
	if err := h.AddrAdd(upa, addr); err != nil {
		t.Fatal(err)
	}
	gw := &netlink.Route{LinkIndex: upa.Attrs().Index, Dst: nstest.MustCIDR("::/0"), Gw: net.ParseIP("2001:db8:a:ffff::1")}
	if err := h.RouteAdd(gw); err != nil {
		t.Fatal(err)
	}
	// Our own route on the other table must not count.
	own := &netlink.Route{LinkIndex: upa.Attrs().Index, Dst: nstest.MustCIDR("::/0"), Gw: net.ParseIP("2001:db8:a:ffff::1"), Table: 15001, Protocol: 154}
	if err := h.RouteAdd(own); err != nil {
		t.Fatal(err)
	}

	m := NewMonitor([]UplinkSpec{{Name: "a", Interface: "s6gwupa", RequireDefaultRoute: true},
		{Name: "gone", Interface: "s6gwnone"}}, MonitorOptions{Namespace: &ns})
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("monitor did not stop")
		}
	})

	// next waits (bounded) for the next event of uplink a.
	next := func(step string) UplinkEvent {
		t.Helper()
		timeout := time.After(2 * time.Second)
		for {
			select {
			case e := <-m.Events():
				if e.Uplink == "a" {
					return e
				}
			case <-timeout:
				t.Fatalf("%s: no event within 2s; states %+v", step, m.UplinkStates())
			}
		}
	}
	expect := func(step string, up bool, reason string) {
		t.Helper()
		e := next(step)
		if e.Up != up || e.Reason != reason {
			t.Fatalf("%s: event %+v, want up=%v reason %q", step, e, up, reason)
		}
	}
	// The veth carrier can come up just after the first snapshot (the
	// kernel's linkwatch defers it), so the first report may be "no carrier".
	if e := next("initial"); !e.Up {
		if e.Reason != ReasonNoCarrier {
			t.Fatalf("initial: %+v", e)
		}
		expect("initial carrier", true, ReasonUp)
	}
	if st := m.UplinkStates(); len(st) != 2 || !st[0].Up || st[1].Up || st[1].Reason != ReasonMissing {
		t.Errorf("states = %+v", st)
	}

	// Carrier loss: the peer end goes down.
	if err := h.LinkSetDown(peer); err != nil {
		t.Fatal(err)
	}
	expect("carrier loss", false, ReasonNoCarrier)
	if err := h.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	expect("carrier back", true, ReasonUp)

	// Address removed.
	if err := h.AddrDel(upa, addr); err != nil {
		t.Fatal(err)
	}
	expect("address removed", false, ReasonNoAddress)
	if err := h.AddrAdd(upa, addr); err != nil {
		t.Fatal(err)
	}
	expect("address back", true, ReasonUp)

	// Default route removed (ours in table 15001 stays and must not count).
	if err := h.RouteDel(gw); err != nil {
		t.Fatal(err)
	}
	expect("default route removed", false, ReasonNoDefaultRoute)
	if err := h.RouteAdd(gw); err != nil {
		t.Fatal(err)
	}
	expect("default route back", true, ReasonUp)
}

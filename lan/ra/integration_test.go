package ra_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/shim6gw/shim6gw/lan/internal/nstest"
	"github.com/shim6gw/shim6gw/lan/ra"
)

// TestIntegrationHostLearnsRouterAndSLAACAddress runs the advertiser in a
// gateway namespace and lets a host namespace's kernel configure itself:
// it gets the default route and a SLAAC address in the translation
// prefix, none in the ULID prefix; malformed RSs sent over the link are
// counted; on stop the final RA removes the default route.
func TestIntegrationHostLearnsRouterAndSLAACAddress(t *testing.T) {
	gw := nstest.New(t, "ra-gw")
	host := nstest.New(t, "ra-host")
	_, eth := nstest.Veth(t, gw, "lan0", host, "eth0")
	a := newAdvertiser(t, true, nil)
	var conn *ndp.Conn
	if err := gw.Do(func() (err error) { conn, err = ra.Listen("lan0", 5*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, conn) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)

	defaultRoute := func() bool {
		rs, err := host.Link.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: eth.Attrs().Index}, netlink.RT_FILTER_OIF)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil && r.Gw.IsLinkLocalUnicast() {
				return true
			}
		}
		return false
	}
	slaacAddr := func() (in, ulid bool) {
		as, err := host.Link.AddrList(eth, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range as {
			ip, _ := netip.AddrFromSlice(x.IP)
			in = in || slaacPrefix.Contains(ip)
			ulid = ulid || ulidPrefix.Contains(ip)
		}
		return
	}
	if !nstest.Eventually(15*time.Second, defaultRoute) {
		t.Fatal("host has no default route via the gateway")
	}
	if !nstest.Eventually(5*time.Second, func() bool { in, _ := slaacAddr(); return in }) {
		t.Error("host built no address in the SLAAC prefix")
	}
	if _, ulid := slaacAddr(); ulid {
		t.Error("host built a SLAAC address in the ULID prefix (A must be 0)")
	}

	// Malformed solicitations from the host's kernel stack are counted.
	err := host.Do(func() error {
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		defer c.Close()
		p := c.IPv6PacketConn()
		if err := p.SetMulticastHopLimit(255); err != nil {
			return err
		}
		ifi, _ := net.InterfaceByName("eth0")
		if err := p.SetMulticastInterface(ifi); err != nil {
			return err
		}
		dst := &net.IPAddr{IP: net.ParseIP("ff02::2")}
		for _, b := range [][]byte{{133, 1, 0, 0, 0, 0, 0, 0}, {133, 0, 0, 0, 0, 0}} {
			if _, err := p.WriteTo(b, &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: 255}, dst); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !nstest.Eventually(5*time.Second, func() bool {
		st := a.Stats()
		return st.Dropped[ra.DropMalformed].Load() >= 1 && st.Dropped[ra.DropCode].Load() >= 1
	}) {
		t.Errorf("malformed RSs not counted: malformed %d, code %d", a.Stats().Dropped[ra.DropMalformed].Load(), a.Stats().Dropped[ra.DropCode].Load())
	}

	stop()
	if !nstest.Eventually(5*time.Second, func() bool { return !defaultRoute() }) {
		t.Error("host kept the default route after the final RA")
	}
}

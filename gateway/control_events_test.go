package gateway

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shim6gw/shim6gw/internal/ip6"

	"github.com/shim6gw/shim6gw/internal/checksum"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/shim6"
	"github.com/shim6gw/shim6gw/tunnel"
	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

// establish sends one packet from gw1's host 0 to gw2's host 1 and waits
// until both gateways have the context ESTABLISHED.
func establish(t *testing.T, n *fakeNet) (h1, h2 hba.Entry) {
	t.Helper()
	gw1, gw2 := n.gws[0], n.gws[1]
	h1, h2 = gw1.book.Entry(0), gw2.book.Entry(1)
	gw1.dev.Inbound <- udpPacket(h1.ULID(), h2.ULID(), "start")
	waitFor(t, 5*time.Second, "context established on both sides", func() bool {
		c1, ok1 := contextOf(gw1, h1.ULID(), h2.ULID())
		c2, ok2 := contextOf(gw2, h2.ULID(), h1.ULID())
		return ok1 && ok2 && c1.State == "established" && c2.State == "established"
	})
	return h1, h2
}

// TestControllerUplinkDown: the monitor's "uplink down" moves contexts at
// once (no Send Timeout wait) and /readyz follows the usable uplinks.
func TestControllerUplinkDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, stop := startNet(t, nil)
		defer stop()
		gw1 := n.gws[0]
		h1, h2 := establish(t, n)
		if err := gw1.ctrl.locatorsReady(); err != nil {
			t.Fatalf("ready: %v", err)
		}
		n.setBroken(gw1.cfg.Uplinks[0].Prefix)
		start := time.Now()
		gw1.uplinks <- plumbing.UplinkEvent{Uplink: "a", Up: false, Reason: "no carrier", At: start}
		waitFor(t, 5*time.Second, "failover after uplink down", func() bool {
			c, _ := contextOf(gw1, h1.ULID(), h2.ULID())
			return c.LocalLocator == h1.Addresses[1]
		})
		// Far below the 3 s Send Timeout: the event, not REAP's timer,
		// started the exploration.
		if d := time.Since(start); d >= time.Second {
			t.Errorf("failover took %v", d)
		}
		if err := gw1.ctrl.locatorsReady(); err != nil {
			t.Errorf("one uplink left, ready: %v", err)
		}
		gw1.uplinks <- plumbing.UplinkEvent{Uplink: "b", Up: false, Reason: "no carrier"}
		waitFor(t, time.Second, "not ready without uplinks", func() bool {
			return errors.Is(gw1.ctrl.locatorsReady(), ErrNoLocators)
		})
	})
}

// TestControllerPathError: an ICMPv6 Destination Unreachable about a
// shimmed packet (RFC 5533 §8) reaches the host with the ULIDs restored
// and makes the engine explore at once.
func TestControllerPathError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, stop := startNet(t, nil)
		defer stop()
		gw1 := n.gws[0]
		h1, h2 := establish(t, n)
		// Move the context onto a shimmed pair first.
		gw1.uplinks <- plumbing.UplinkEvent{Uplink: "a", Up: false, Reason: "test"}
		n.setBroken(gw1.cfg.Uplinks[0].Prefix)
		var c metrics.ContextInfo
		waitFor(t, 5*time.Second, "shimmed pair", func() bool {
			c, _ = contextOf(gw1, h1.ULID(), h2.ULID())
			return c.LocalLocator == h1.Addresses[1]
		})
		before := gw1.ctrl.ControlStats().Explorations
		// A router on the way reports the shimmed packet undeliverable.
		inner := udpPacket(c.LocalLocator, c.PeerLocator, "lost")
		inner = append(inner[:40], append(make([]byte, 8), inner[40:]...)...)
		inner[6], inner[5] = shim6.ProtocolNumber, inner[5]+8
		shim6.PutPayloadHeader(inner[40:48], 17, shim6.ContextTag(c.PeerTag))
		router := netip.MustParseAddr("2001:db8:ff::1")
		icmp := append([]byte{1, 3, 0, 0, 0, 0, 0, 0}, inner...)
		pkt := make([]byte, 40, 40+len(icmp))
		shim6.PutIPv6Header(pkt, router, c.LocalLocator, ip6.ProtoICMPv6, len(icmp))
		pkt = append(pkt, icmp...)
		ck := checksum.Checksum(pkt[40:], checksum.PseudoHeader(router, c.LocalLocator, uint32(len(icmp)), ip6.ProtoICMPv6))
		pkt[42], pkt[43] = byte(ck>>8), byte(ck)
		gw1.dev.Inbound <- pkt
		timeout := time.After(5 * time.Second)
		for delivered := false; !delivered; {
			select {
			case got := <-gw1.lan:
				if got[6] == ip6.ProtoICMPv6 && netip.AddrFrom16([16]byte(got[24:40])) == h1.ULID() {
					if q := got[48:]; netip.AddrFrom16([16]byte(q[8:24])) != h1.ULID() || netip.AddrFrom16([16]byte(q[24:40])) != h2.ULID() {
						t.Errorf("quoted header not translated: %x", q[:40])
					}
					delivered = true
				}
			case <-timeout:
				t.Fatal("icmp error not delivered to the host")
			}
		}
		waitFor(t, time.Second, "exploration after the icmp error", func() bool {
			return gw1.ctrl.ControlStats().Explorations > before
		})
	})
}

// TestControllerNoSupport: a peer without Shim6 answers the I1 with an
// ICMPv6 Parameter Problem; the context goes NO-SUPPORT (RFC 5533 §7.8)
// and the peer joins the fast table's no-Shim6 set, so further traffic
// to it makes no notices.
func TestControllerNoSupport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := siteConfig(t, 1)
		book, err := hba.NewBook(cfg.HBA.Secret, cfg.LANPrefixes(), cfg.HBA.Hosts)
		if err != nil {
			t.Fatal(err)
		}
		dev := tuntest.New(tuntest.Config{Buffer: 64})
		ctrl := NewController(ControllerOptions{Seed: [32]byte{9}})
		ctrl.Attach(dev)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- ctrl.Run(ctx, ControlInputs{Config: cfg, Uplinks: make(chan plumbing.UplinkEvent), Reloads: make(chan Reload)})
		}()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		host, legacy := book.Entry(2).ULID(), netip.MustParseAddr("2001:db8:e::1")
		dev.Inbound <- udpPacket(host, legacy, "hello")
		var i1 []byte
		for i1 == nil {
			select {
			case p := <-dev.Outbound:
				if p[6] == shim6.ProtocolNumber {
					i1 = p
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no I1")
			}
		}
		if _, _, m, err := shim6.ParseIPv6Control(i1); err != nil || m.Type() != shim6.TypeI1 {
			t.Fatalf("sent %x (%v)", i1, err)
		}
		icmp := append([]byte{icmpParamProblem, icmpUnrecognizedNext, 0, 0, 0, 0, 0, 6}, i1...)
		src, dst := netip.AddrFrom16([16]byte(i1[24:40])), netip.AddrFrom16([16]byte(i1[8:24]))
		pp := make([]byte, 40, 40+len(icmp))
		shim6.PutIPv6Header(pp, src, dst, ip6.ProtoICMPv6, len(icmp))
		dev.Inbound <- append(pp, icmp...)
		waitFor(t, 2*time.Second, "no_support", func() bool {
			c, ok := contextOf(&testGW{ctrl: ctrl}, host, legacy)
			return ok && c.State == "no_support"
		})
		if got := ctrl.ControlStats().Establishments["no_support"]; got != 1 {
			t.Errorf("no_support establishments %d", got)
		}
		waitFor(t, time.Second, "table rebuilt", func() bool {
			notices := ctrl.rw.Stats().Notices.Load()
			dev.Inbound <- udpPacket(host, legacy, "again")
			time.Sleep(2 * time.Second) // past the notice rate limit
			return ctrl.rw.Stats().Notices.Load() == notices
		})
	})
}

// TestControllerReloadKeepsContexts: a SIGHUP reload with a shorter Send
// Timeout, a new policy and a narrower provider prefix keeps the open
// context (same tags), and a path break afterwards is detected after the
// new Send Timeout (1 s), not the old one (3 s), on synctest's clock.
func TestControllerReloadKeepsContexts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, stop := startNet(t, nil)
		defer stop()
		gw1 := n.gws[0]
		h1, h2 := establish(t, n)
		before, _ := contextOf(gw1, h1.ULID(), h2.ULID())
		next := *gw1.cfg
		next.Uplinks = append([]config.UplinkConfig(nil), gw1.cfg.Uplinks...)
		next.Uplinks[1].Prefix = netip.PrefixFrom(next.Uplinks[1].Prefix.Addr(), 56)
		next.Timers.SendTimeout = time.Second
		next.Policy.InitiateAfterNotices = 4
		plan, err := gw1.cfg.PlanReload(&next)
		if want := (config.ReloadPlan{PrefixesChanged: true, TimersChanged: true, PolicyChanged: true}); err != nil || plan != want {
			t.Fatalf("plan %+v, %v; want %+v", plan, err, want)
		}
		gw1reload(t, n, Reload{Config: &next, Plan: plan})
		synctest.Wait()
		after, ok := contextOf(gw1, h1.ULID(), h2.ULID())
		if !ok || after.State != "established" || after.LocalTag != before.LocalTag || after.PeerTag != before.PeerTag {
			t.Fatalf("context after reload %+v, before %+v", after, before)
		}
		if tbl := gw1.ctrl.rw.Table(); tbl.LookupPair(h1.ULID(), h2.ULID()) == nil {
			t.Error("context left the fast table")
		}
		// One-way traffic into a broken path: only the Send timer (RFC
		// 5534 §6.4) can notice it.
		n.setBroken(gw1.cfg.Uplinks[0].Prefix)
		start := time.Now()
		polls := 0
		waitFor(t, 10*time.Second, "failover after the send timeout", func() bool {
			if polls++; polls%5 == 0 {
				gw1.dev.Inbound <- udpPacket(h1.ULID(), h2.ULID(), "one way")
			}
			c, _ := contextOf(gw1, h1.ULID(), h2.ULID())
			return c.LocalLocator == h1.Addresses[1]
		})
		if d := time.Since(start); d < 900*time.Millisecond || d >= 3*time.Second {
			t.Errorf("failover %v after the break; want the new 1 s Send Timeout plus probes, below the old 3 s", d)
		}
		c, _ := contextOf(gw1, h1.ULID(), h2.ULID())
		if c.LocalTag != before.LocalTag {
			t.Errorf("tag changed: %#x, was %#x", c.LocalTag, before.LocalTag)
		}
	})
}

// gw1reload delivers a reload to gw1's control loop.
func gw1reload(t *testing.T, n *fakeNet, r Reload) {
	t.Helper()
	select {
	case n.gws[0].reloads <- r:
	case <-time.After(time.Second):
		t.Fatal("reload not taken")
	}
}

func TestControllerRunErrors(t *testing.T) {
	cfg := siteConfig(t, 1)
	c := NewController(ControllerOptions{})
	if err := c.Run(context.Background(), ControlInputs{Config: cfg}); err == nil {
		t.Error("Run without a device succeeded")
	}
	if err := c.Run(context.Background(), ControlInputs{Config: cfg}); err == nil {
		t.Error("second Run succeeded")
	}
	// OpenTUN attaches what it opens and closes all of it.
	c2 := NewController(ControllerOptions{})
	devs := []*tuntest.Device{tuntest.New(tuntest.Config{}), tuntest.New(tuntest.Config{})}
	closer, err := c2.OpenTUN(func(config.TUNConfig) ([]tunnel.Device, error) {
		return []tunnel.Device{devs[0], devs[1]}, nil
	})(cfg.TUN)
	if err != nil {
		t.Fatal(err)
	}
	if len(c2.devs) != 2 {
		t.Errorf("%d devices attached", len(c2.devs))
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	for i, d := range devs {
		select {
		case <-d.Closed():
		default:
			t.Errorf("device %d not closed", i)
		}
	}
	if _, err := c2.OpenTUN(func(config.TUNConfig) ([]tunnel.Device, error) { return nil, errors.New("boom") })(cfg.TUN); err == nil {
		t.Error("open error lost")
	}
	if err := NewController(ControllerOptions{}).locatorsReady(); err == nil {
		t.Error("ready before Run")
	}
	h := c2.Hooks(nil)
	if h.Control == nil || h.ControlStats == nil || h.DataplaneStats == nil || h.Contexts == nil || len(h.Ready) != 1 {
		t.Errorf("hooks %+v", h)
	}
}

// TestControllerRestartRecovery: a gateway that restarts (or the other
// half of an HA pair taking over) has lost its contexts; payload for one
// of them is answered with R1bis, and the peer re-creates the context
// with I2bis (RFC 5533 §7.17-7.20, docs/architecture.md §11). The validator secret
// comes from the site secret, so the new process accepts it.
func TestControllerRestartRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, stop := startNet(t, nil)
		defer func() { stop() }()
		gw1 := n.gws[0]
		h1, h2 := establish(t, n)
		// Put the context on a shimmed pair, so payload carries tags.
		n.setBroken(gw1.cfg.Uplinks[0].Prefix)
		gw1.uplinks <- plumbing.UplinkEvent{Uplink: "a", Up: false, Reason: "test"}
		waitFor(t, 5*time.Second, "shimmed pair", func() bool {
			c, _ := contextOf(gw1, h1.ULID(), h2.ULID())
			return c.LocalLocator == h1.Addresses[1]
		})
		old := n.gws[1]
		stopGW(t, old)
		gw2 := n.startGW(t, 1, old.cfg, 3, nil)
		mark := len(n.wireCopy())
		waitFor(t, 10*time.Second, "context recovered at the restarted gateway", func() bool {
			gw1.dev.Inbound <- udpPacket(h1.ULID(), h2.ULID(), "after restart")
			time.Sleep(100 * time.Millisecond)
			c, ok := contextOf(gw2, h2.ULID(), h1.ULID())
			return ok && c.State == "established"
		})
		seen := map[shim6.Type]bool{}
		for _, p := range n.wireCopy()[mark:] {
			if _, _, m, err := shim6.ParseIPv6Control(p); err == nil {
				seen[m.Type()] = true
			}
		}
		if !seen[shim6.TypeR1bis] || !seen[shim6.TypeI2bis] {
			t.Errorf("recovery messages %v, want R1bis and I2bis", seen)
		}
		after := udpPacket(h1.ULID(), h2.ULID(), "recovered")
		gw1.dev.Inbound <- after
		expectDelivered(t, gw2, after)
	})
}

// TestControllerMultiQueue: with several TUN queues (water multi-queue)
// every queue runs the data plane, and control packets leave by queue 0.
func TestControllerMultiQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := siteConfig(t, 1)
		book, err := hba.NewBook(cfg.HBA.Secret, cfg.LANPrefixes(), cfg.HBA.Hosts)
		if err != nil {
			t.Fatal(err)
		}
		q0, q1 := tuntest.New(tuntest.Config{Buffer: 64}), tuntest.New(tuntest.Config{Buffer: 64})
		ctrl := NewController(ControllerOptions{Seed: [32]byte{5}})
		ctrl.Attach(q0, q1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		m := metrics.NewMetrics(metrics.MetricsOptions{})
		go func() { done <- ctrl.Run(ctx, ControlInputs{Config: cfg, Metrics: m}) }()
		host, peer := book.Entry(1).ULID(), netip.MustParseAddr("2001:db8:c:1::9")
		pkt := udpPacket(host, peer, "queue 1")
		q1.Inbound <- pkt
		select {
		case got := <-q1.Outbound:
			if string(got) != string(pkt) {
				t.Errorf("queue 1 wrote %x", got)
			}
		case <-time.After(time.Second):
			t.Fatal("queue 1 did not forward")
		}
		select {
		case got := <-q0.Outbound:
			if _, _, m, err := shim6.ParseIPv6Control(got); err != nil || m.Type() != shim6.TypeI1 {
				t.Errorf("queue 0 wrote %x (%v)", got, err)
			}
		case <-time.After(time.Second):
			t.Fatal("no I1 on queue 0")
		}
		if n := histogramCount(t, m.BatchSize); n != 1 {
			t.Errorf("%d TUN reads observed over both queues, want 1", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for i, q := range []*tuntest.Device{q0, q1} {
			select {
			case <-q.Closed():
			default:
				t.Errorf("queue %d left open", i)
			}
		}
	})
}

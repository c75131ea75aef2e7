package gateway

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/shim6"
)

// Withdrawing an uplink's prefix from the locator set on SIGHUP
// (uplinks[i].withdrawn): config, reload plan, and the Update Requests
// the peers get (RFC 5533 §10.1).

func TestUplinkWithdrawnDecode(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // replacement in goodConfig
		also     bool   // also withdraw uplink b
		want     []bool // Withdrawn per uplink
		err      string
	}{
		{"default", "", "", false, []bool{false, false}, ""},
		{"b withdrawn", "    mtu: 1492\n", "    mtu: 1492\n    withdrawn: true\n", false, []bool{false, true}, ""},
		{"a withdrawn", "    gateway: fe80::1\n", "    gateway: fe80::1\n    withdrawn: yes\n", false, []bool{true, false}, ""},
		{"explicit false", "    mtu: 1492\n", "    mtu: 1492\n    withdrawn: false\n", false, []bool{false, false}, ""},
		{"bad boolean", "    mtu: 1492\n", "    mtu: 1492\n    withdrawn: maybe\n", false, nil,
			`config: line 15: uplinks[1].withdrawn: bad boolean "maybe"`},
		{"not a scalar", "    mtu: 1492\n", "    mtu: 1492\n    withdrawn: [true]\n", false, nil,
			`config: line 15: uplinks[1].withdrawn: expected a single value`},
		{"duplicate", "    mtu: 1492\n", "    mtu: 1492\n    withdrawn: true\n    withdrawn: false\n", false, nil,
			`config: line 16: duplicate key "uplinks[1].withdrawn"`},
		// The error points at the last uplink's key.
		{"all withdrawn", "    gateway: fe80::1\n", "    gateway: fe80::1\n    withdrawn: true\n", true, nil,
			`config: line 16: uplinks[1].withdrawn: every uplink is withdrawn, at least one must stay`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(goodConfig, tt.old, tt.new, 1)
			if tt.also {
				text = strings.Replace(text, "    mtu: 1492\n", "    mtu: 1492\n    withdrawn: on\n", 1)
			}
			c, err := config.Load(writeConfig(t, text))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !errors.Is(err, config.ErrInvalid) {
					t.Fatalf("err = %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []bool
			for _, u := range c.Uplinks {
				got = append(got, u.Withdrawn)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("withdrawn = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanReloadWithdrawn(t *testing.T) {
	load := func(text string) *config.Config {
		t.Helper()
		c, err := config.Load(writeConfig(t, text))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	withdrawB := func(s string) string {
		return strings.Replace(s, "    mtu: 1492\n", "    mtu: 1492\n    withdrawn: true\n", 1)
	}
	plain, withdrawn := load(goodConfig), load(withdrawB(goodConfig))
	tests := []struct {
		name     string
		cur, nxt *config.Config
		want     config.ReloadPlan
		err      string
	}{
		{"withdraw", plain, withdrawn, config.ReloadPlan{WithdrawnChanged: true}, ""},
		{"restore", withdrawn, plain, config.ReloadPlan{WithdrawnChanged: true}, ""},
		{"unchanged", withdrawn, load(withdrawB(goodConfig)), config.ReloadPlan{}, ""},
		{"with prefix and timers", plain,
			load(strings.NewReplacer("i1_timeout: 1s", "i1_timeout: 2s", "2001:db8:b::/48", "2001:db8:b::/56").Replace(withdrawB(goodConfig))),
			config.ReloadPlan{PrefixesChanged: true, WithdrawnChanged: true, TimersChanged: true}, ""},
		{"with a restart key", plain,
			load(strings.Replace(withdrawB(goodConfig), "mtu: 1492", "mtu: 1400", 1)),
			config.ReloadPlan{}, "config: line 9: uplinks[1]: changed, needs a restart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cur.PlanReload(tt.nxt)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !errors.Is(err, config.ErrNeedsRestart) {
					t.Fatalf("err = %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("plan = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// withUplinks returns a copy of cfg whose uplinks have the given
// withdrawn flags.
func withUplinks(cfg *config.Config, withdrawn ...bool) *config.Config {
	next := *cfg
	next.Uplinks = slices.Clone(cfg.Uplinks)
	for i, w := range withdrawn {
		next.Uplinks[i].Withdrawn = w
	}
	return &next
}

// TestWithdrawnAtStartIsDown: a configuration that starts with an uplink
// withdrawn gives the fast table that uplink down (the fallback of
// docs/architecture.md §7 and path choice avoid it) and counts it as not usable; a
// reload restoring it brings it back unless the monitor says it is down.
func TestWithdrawnAtStartIsDown(t *testing.T) {
	cfg := withUplinks(siteConfig(t, 1), true, false)
	c := NewController(ControllerOptions{Seed: [32]byte{3}})
	l, err := newControlLoop(c, cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	downs := func() []bool {
		var out []bool
		for _, u := range l.tableConfig().Uplinks {
			out = append(out, u.Down)
		}
		return out
	}
	if got := downs(); !slices.Equal(got, []bool{true, false}) || c.uplinkUp.Load() != 1 {
		t.Fatalf("at start: down %v, %d up; want [true false], 1", got, c.uplinkUp.Load())
	}
	now := time.Now()
	l.uplink(now, plumbing.UplinkEvent{Uplink: "a", Up: false, Reason: "no carrier"})
	restored := withUplinks(cfg, false, false)
	plan, err := cfg.PlanReload(restored)
	if err != nil || !plan.WithdrawnChanged {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	l.reload(now, Reload{Config: restored, Plan: plan})
	if got := downs(); !slices.Equal(got, []bool{true, false}) {
		t.Errorf("restored but carrier lost: down %v, want [true false]", got)
	}
	l.uplink(now, plumbing.UplinkEvent{Uplink: "a", Up: true})
	if got := downs(); !slices.Equal(got, []bool{false, false}) || c.uplinkUp.Load() != 2 {
		t.Errorf("restored and up: down %v, %d up; want [false false], 2", got, c.uplinkUp.Load())
	}
	// Withdrawn again while the carrier is up: down for the table.
	again := withUplinks(cfg, false, true)
	plan, _ = restored.PlanReload(again)
	l.reload(now, Reload{Config: again, Plan: plan})
	if got := downs(); !slices.Equal(got, []bool{false, true}) || c.uplinkUp.Load() != 1 {
		t.Errorf("b withdrawn: down %v, %d up; want [false true], 1", got, c.uplinkUp.Load())
	}
}

// sentUpdate is one Update Request gw1 put on the wire.
type sentUpdate struct {
	src, dst netip.Addr
	locs     []netip.Addr
	gen      uint32
	broken   []netip.Addr // locators flagged BROKEN in the preferences
}

// updatesFrom parses the Update Requests among pkts sent from site cfg.
func updatesFrom(t *testing.T, cfg *config.Config, pkts [][]byte) []sentUpdate {
	t.Helper()
	var out []sentUpdate
	for _, p := range pkts {
		src, dst, m, err := shim6.ParseIPv6Control(p)
		if err != nil || !inSite(cfg, src) || m.Type() != shim6.TypeUpdateRequest {
			continue
		}
		o, _, ok := m.Option(shim6.OptLocatorList)
		if !ok {
			t.Fatalf("update request without a locator list: %x", p)
		}
		ll, ok := o.LocatorList()
		if !ok {
			t.Fatalf("bad locator list: %x", p)
		}
		u := sentUpdate{src: src, dst: dst, gen: ll.Generation()}
		for i := range ll.Count() {
			u.locs = append(u.locs, ll.Locator(i))
		}
		if po, _, ok := m.Option(shim6.OptLocatorPreferences); ok {
			lp, ok := po.LocatorPreferences()
			if !ok || lp.Count() != len(u.locs) || lp.Generation() != u.gen {
				t.Fatalf("bad locator preferences: %x", p)
			}
			for i := range lp.Count() {
				if lp.Element(i).Flags&shim6.FlagBroken != 0 {
					u.broken = append(u.broken, u.locs[i])
				}
			}
		}
		out = append(out, u)
	}
	return out
}

// TestControllerReloadWithdrawsUplink: with a context established on the
// ULID pair (gw1's ULID is on uplink a), a reload withdrawing uplink a
// sends the peer an Update Request whose last version flags the ULID
// BROKEN (it cannot leave the list, RFC 5533 §2), and the context moves
// to uplink b with its tags; restoring a and withdrawing b sends a list
// without b's locator and the context moves back; restoring b lists it
// again. A new context started while a is withdrawn leaves through b.
func TestControllerReloadWithdrawsUplink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, stop := startNet(t, nil)
		defer stop()
		gw1, gw2 := n.gws[0], n.gws[1]
		h1, h2 := establish(t, n)
		before, _ := contextOf(gw1, h1.ULID(), h2.ULID())
		locA, locB := h1.Addresses[0], h1.Addresses[1]
		if before.LocalLocator != locA {
			t.Fatalf("context starts on %v, want the ULID %v", before.LocalLocator, locA)
		}
		cur := gw1.cfg
		reload := func(withdrawn ...bool) []sentUpdate {
			t.Helper()
			next := withUplinks(cur, withdrawn...)
			plan, err := cur.PlanReload(next)
			if err != nil || !plan.WithdrawnChanged {
				t.Fatalf("plan %+v, %v", plan, err)
			}
			mark := len(n.wireCopy())
			gw1reload(t, n, Reload{Config: next, Plan: plan})
			cur = next
			var ups []sentUpdate
			waitFor(t, 5*time.Second, "update request", func() bool {
				ups = updatesFrom(t, gw1.cfg, n.wireCopy()[mark:])
				return len(ups) > 0
			})
			synctest.Wait()
			return updatesFrom(t, gw1.cfg, n.wireCopy()[mark:])
		}
		sameTags := func(what string) metrics.ContextInfo {
			t.Helper()
			c, ok := contextOf(gw1, h1.ULID(), h2.ULID())
			if !ok || c.State != "established" || c.LocalTag != before.LocalTag || c.PeerTag != before.PeerTag {
				t.Fatalf("%s: context %+v, before %+v", what, c, before)
			}
			return c
		}

		// 1. Withdraw a.
		ups := reload(true, false)
		last := ups[len(ups)-1]
		if !slices.Equal(last.locs, []netip.Addr{locA, locB}) || !slices.Equal(last.broken, []netip.Addr{locA}) {
			t.Errorf("withdraw a: last update lists %v, broken %v; want [%v %v], broken [%v]",
				last.locs, last.broken, locA, locB, locA)
		}
		if last.dst != before.PeerLocator {
			t.Errorf("update sent to %v, want the peer locator %v", last.dst, before.PeerLocator)
		}
		waitFor(t, 5*time.Second, "context off uplink a", func() bool {
			c, _ := contextOf(gw1, h1.ULID(), h2.ULID())
			return c.LocalLocator == locB
		})
		sameTags("after withdrawing a")
		if up := gw1.ctrl.uplinkUp.Load(); up != 1 {
			t.Errorf("%d uplinks usable, want 1", up)
		}
		// The peer no longer sends to the BROKEN ULID either.
		waitFor(t, 5*time.Second, "peer off gw1's ulid", func() bool {
			c, _ := contextOf(gw2, h2.ULID(), h1.ULID())
			return c.PeerLocator == locB
		})
		// A new context while a is withdrawn starts from b (RFC 5533
		// §5.4: the I1 leaves from a live locator with the ULID pair).
		h1n, h2n := gw1.book.Entry(2), gw2.book.Entry(2)
		mark := len(n.wireCopy())
		gw1.dev.Inbound <- udpPacket(h1n.ULID(), h2n.ULID(), "new flow")
		var i1src netip.Addr
		waitFor(t, 5*time.Second, "i1 of the new context", func() bool {
			for _, p := range n.wireCopy()[mark:] {
				if src, _, m, err := shim6.ParseIPv6Control(p); err == nil && m.Type() == shim6.TypeI1 {
					i1src = src
					return true
				}
			}
			return false
		})
		if i1src != h1n.Addresses[1] {
			t.Errorf("i1 sent from %v, want %v (uplink b)", i1src, h1n.Addresses[1])
		}

		// 2. Restore a and withdraw b.
		ups = reload(false, true)
		for _, u := range ups {
			if !slices.Equal(u.locs, []netip.Addr{locA}) || len(u.broken) != 0 {
				t.Errorf("withdraw b: update lists %v, broken %v; want [%v], none broken", u.locs, u.broken, locA)
			}
			// Sent from a locator that stays, so the ack reaches gw1.
			if u.src != locA {
				t.Errorf("withdraw b: update sent from %v, want %v", u.src, locA)
			}
		}
		waitFor(t, 5*time.Second, "context off uplink b", func() bool {
			c, _ := contextOf(gw1, h1.ULID(), h2.ULID())
			return c.LocalLocator == locA
		})
		sameTags("after withdrawing b")

		// 3. Restore b: it is listed again and accepted by the peer.
		ups = reload(false, false)
		for _, u := range ups {
			if !slices.Equal(u.locs, []netip.Addr{locA, locB}) || len(u.broken) != 0 {
				t.Errorf("restore b: update lists %v, broken %v; want [%v %v], none broken", u.locs, u.broken, locA, locB)
			}
		}
		sameTags("after restoring b")
		if up := gw1.ctrl.uplinkUp.Load(); up != 2 {
			t.Errorf("%d uplinks usable, want 2", up)
		}
		// The peer took the new list: a break of a now moves it to b.
		n.setBroken(gw1.cfg.Uplinks[0].Prefix)
		gw1.uplinks <- plumbing.UplinkEvent{Uplink: "a", Up: false, Reason: "no carrier"}
		waitFor(t, 5*time.Second, "failover to the restored b", func() bool {
			c, _ := contextOf(gw1, h1.ULID(), h2.ULID())
			return c.LocalLocator == locB
		})
		sameTags("after failover to b")
	})
}

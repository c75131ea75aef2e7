package shim6

import (
	"net/netip"
	"testing"
	"time"
)

func TestReapBlackholeFailover(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 21, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establishWithFlow(t, net, a, b, sa, sb, 0, 100*time.Millisecond, simEpoch.Add(2*time.Minute))
	net.runFor(10 * time.Second)
	if ci, _ := a.e.Context(ua, ub); ci.ReapState != StaOperational {
		t.Fatalf("REAP state %v before the failure", ci.ReapState)
	}
	// ISP A1 blackholes everything.
	net.rules = blackhole("2001:db8:a1::/48")
	cut := net.now.Sub(simEpoch)
	net.log = nil
	net.runFor(60 * time.Second)

	ca, _ := a.e.Context(ua, ub)
	cb, _ := b.e.Context(ub, ua)
	if !onPrefix(ca.LocalLocator, "2001:db8:a2::/48") || !onPrefix(cb.PeerLocator, "2001:db8:a2::/48") {
		t.Fatalf("pairs after failover: A %v>%v, B %v>%v", ca.LocalLocator, ca.PeerLocator, cb.LocalLocator, cb.PeerLocator)
	}
	if ca.ReapState != StaOperational || cb.ReapState != StaOperational {
		t.Errorf("REAP states A %v B %v, want Operational", ca.ReapState, cb.ReapState)
	}
	// Both directions moved within Send Timeout + the initial probes.
	tm := DefaultTimers()
	limit := cut + tm.SendTimeout + time.Duration(tm.NumInitialProbes)*tm.InitialProbeTimeout + time.Second
	for _, nd := range []*simNode{a, b} {
		fo := nd.eventsOf(EventFailover)
		if len(fo) == 0 {
			t.Fatalf("%s: no failover event", nd.name)
		}
		at := nd.firstEvent(EventFailover)
		if at < cut+tm.SendTimeout-time.Second || at > limit {
			t.Errorf("%s: failover at %v, cut at %v, limit %v", nd.name, at, cut, limit)
		}
		if fo[0].Duration <= 0 || fo[0].Duration > 3*time.Second {
			t.Errorf("%s: exploration took %v", nd.name, fo[0].Duration)
		}
	}
	if net.count(TypeProbe) == 0 {
		t.Error("no probes exchanged")
	}
	// Payload flows again: the last 30 s of the flow lose nothing.
	net.dataLost, net.dataSent = 0, 0
	net.runFor(30 * time.Second)
	if net.dataLost != 0 || net.dataSent == 0 {
		t.Errorf("after failover %d/%d packets lost", net.dataLost, net.dataSent)
	}
	if a.unknown != 0 || b.unknown != 0 {
		t.Errorf("unknown tags: A %d B %d", a.unknown, b.unknown)
	}
}

func TestReapUplinkDownFailsOverAtOnce(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 22, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establishWithFlow(t, net, a, b, sa, sb, 0, 100*time.Millisecond, simEpoch.Add(2*time.Minute))
	net.runFor(10 * time.Second)
	net.rules = blackhole("2001:db8:a1::/48")
	cut := net.now.Sub(simEpoch)
	a.apply(a.e.UplinkDown(net.now, "upa1"))
	net.runFor(30 * time.Second)
	ca, _ := a.e.Context(ua, ub)
	if !onPrefix(ca.LocalLocator, "2001:db8:a2::/48") {
		t.Fatalf("A still on %v", ca.LocalLocator)
	}
	at := a.firstEvent(EventFailover)
	// One probe round trip (plus the peer's answer), no timer.
	if at < 0 || at-cut > 100*time.Millisecond {
		t.Errorf("A failed over %v after uplink down, want ≤ 100ms", at-cut)
	}
	atB := b.firstEvent(EventFailover)
	if atB < 0 || atB-cut > 100*time.Millisecond {
		t.Errorf("B failed over %v after uplink down, want ≤ 100ms", atB-cut)
	}
	// Nothing was probed from the dead uplink.
	for _, l := range net.log {
		if l.typ == TypeProbe && l.from == "A" && onPrefix(l.src, "2001:db8:a1::/48") {
			t.Errorf("probe from the down uplink: %v", l.src)
		}
	}
}

func TestReapSiteWideHint(t *testing.T) {
	const n = 5
	net, a, b, sa, sb, _ := twoSites(t, 23, n, Timers{})
	stop := simEpoch.Add(3 * time.Minute)
	// Host 0 talks constantly; the others only every 12 s.
	for i := range n {
		every := 12 * time.Second
		if i == 0 {
			every = 100 * time.Millisecond
		}
		establishWithFlow(t, net, a, b, sa, sb, i, every, stop)
	}
	net.runFor(20 * time.Second)
	net.rules = blackhole("2001:db8:a1::/48")
	cut := net.now.Sub(simEpoch)
	net.runFor(40 * time.Second)
	first := a.firstEvent(EventFailover)
	if first < 0 {
		t.Fatal("no failover")
	}
	for i := range n {
		ca, _ := a.e.Context(sa.hosts[i].ULID, sb.hosts[i].ULID)
		if !onPrefix(ca.LocalLocator, "2001:db8:a2::/48") && !onPrefix(ca.PeerLocator, "2001:db8:b2::/48") {
			t.Errorf("host %d still on %v>%v", i, ca.LocalLocator, ca.PeerLocator)
		}
	}
	// Every context moved within a few probe intervals of the first
	// detection, long before the slow ones' own Send timers.
	moved := 0
	for i, ev := range a.events {
		if ev.Kind == EventFailover {
			moved++
			if a.evAt[i]-first > 2*time.Second {
				t.Errorf("context %v moved %v after the first", ev.LocalULID, a.evAt[i]-first)
			}
		}
	}
	if moved != n {
		t.Errorf("%d failovers on A, want %d", moved, n)
	}
	if first-cut > DefaultTimers().SendTimeout+2*time.Second {
		t.Errorf("first detection %v after the cut", first-cut)
	}
}

func TestReapKeepalive(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 24, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	net.runFor(time.Second)
	// One-way traffic B → A: A must send Keepalives so B's Send timer
	// never fires (RFC 5534 §4.1, §6.2).
	oneWay(net, b, ub, ua, time.Second, net.now.Add(60*time.Second))
	net.runFor(70 * time.Second)
	ka := 0
	for _, l := range net.log {
		if l.typ == TypeKeepalive {
			if l.from != "A" {
				t.Errorf("keepalive from %s", l.from)
			}
			ka++
		}
	}
	// Payload arrives every second and Keepalive Interval is 5 s, so one
	// Keepalive per interval while the flow lasts, plus the tail.
	if ka < 10 || ka > 16 {
		t.Errorf("%d keepalives in 60 s of one-way traffic", ka)
	}
	if net.count(TypeProbe) != 0 || len(b.eventsOf(EventExplorationStarted)) != 0 {
		t.Errorf("B explored although keepalives arrived")
	}
}

func TestReapProbeBackoff(t *testing.T) {
	// A peer that vanishes: probes at 0.5 s for the first four, then
	// doubling up to Max Probe Timeout (RFC 5534 §4.3, §7).
	net, a, b, sa, sb, _ := twoSites(t, 25, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establishWithFlow(t, net, a, b, sa, sb, 0, 100*time.Millisecond, simEpoch.Add(20*time.Second))
	net.runFor(5 * time.Second)
	net.rules = everywhere(linkRule{down: true})
	net.log = nil
	net.runFor(8 * time.Minute)
	times := net.sentAt(TypeProbe, "A")
	if len(times) < 10 {
		t.Fatalf("%d probes", len(times))
	}
	for i := 1; i < 4; i++ {
		if d := times[i] - times[i-1]; d != DefaultTimers().InitialProbeTimeout {
			t.Errorf("gap %d = %v, want 0.5 s", i, d)
		}
	}
	// Backed-off probes: doubling, randomized by ±20 % (RFC 5534 §4.1).
	var ratios []float64
	nominal := DefaultTimers().InitialProbeTimeout
	for i := 5; i < len(times); i++ {
		nominal = min(nominal*2, DefaultTimers().MaxProbeTimeout)
		ratios = append(ratios, float64(times[i]-times[i-1])/float64(nominal))
	}
	checkJitter(t, ratios, 0.8, 1.2)
	prev := time.Duration(0)
	for i := 4; i < len(times); i++ {
		d := times[i] - times[i-1]
		if d > time.Duration(float64(DefaultTimers().MaxProbeTimeout)*1.2)+time.Millisecond {
			t.Errorf("gap %d = %v exceeds Max Probe Timeout", i, d)
		}
		if i > 4 && d < prev/2 {
			t.Errorf("gap %d = %v shrank from %v", i, d, prev)
		}
		prev = d
	}
	// Contexts that explore without success are eventually discarded.
	net.runFor(10 * time.Minute)
	if a.state(ua, ub) != StateIdle {
		t.Errorf("context still %v after exploring for IdleTimeout", a.state(ua, ub))
	}
}

func TestUpdateLocatorList(t *testing.T) {
	net, a, b, sa, sb, v := twoSites(t, 26, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establish(t, net, a, b, ua, ub)
	// The site gains a third locator for the host (its HBA set grows).
	h := sa.hosts[0]
	h.Locators = append(append([]netip.Addr(nil), h.Locators...), netip.MustParseAddr("2001:db8:a2:2::1"))
	v.sets[ua] = h.Locators
	// The first Update Request is lost: it must be retransmitted.
	net.rules = []linkRule{{src: netip.MustParsePrefix("2001:db8:a1::/48"), dst: netip.MustParsePrefix("::/0"), down: true}}
	net.log = nil
	act, err := a.e.UpdateLocalHost(net.now, h)
	if err != nil {
		t.Fatal(err)
	}
	a.apply(act)
	net.rules = nil
	net.runFor(30 * time.Second)
	want := []string{"A>B UpdateRequest (lost)", "A>B UpdateRequest", "B>A UpdateAck"}
	got := net.types(false)
	if len(got) < 3 || joinTypes(got[:3]) != joinTypes(want) {
		t.Fatalf("messages %v, want %v first", got, want)
	}
	// The exchange counts as payload (RFC 5534 §6.1): A received the ack
	// last, so it keeps B's Send timer quiet with Keepalives, no more.
	for _, m := range got[3:] {
		if m != "A>B Keepalive" {
			t.Errorf("unexpected %s after the update", m)
		}
	}
	gap := net.log[1].at - net.log[0].at
	tm := DefaultTimers()
	if gap < tm.UpdateTimeout/2 || gap > tm.UpdateTimeout*3/2 {
		t.Errorf("retransmitted after %v, want UPDATE_TIMEOUT ±50%%", gap)
	}
	cb, _ := b.e.Context(ub, ua)
	if len(cb.PeerLocators) != 3 || cb.PeerLocators[2] != h.Locators[2] {
		t.Errorf("B's Ls(peer) = %v", cb.PeerLocators)
	}
	if len(b.eventsOf(EventLocatorsUpdated)) != 1 {
		t.Error("no locators_updated event")
	}
	if u := b.fast[cb.LocalTag]; len(u.PeerLocators) != 3 {
		t.Errorf("fast table not updated: %v", u.PeerLocators)
	}
}

func TestUpdatePreferenceBrokenMovesPeer(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 27, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establishWithFlow(t, net, a, b, sa, sb, 0, 100*time.Millisecond, simEpoch.Add(time.Minute))
	net.runFor(5 * time.Second)
	// The operator drains uplink A1: its locator is marked BROKEN.
	a.apply(a.e.SetLocatorPreference(net.now, ua, LocatorPreference{Flags: FlagBroken}))
	net.runFor(5 * time.Second)
	cb, _ := b.e.Context(ub, ua)
	if cb.PeerLocator == ua {
		t.Fatalf("B still sends to the BROKEN locator %v", cb.PeerLocator)
	}
	if net.count(TypeUpdateAck) != 1 {
		t.Errorf("%d acks", net.count(TypeUpdateAck))
	}
}

func TestHATakeoverMidHandshake(t *testing.T) {
	// B answers R1, then its HA twin (same site secret) receives the I2.
	net, a, b, sa, sb, v := twoSites(t, 28, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	net.runFor(25 * time.Millisecond) // I1 and R1 delivered, I2 in flight
	b.restart(simConfig(sb, v, 55, Timers{}))
	net.runFor(time.Second)
	wantTypes(t, net, "A>B I1", "B>A R1", "A>B I2", "B>A R2")
	checkPair(t, a, b, ua, ub)
}

func TestSimCustomSendTimeout(t *testing.T) {
	// A sends Keepalive Timeout = its Send Timeout (RFC 5534 §5.3); B then
	// keeps alive within A's shorter timeout.
	net, a, b, sa, sb, _ := asymSites(t, 29, Timers{SendTimeout: 12 * time.Second}, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	net.runFor(time.Second)
	o, _, ok := net.lastOfType(TypeI2).Option(OptKeepaliveTimeout)
	if s, _ := o.KeepaliveTimeout(); !ok || s != 12 {
		t.Fatalf("I2 Keepalive Timeout option %v %d", ok, s)
	}
	if c := b.e.byPair[pairKey{ub, ua, 0}]; c.keepaliveTimeout(&b.e.t) != 12*time.Second {
		t.Errorf("B's Keepalive Timeout %v", c.keepaliveTimeout(&b.e.t))
	}
	// One-way A → B: B keeps alive every 4 s, so A never explores.
	oneWay(net, a, ua, ub, time.Second, net.now.Add(40*time.Second))
	net.runFor(45 * time.Second)
	kas := net.sentAt(TypeKeepalive, "B")
	if len(kas) < 9 {
		t.Fatalf("%d keepalives from B", len(kas))
	}
	if d := kas[1] - kas[0]; d != 4*time.Second {
		t.Errorf("keepalive interval %v, want 12 s / 3", d)
	}
	if len(a.eventsOf(EventExplorationStarted)) != 0 {
		t.Error("A explored")
	}
}

func TestReapPartitionHeals(t *testing.T) {
	// A full partition: exploration backs off; once the network heals a
	// probe gets through within one (capped) probe interval.
	net, a, b, sa, sb, _ := twoSites(t, 30, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establishWithFlow(t, net, a, b, sa, sb, 0, 500*time.Millisecond, simEpoch.Add(10*time.Minute))
	net.runFor(5 * time.Second)
	net.rules = everywhere(linkRule{down: true})
	net.runFor(3 * time.Minute)
	if ci, _ := a.e.Context(ua, ub); ci.ReapState != StaExploring {
		t.Fatalf("A in %v during the partition", ci.ReapState)
	}
	net.rules = nil
	healed := net.now.Sub(simEpoch)
	net.runFor(2 * time.Minute)
	ca, _ := a.e.Context(ua, ub)
	cb, _ := b.e.Context(ub, ua)
	if ca.ReapState != StaOperational || cb.ReapState != StaOperational {
		t.Fatalf("after healing: A %v B %v", ca.ReapState, cb.ReapState)
	}
	var back time.Duration = -1
	for i, ev := range a.events {
		if (ev.Kind == EventExplorationEnded || ev.Kind == EventFailover) && a.evAt[i] > healed {
			back = a.evAt[i] - healed
			break
		}
	}
	max := time.Duration(float64(DefaultTimers().MaxProbeTimeout)*1.2) + time.Second
	if back < 0 || back > max {
		t.Errorf("recovered %v after healing, want ≤ %v", back, max)
	}
	checkPair(t, a, b, ua, ub)
}

func TestReapFailoverUnderLossAndReordering(t *testing.T) {
	// ISP A1 blackholed while every other path loses 10 %, duplicates
	// 10 % and reorders by up to 30 ms: both sides still move, and the
	// context survives.
	all := netip.MustParsePrefix("::/0")
	for seed := uint64(40); seed < 50; seed++ {
		net, a, b, sa, sb, _ := twoSites(t, seed, 2, Timers{})
		for i := range 2 {
			establishWithFlow(t, net, a, b, sa, sb, i, 100*time.Millisecond, simEpoch.Add(3*time.Minute))
		}
		net.rules = append(blackhole("2001:db8:a1::/48"), linkRule{src: all, dst: all, loss: 0.1, dup: 0.1, reorder: 30 * time.Millisecond})
		net.runFor(90 * time.Second)
		for i := range 2 {
			ua, ub := sa.hosts[i].ULID, sb.hosts[i].ULID
			ca, _ := a.e.Context(ua, ub)
			cb, _ := b.e.Context(ub, ua)
			if ca.State != StateEstablished || !onPrefix(ca.LocalLocator, "2001:db8:a2::/48") || !onPrefix(cb.PeerLocator, "2001:db8:a2::/48") {
				t.Errorf("seed %d host %d: A %v %v>%v, B %v>%v", seed, i, ca.State, ca.LocalLocator, ca.PeerLocator, cb.LocalLocator, cb.PeerLocator)
			}
		}
		for _, nd := range []*simNode{a, b} {
			if err := checkInvariants(nd.e); err != nil {
				t.Fatalf("seed %d %s: %v", seed, nd.name, err)
			}
		}
	}
}

func TestDrainUplink(t *testing.T) {
	const n = 3
	net, a, b, sa, sb, _ := twoSites(t, 32, n, Timers{})
	for i := range n {
		establishWithFlow(t, net, a, b, sa, sb, i, 200*time.Millisecond, simEpoch.Add(time.Minute))
	}
	net.runFor(5 * time.Second)
	net.log = nil
	a.apply(a.e.SetUplinkPreference(net.now, "upa1", LocatorPreference{Flags: FlagBroken}))
	net.runFor(5 * time.Second)
	if got := net.count(TypeUpdateRequest); got != n {
		t.Errorf("%d Update Requests, want one per context", got)
	}
	for i := range n {
		ua, ub := sa.hosts[i].ULID, sb.hosts[i].ULID
		ca, _ := a.e.Context(ua, ub)
		cb, _ := b.e.Context(ub, ua)
		if onPrefix(ca.LocalLocator, "2001:db8:a1::/48") || onPrefix(cb.PeerLocator, "2001:db8:a1::/48") {
			t.Errorf("host %d still uses the drained uplink: A %v, B→%v", i, ca.LocalLocator, cb.PeerLocator)
		}
	}
	if net.dataLost != 0 {
		t.Errorf("%d packets lost while draining a working uplink", net.dataLost)
	}
}

func TestSimSubSecondSendTimeoutOption(t *testing.T) {
	// A Send Timeout under a second still promises the peer a whole
	// second, never 0 (RFC 5534 §5.3: the option carries seconds).
	net, a, _, sa, sb, _ := asymSites(t, 31, Timers{SendTimeout: 500 * time.Millisecond, KeepaliveTimeout: 500 * time.Millisecond}, Timers{})
	a.apply(a.e.Initiate(net.now, sa.hosts[0].ULID, sb.hosts[0].ULID))
	net.runFor(time.Second)
	o, _, ok := net.lastOfType(TypeI2).Option(OptKeepaliveTimeout)
	if !ok {
		t.Fatal("I2 without a Keepalive Timeout option")
	}
	if s, ok := o.KeepaliveTimeout(); !ok || s != 1 {
		t.Fatalf("I2 Keepalive Timeout option = %d, %v; want 1", s, ok)
	}
}

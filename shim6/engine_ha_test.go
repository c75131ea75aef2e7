package shim6

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// HA takeover: gateway B's twin (same site secret and hosts, another seed,
// no state) takes over from B. A keeps its context and its tag; B's twin
// rebuilds the context from what A sends it, RFC 5533 §7.17–7.20, or from
// its own LAN's traffic, RFC 5533 §7.9/§7.15.

// moveOffULIDs establishes ua–ub and makes site X's first uplink fail
// (X = "a" or "b") so that the context runs on other locators and payload
// carries the Shim6 header.
func moveOffULIDs(t *testing.T, net *simNet, a, b *simNode, ua, ub netip.Addr, x string) {
	t.Helper()
	establish(t, net, a, b, ua, ub)
	net.rules = blackhole("2001:db8:" + x + "1::/48")
	nd := a
	if x == "b" {
		nd = b
	}
	nd.apply(nd.e.UplinkDown(net.now, "up"+x+"1"))
	net.flow(a, ua, b, ub, 100*time.Millisecond, net.now.Add(3*time.Second))
	net.runFor(3 * time.Second)
	net.runFor(100 * time.Millisecond) // nothing left in flight
	ca, _ := a.e.Context(ua, ub)
	if ca.LocalLocator == ua && ca.PeerLocator == ub {
		t.Fatalf("context still on the ULID pair after uplink %s1 failed", x)
	}
}

// TestHATakeoverShimmedPayloadRecoversSameContext: after a provider
// failure moved the context, B's twin gets shimmed payload it has no
// context for, answers R1bis (once per unknown packet, rate-limited) and
// A's I2bis rebuilds the context on the twin: same ULIDs, A's tag and
// current locator pair kept, only B's tag is new.
func TestHATakeoverShimmedPayloadRecoversSameContext(t *testing.T) {
	net, a, b, sa, sb, v := twoSites(t, 41, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	moveOffULIDs(t, net, a, b, ua, ub, "a")
	before, _ := a.e.Context(ua, ub)
	oldB, _ := b.e.Context(ub, ua)

	net.log = nil
	b.restart(simConfig(sb, v, 142, Timers{}))
	// Only A talks: B's LAN is silent, so nothing but A's payload can
	// tell the twin about the context.
	oneWay(net, a, ua, ub, 2*time.Millisecond, net.now.Add(2*time.Second))
	net.runFor(2 * time.Second)

	got := net.types(false)
	if len(got) < 3 || got[0] != "B>A R1bis" || !slices.Contains(got, "A>B I2bis") || !slices.Contains(got, "B>A R2") {
		t.Fatalf("after takeover: %v, want R1bis first, then I2bis and R2", got)
	}
	if n := len(got) - 2; net.count(TypeR1bis) != n {
		t.Errorf("messages %v: want only R1bis besides one I2bis and one R2", got)
	}
	checkPair(t, a, b, ua, ub)
	after, _ := a.e.Context(ua, ub)
	twin, _ := b.e.Context(ub, ua)
	if after.LocalTag != before.LocalTag || twin.PeerTag != before.LocalTag {
		t.Errorf("A's tag %#x → %#x, twin's CT(peer) %#x: A's tag must survive", before.LocalTag, after.LocalTag, twin.PeerTag)
	}
	if twin.LocalTag == oldB.LocalTag {
		t.Errorf("twin reused the packet's tag %#x (RFC 5533 §7.20)", twin.LocalTag)
	}
	if after.LocalLocator != before.LocalLocator || after.PeerLocator != before.PeerLocator {
		t.Errorf("pair %v>%v after recovery, was %v>%v", after.LocalLocator, after.PeerLocator, before.LocalLocator, before.PeerLocator)
	}
	if twin.LocalLocator != before.PeerLocator || twin.PeerLocator != before.LocalLocator {
		t.Errorf("twin's pair %v>%v, want the mirror of A's %v>%v", twin.LocalLocator, twin.PeerLocator, before.LocalLocator, before.PeerLocator)
	}
	// 500 payload packets a second reach the twin; until the I2bis is in
	// (one round trip) each gets an R1bis, bounded by the per-source
	// limiter's burst (MaxErrorsPerSecond/5 = 20) and refill.
	if n := net.count(TypeR1bis); n > 25 {
		t.Errorf("%d R1bis for one lost context", n)
	}
	if rec := a.eventsOf(EventRecovery); len(rec) != 1 {
		t.Errorf("A recorded %d recoveries, want 1", len(rec))
	}
	unknown := b.unknown
	net.flow(a, ua, b, ub, 100*time.Millisecond, net.now.Add(2*time.Second))
	net.runFor(2 * time.Second)
	if b.unknown != unknown {
		t.Errorf("%d unknown-tag packets after recovery", b.unknown-unknown)
	}
}

// TestHATakeoverControlMessageTriggersR1bis: the first thing the twin
// hears may be a Keepalive (A only receives) rather than payload; a
// control message for an unknown context is answered with R1bis too
// (RFC 5533 §7.17), and the context comes back.
func TestHATakeoverControlMessageTriggersR1bis(t *testing.T) {
	net, a, b, sa, sb, v := twoSites(t, 43, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	moveOffULIDs(t, net, a, b, ua, ub, "a")
	// B sends, A only receives: A keeps B's Send timer quiet with
	// Keepalives (RFC 5534 §5.2).
	oneWay(net, b, ub, ua, 100*time.Millisecond, net.now.Add(15*time.Second))
	net.runFor(15 * time.Second)
	ka := net.lastOfType(TypeKeepalive)
	var kaLog logEntry
	for _, l := range net.log {
		if l.typ == TypeKeepalive && l.from == "A" {
			kaLog = l
		}
	}
	if ka == nil || kaLog.from != "A" {
		t.Fatal("A sent no Keepalive")
	}
	net.runFor(time.Second) // quiet
	net.log = nil
	b.restart(simConfig(sb, v, 144, Timers{}))
	b.apply(b.e.HandleControl(net.now, kaLog.src, kaLog.dst, kaLog.msg))
	net.runFor(time.Second)
	wantTypes(t, net, "B>A R1bis", "A>B I2bis", "B>A R2")
	r1bis, _ := ParseMessage(net.log[0].msg)
	if got, want := R1bis(r1bis).PacketTag(), Keepalive(ka).ReceiverTag(); got != want {
		t.Errorf("R1bis Packet Context Tag %#x, want the Keepalive's %#x", got, want)
	}
	checkPair(t, a, b, ua, ub)
}

// TestHATakeoverLANInitiationTowardStaleContext: the twin's own LAN
// speaks first. Its uplink 1 is down too (the same provider failure), so
// its I1 leaves from the live uplink with the ULID Pair option; A holds an
// ESTABLISHED context with another CT(peer) and answers R1 (RFC 5533
// §7.9), the I2 replaces CT(peer) in place (§7.13): one context on A, the
// ULID pair unchanged, and payload flows in both directions.
func TestHATakeoverLANInitiationTowardStaleContext(t *testing.T) {
	net, a, b, sa, sb, v := twoSites(t, 45, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	moveOffULIDs(t, net, a, b, ua, ub, "b")
	before, _ := a.e.Context(ua, ub)

	net.log = nil
	b.restart(simConfig(sb, v, 146, Timers{}))
	b.apply(b.e.UplinkDown(net.now, "upb1"))
	b.apply(b.e.Initiate(net.now, ub, ua))
	net.runFor(time.Second)
	wantTypes(t, net, "B>A I1", "A>B R1", "B>A I2", "A>B R2")
	if !onPrefix(net.log[0].src, "2001:db8:b2::/48") {
		t.Errorf("I1 from %v, want the twin's live uplink", net.log[0].src)
	}
	checkPair(t, a, b, ua, ub)
	after, _ := a.e.Context(ua, ub)
	if a.e.Len() != 1 || after.LocalTag != before.LocalTag || after.PeerTag == before.PeerTag {
		t.Errorf("A: %d contexts, tags %#x/%#x, were %#x/%#x; want one context, own tag kept, CT(peer) replaced",
			a.e.Len(), after.LocalTag, after.PeerTag, before.LocalTag, before.PeerTag)
	}
	delivered := net.dataDelivered
	net.flow(a, ua, b, ub, 100*time.Millisecond, net.now.Add(2*time.Second))
	net.runFor(2 * time.Second)
	if net.dataDelivered-delivered < 30 || b.unknown != 0 {
		t.Errorf("after re-establishment: %d of 40 delivered, %d unknown at the twin", net.dataDelivered-delivered, b.unknown)
	}
}

// TestHATakeoverBothPathsRace: the twin's LAN and A's shimmed payload
// both reach the twin at once: R1bis/I2bis and I1/R1/I2 cross. Whatever
// the order, both ends settle on one context with matching tags and
// payload stops hitting unknown tags.
func TestHATakeoverBothPathsRace(t *testing.T) {
	for seed := uint64(47); seed < 57; seed++ {
		net, a, b, sa, sb, v := twoSites(t, seed, 1, Timers{})
		ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
		moveOffULIDs(t, net, a, b, ua, ub, "b")
		b.restart(simConfig(sb, v, byte(seed+100), Timers{}))
		b.apply(b.e.UplinkDown(net.now, "upb1"))
		net.flow(a, ua, b, ub, 5*time.Millisecond, net.now.Add(4*time.Second))
		net.runFor(3 * time.Second)
		checkPair(t, a, b, ua, ub)
		if a.e.Len() != 1 || b.e.Len() != 1 {
			t.Fatalf("seed %d: %d and %d contexts", seed, a.e.Len(), b.e.Len())
		}
		unknown := b.unknown
		net.runFor(time.Second)
		if b.unknown != unknown {
			t.Errorf("seed %d: %d unknown tags after settling", seed, b.unknown-unknown)
		}
	}
}

// TestHAFlapOldActiveReturnsWithStaleContext: the old active comes back
// (preemption, or the twin fails in turn) still holding its context with
// its old tag. A's payload carries the twin's tag, which it does not
// know: R1bis, and A's I2bis lands on the stale context of the same pair,
// which takes A's locators again; nothing is duplicated.
func TestHAFlapOldActiveReturnsWithStaleContext(t *testing.T) {
	net, a, b, sa, sb, v := twoSites(t, 58, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	moveOffULIDs(t, net, a, b, ua, ub, "a")
	old := b.e
	b.restart(simConfig(sb, v, 159, Timers{}))
	net.flow(a, ua, b, ub, 20*time.Millisecond, net.now.Add(time.Second))
	net.runFor(time.Second)
	checkPair(t, a, b, ua, ub)

	// Back to the old engine; its fast table is rebuilt from its state.
	b.e = old
	b.reset()
	ci, _ := old.Context(ub, ua)
	b.fast[ci.LocalTag] = ContextUpdate{LocalULID: ub, PeerULID: ua, LocalTag: ci.LocalTag, PeerTag: ci.PeerTag,
		LocalLocator: ci.LocalLocator, PeerLocator: ci.PeerLocator, LocalLocators: sb.hosts[0].Locators, PeerLocators: ci.PeerLocators}
	b.byPair[[2]netip.Addr{ub, ua}] = ci.LocalTag
	net.log = nil
	net.flow(a, ua, b, ub, 20*time.Millisecond, net.now.Add(3*time.Second))
	net.runFor(3 * time.Second)
	if net.count(TypeR1bis) == 0 || net.count(TypeI2bis) == 0 {
		t.Errorf("returned without R1bis/I2bis: %v", net.types(false))
	}
	checkPair(t, a, b, ua, ub)
	if b.e.Len() != 1 {
		t.Errorf("old active holds %d contexts, want 1", b.e.Len())
	}
}

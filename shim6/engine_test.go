package shim6

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// checkPair asserts that both ends of a pair are ESTABLISHED with
// matching tags: each side's CT(peer) is the other's CT(local).
func checkPair(t *testing.T, a, b *simNode, ua, ub netip.Addr) {
	t.Helper()
	ca, ok1 := a.e.Context(ua, ub)
	cb, ok2 := b.e.Context(ub, ua)
	if !ok1 || !ok2 {
		t.Fatalf("context missing: A %v B %v", ok1, ok2)
	}
	if ca.State != StateEstablished || cb.State != StateEstablished {
		t.Fatalf("states A %v B %v, want ESTABLISHED both", ca.State, cb.State)
	}
	if ca.PeerTag != cb.LocalTag || cb.PeerTag != ca.LocalTag {
		t.Fatalf("tags: A local %#x peer %#x, B local %#x peer %#x", ca.LocalTag, ca.PeerTag, cb.LocalTag, cb.PeerTag)
	}
	if ca.LocalTag == 0 || ca.LocalTag > MaxTag || cb.LocalTag == 0 || cb.LocalTag > MaxTag {
		t.Fatalf("tags out of range: %#x %#x", ca.LocalTag, cb.LocalTag)
	}
	if a.fast[ca.LocalTag].PeerTag != cb.LocalTag || b.fast[cb.LocalTag].PeerTag != ca.LocalTag {
		t.Fatalf("fast tables not published: %+v %+v", a.fast, b.fast)
	}
}

func TestSimCleanHandshake(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 1, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	net.runFor(time.Second)
	wantTypes(t, net, "A>B I1", "B>A R1", "A>B I2", "B>A R2")
	checkPair(t, a, b, ua, ub)
	// Four one-way delays of 10 ms.
	if got := a.firstEvent(EventContextUp); got != 40*time.Millisecond {
		t.Errorf("A up at %v, want 40ms", got)
	}
	if got := b.firstEvent(EventContextUp); got != 30*time.Millisecond {
		t.Errorf("B up at %v, want 30ms", got)
	}
	// Both learnt the other's full locator set (verified).
	ca, _ := a.e.Context(ua, ub)
	if d := cmp.Diff(sb.hosts[0].Locators, ca.PeerLocators, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
		t.Errorf("A's Ls(peer) (-want +got):\n%s", d)
	}
	// The current pair is the ULID pair, so no payload header is needed.
	if ca.LocalLocator != ua || ca.PeerLocator != ub {
		t.Errorf("pair %v>%v, want the ULIDs", ca.LocalLocator, ca.PeerLocator)
	}
}

func TestSimHandshakeUnderLoss(t *testing.T) {
	ok := 0
	const runs = 30
	for seed := uint64(1); seed <= runs; seed++ {
		net, a, b, sa, sb, _ := twoSites(t, seed, 1, Timers{})
		net.rules = everywhere(linkRule{loss: 0.3})
		ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
		a.apply(a.e.Initiate(net.now, ua, ub))
		net.runFor(5 * time.Minute)
		sA, sB := a.state(ua, ub), b.state(ub, ua)
		switch {
		case sA == StateEstablished:
			checkPair(t, a, b, ua, ub)
			up := a.firstEvent(EventContextUp)
			// Bound: 5 I1 attempts (4+8+16+32+64 s nominal, ×1.5) plus I2s.
			if up <= 0 || up > 4*time.Minute {
				t.Errorf("seed %d: up after %v", seed, up)
			}
			ok++
		case len(a.eventsOf(EventEstablishFailed)) > 0:
			// Every I1/R1 (or R2) was lost; the hold-down may be over. The
			// responder holds no state or a half-open context it will GC.
			if sA != StateIdle && sA != StateEFailed {
				t.Errorf("seed %d: A failed, then %v", seed, sA)
			}
			if sB != StateIdle && sB != StateEstablished {
				t.Errorf("seed %d: A failed, B in %v", seed, sB)
			}
			if got := net.count(TypeI1); got < 1+DefaultTimers().I1RetriesMax {
				t.Errorf("seed %d: %d I1s before E-FAILED", seed, got)
			}
		default:
			t.Errorf("seed %d: A %v B %v after 5 min", seed, sA, sB)
		}
	}
	if ok < runs*8/10 {
		t.Errorf("only %d/%d handshakes completed under 30%% loss", ok, runs)
	}
}

func TestSimHandshakeDuplicationReordering(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		net, a, b, sa, sb, _ := twoSites(t, seed, 3, Timers{})
		net.rules = everywhere(linkRule{dup: 0.5, reorder: 50 * time.Millisecond})
		for i := range 3 {
			a.apply(a.e.Initiate(net.now, sa.hosts[i].ULID, sb.hosts[i].ULID))
		}
		net.runFor(time.Minute)
		for i := range 3 {
			checkPair(t, a, b, sa.hosts[i].ULID, sb.hosts[i].ULID)
		}
		if a.e.Len() != 3 || b.e.Len() != 3 {
			t.Errorf("seed %d: %d and %d contexts, want 3 each", seed, a.e.Len(), b.e.Len())
		}
	}
}

func TestSimSimultaneousInitiation(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 3, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	b.apply(b.e.Initiate(net.now, ub, ua))
	net.runFor(10 * time.Second)
	wantTypes(t, net, "A>B I1", "B>A I1", "B>A R2", "A>B R2")
	checkPair(t, a, b, ua, ub)
	if got := a.firstEvent(EventContextUp); got != 20*time.Millisecond {
		t.Errorf("up at %v, want 20ms (crossing I1s)", got)
	}
}

func TestSimRestartRecovery(t *testing.T) {
	net, a, b, sa, sb, v := twoSites(t, 4, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establish(t, net, a, b, ua, ub)
	old, _ := a.e.Context(ua, ub)

	// The path moves off the ULIDs first so payload carries the header,
	// then B loses all state (restart / HA takeover with the same secret).
	net.rules = blackhole("2001:db8:a1::/48")
	a.apply(a.e.UplinkDown(net.now, "upa1"))
	stop := net.now.Add(40 * time.Second)
	net.flow(a, ua, b, ub, 200*time.Millisecond, stop)
	net.runFor(5 * time.Second)
	moved, _ := a.e.Context(ua, ub)
	if moved.LocalLocator == ua {
		t.Fatalf("A still on its ULID locator after uplink down")
	}
	net.log = nil
	restartAt := net.now
	b.restart(simConfig(sb, v, 99, Timers{}))
	net.runFor(5 * time.Second)

	got := net.types(false)
	want := []string{"B>A R1bis", "A>B I2bis", "B>A R2"}
	if len(got) < 3 || cmp.Diff(want, got[:3]) != "" {
		t.Fatalf("after restart: %v, want %v first", got, want)
	}
	checkPair(t, a, b, ua, ub)
	now, _ := a.e.Context(ua, ub)
	if now.PeerTag == old.PeerTag {
		t.Errorf("B kept the old tag %#x; a new one must be allocated", now.PeerTag)
	}
	rec := a.eventsOf(EventRecovery)
	if len(rec) != 1 {
		t.Fatalf("recovery events %d, want 1", len(rec))
	}
	// Recovery takes one payload interval plus three one-way delays.
	if d := a.evAt[len(a.evAt)-1] - restartAt.Sub(simEpoch); d > 300*time.Millisecond {
		t.Errorf("recovery took %v", d)
	}
	// Traffic flows again: B restores payload to the ULIDs (checked in
	// recvData) and stops seeing unknown tags.
	before := b.unknown
	net.runFor(5 * time.Second)
	if b.unknown != before {
		t.Errorf("unknown tags after recovery: %d more", b.unknown-before)
	}
}

func TestSimRestartThenI1(t *testing.T) {
	// The side without state starts with I1: the full exchange runs and
	// the side with state replaces CT(peer) (RFC 5533 §7.5 Fig. 7).
	net, a, b, sa, sb, v := twoSites(t, 5, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	net.runFor(time.Second)
	b.restart(simConfig(sb, v, 77, Timers{}))
	net.log = nil
	b.apply(b.e.Initiate(net.now, ub, ua))
	net.runFor(time.Second)
	wantTypes(t, net, "B>A I1", "A>B R1", "B>A I2", "A>B R2")
	checkPair(t, a, b, ua, ub)
	if a.e.Len() != 1 {
		t.Errorf("A has %d contexts, want 1", a.e.Len())
	}
}

func TestSimForgedLocatorRefused(t *testing.T) {
	sa, sb, v := verifiedSites(1)
	// A claims a locator that is not in its HBA set.
	forged := sa.hosts[0]
	forged.Locators = append(append([]netip.Addr(nil), forged.Locators...), netip.MustParseAddr("2001:db8:a2:1::dead"))
	net := newSimNet(t, 6)
	cfgA := simConfig(sa, v, 6, Timers{})
	cfgA.Hosts = []LocalHost{forged}
	a := net.addNode("A", cfgA)
	b := net.addNode("B", simConfig(sb, v, 7, Timers{}))
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	net.runFor(2 * time.Second)
	wantTypes(t, net, "A>B I1", "B>A R1", "A>B I2", "B>A Error")
	if b.e.Len() != 0 {
		t.Errorf("B created %d contexts for a forged locator list", b.e.Len())
	}
	if got := b.e.Stats().Drops[DropVerifyFailed]; got != 1 {
		t.Errorf("verify failures %d, want 1", got)
	}
	em, err := ParseMessage(net.log[3].msg)
	if err != nil {
		t.Fatal(err)
	}
	if c := ErrorMessage(em).Code(); c != CodeVerificationFailed {
		t.Errorf("error code %v, want %v", c, CodeVerificationFailed)
	}
	if !pointsAtMethod(t, ErrorMessage(em).Packet(), int(ErrorMessage(em).Pointer()), 2) {
		t.Errorf("pointer %d does not name the forged third locator", ErrorMessage(em).Pointer())
	}
}

func TestSimUnverifiedListWithoutVerifier(t *testing.T) {
	// Without a verifier, a list with more than the ULID is never used.
	sa, sb := newSite("a", 1), newSite("b", 1)
	net := newSimNet(t, 8)
	a := net.addNode("A", simConfig(sa, nil, 8, Timers{}))
	b := net.addNode("B", simConfig(sb, nil, 9, Timers{}))
	a.apply(a.e.Initiate(net.now, sa.hosts[0].ULID, sb.hosts[0].ULID))
	net.runFor(2 * time.Second)
	if b.e.Len() != 0 {
		t.Errorf("B accepted an unverifiable locator list")
	}
}

func TestSimI1FloodAllocatesNothing(t *testing.T) {
	sb := newSite("b", 1)
	e, err := NewEngine(simConfig(sb, nil, 1, Timers{}))
	if err != nil {
		t.Fatal(err)
	}
	now := simEpoch
	dst := sb.hosts[0].ULID
	var buf []byte
	r1s := 0
	for i := range 100_000 {
		src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xee, byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
		buf = AppendI1(buf[:0], ContextTag(i+1), uint32(i))
		a := e.HandleControl(now, src, dst, buf)
		for _, p := range a.Packets {
			if Type(p.Payload[2]) == TypeR1 {
				r1s++
			}
		}
		if len(a.Updates) != 0 {
			t.Fatal("I1 produced a fast-table entry")
		}
		now = now.Add(10 * time.Microsecond)
	}
	if r1s != 100_000 {
		t.Errorf("%d R1s, want one per I1", r1s)
	}
	if e.Len() != 0 || len(e.byTag) != 0 || len(e.byNonce) != 0 || len(e.timers) != 0 || len(e.pending) != 0 || len(e.paths) != 0 {
		t.Errorf("state after I1 flood: %d contexts, %d tags, %d nonces, %d timers", e.Len(), len(e.byTag), len(e.byNonce), len(e.timers))
	}
	if !e.NextDeadline().IsZero() {
		t.Errorf("a timer is pending after an I1 flood")
	}
}

func TestSimEFailedAfterSilence(t *testing.T) {
	sa := newSite("a", 1)
	net := newSimNet(t, 10)
	a := net.addNode("A", simConfig(sa, nil, 10, Timers{}))
	peer := netip.MustParseAddr("2001:db8:ff::1") // nobody there
	ua := sa.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, peer))
	net.runFor(10 * time.Minute)
	if got := net.count(TypeI1); got != 5 {
		t.Errorf("%d I1s, want 1 + I1_RETRIES_MAX = 5", got)
	}
	at := a.firstEvent(EventEstablishFailed)
	// Nominal 4+8+16+32+64 s, each drawn from [0.5, 1.5]×.
	if at < 62*time.Second || at > 186*time.Second {
		t.Errorf("E-FAILED at %v", at)
	}
	// The hold-down lasts NO_R1_HOLDDOWN_TIME, then the pair is IDLE again.
	if a.state(ua, peer) != StateIdle {
		t.Errorf("state %v after the hold-down, want IDLE", a.state(ua, peer))
	}
	// During the hold-down traffic does not trigger I1s.
	net2 := newSimNet(t, 11)
	a2 := net2.addNode("A", simConfig(sa, nil, 11, Timers{}))
	a2.apply(a2.e.Initiate(net2.now, ua, peer))
	for i := 0; i < 300 && a2.state(ua, peer) != StateEFailed; i++ {
		net2.runFor(time.Second)
	}
	if a2.state(ua, peer) != StateEFailed {
		t.Fatalf("state %v, want E-FAILED", a2.state(ua, peer))
	}
	n := net2.count(TypeI1)
	a2.apply(a2.e.HandleTraffic(net2.now, ua, peer))
	net2.runFor(time.Second)
	if net2.count(TypeI1) != n {
		t.Errorf("I1 sent during the E-FAILED hold-down")
	}
}

func TestSimInitiationPolicy(t *testing.T) {
	net, a, _, sa, sb, _ := twoSites(t, 12, 1, Timers{})
	a.e.pol = Policy{InitiateAfterNotices: 3, InitiateAfter: 2 * time.Second}.withDefaults()
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.HandleTraffic(net.now, ua, ub))
	a.apply(a.e.HandleTraffic(net.now, ua, ub))
	if net.count(TypeI1) != 0 {
		t.Fatal("I1 before the packet threshold")
	}
	a.apply(a.e.HandleTraffic(net.now, ua, ub))
	if net.count(TypeI1) != 1 {
		t.Fatalf("%d I1s at the threshold, want 1", net.count(TypeI1))
	}
	// Time rule: a second host with 1 packet now and 1 after 2 s.
	ub2 := netip.MustParseAddr("2001:db8:b1:1::77")
	a.apply(a.e.HandleTraffic(net.now, ua, ub2))
	net.runFor(time.Second)
	a.apply(a.e.HandleTraffic(net.now, ua, ub2))
	if a.state(ua, ub2) != StateIdle {
		t.Fatal("I1 before the time threshold")
	}
	net.runFor(time.Second)
	a.apply(a.e.HandleTraffic(net.now, ua, ub2))
	if a.state(ua, ub2) != StateI1Sent {
		t.Fatalf("state %v after 2 s of traffic, want I1-SENT", a.state(ua, ub2))
	}
	// A short flow (one packet) never costs a handshake.
	ub3 := netip.MustParseAddr("2001:db8:b1:1::78")
	a.apply(a.e.HandleTraffic(net.now, ua, ub3))
	net.runFor(time.Minute)
	a.apply(a.e.HandleTraffic(net.now, ua, ub3))
	if a.state(ua, ub3) != StateIdle {
		t.Fatal("a flow idle past the window started a handshake")
	}
}

func TestSimIdleGarbageCollection(t *testing.T) {
	tm := Timers{IdleTimeout: 5 * time.Minute}
	net, a, b, sa, sb, _ := twoSites(t, 13, 1, tm)
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	stop := net.now.Add(2 * time.Minute)
	net.flow(a, ua, b, ub, time.Second, stop)
	net.runFor(6 * time.Minute)
	if a.state(ua, ub) != StateEstablished {
		t.Fatalf("removed while in use / soon after: %v", a.state(ua, ub))
	}
	net.runFor(2 * time.Minute)
	if a.e.Len() != 0 || b.e.Len() != 0 {
		t.Fatalf("contexts after idle timeout: A %d B %d", a.e.Len(), b.e.Len())
	}
	if len(a.fast) != 0 || len(b.fast) != 0 {
		t.Errorf("fast tables not cleared")
	}
	at := a.firstEvent(EventContextDown)
	if want := 7 * time.Minute; at < want-2*time.Second || at > want+2*time.Second {
		t.Errorf("removed at %v, want ≈ last traffic + IdleTimeout = %v", at, want)
	}
}

func TestSimLostR2FallsBackToI1(t *testing.T) {
	// R2 is never retransmitted (RFC 5533 §7.14): after I2_RETRIES_MAX the
	// initiator goes back to I1, which the established responder answers
	// with R2 because the initiator's tag is unchanged (§7.9, §7.12).
	net, a, b, sa, sb, _ := twoSites(t, 14, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	net.runFor(25 * time.Millisecond) // I1, R1 delivered; I2 in flight
	net.rules = []linkRule{{src: netip.MustParsePrefix("2001:db8:b1::/48"), dst: netip.MustParsePrefix("::/0"), down: true}}
	net.runFor(45 * time.Second) // I2 backoff: at most 6 + 12 + 24 s
	if a.state(ua, ub) != StateI1Sent {
		t.Fatalf("A in %v after the I2 retries, want I1-SENT", a.state(ua, ub))
	}
	if got := net.count(TypeI2); got != 1+DefaultTimers().I2RetriesMax {
		t.Errorf("%d I2s, want 1 + I2_RETRIES_MAX", got)
	}
	net.rules = nil
	net.runFor(time.Minute)
	checkPair(t, a, b, ua, ub)
	last := net.log[len(net.log)-1]
	if last.typ != TypeR2 || net.log[len(net.log)-2].typ != TypeI1 {
		t.Errorf("recovered by %v, %v; want I1 answered by R2", net.log[len(net.log)-2], last)
	}
	if b.e.Len() != 1 {
		t.Errorf("B has %d contexts", b.e.Len())
	}
}

func TestSimInitiateWithULIDUplinkDown(t *testing.T) {
	// The ULID's uplink is down: the I1 leaves from the other uplink with
	// the ULID Pair option and the context still comes up.
	net, a, b, sa, sb, _ := twoSites(t, 15, 1, Timers{})
	net.rules = blackhole("2001:db8:a1::/48")
	a.apply(a.e.UplinkDown(net.now, "upa1"))
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	net.runFor(time.Second)
	wantTypes(t, net, "A>B I1", "B>A R1", "A>B I2", "B>A R2")
	i1, _ := ParseMessage(net.log[0].msg)
	if _, _, ok := i1.Option(OptULIDPair); !ok || !onPrefix(net.log[0].src, "2001:db8:a2::/48") {
		t.Errorf("I1 from %v, ULID Pair option %v", net.log[0].src, ok)
	}
	checkPair(t, a, b, ua, ub)
	ca, _ := a.e.Context(ua, ub)
	if !onPrefix(ca.LocalLocator, "2001:db8:a2::/48") {
		t.Errorf("A's pair %v>%v, want the live uplink", ca.LocalLocator, ca.PeerLocator)
	}
}

func TestSimRecoveryUnderLoss(t *testing.T) {
	all := netip.MustParsePrefix("::/0")
	for seed := uint64(60); seed < 75; seed++ {
		net, a, b, sa, sb, v := twoSites(t, seed, 1, Timers{})
		ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
		establish(t, net, a, b, ua, ub)
		a.apply(a.e.UplinkDown(net.now, "upa1"))
		net.rules = append(blackhole("2001:db8:a1::/48"), linkRule{src: all, dst: all, loss: 0.2})
		net.flow(a, ua, b, ub, 200*time.Millisecond, net.now.Add(3*time.Minute))
		net.runFor(20 * time.Second)
		b.restart(simConfig(sb, v, byte(seed), Timers{}))
		net.runFor(2 * time.Minute)
		checkPair(t, a, b, ua, ub)
		if net.count(TypeR1bis) == 0 || net.count(TypeI2bis) == 0 {
			t.Errorf("seed %d: recovered without R1bis/I2bis", seed)
		}
	}
}

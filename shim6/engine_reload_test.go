package shim6

import (
	"errors"
	"testing"
	"time"
)

// SetTimers on engines with established contexts: the contexts and their
// tags stay, and a blackhole afterwards is detected after the new Send
// Timeout (4 s), not the old default (15 s), on the virtual clock.
func TestSetTimersKeepsContextsAndAppliesSendTimeout(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 41, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establishWithFlow(t, net, a, b, sa, sb, 0, 100*time.Millisecond, simEpoch.Add(2*time.Minute))
	net.runFor(10 * time.Second)
	before, _ := a.e.Context(ua, ub)
	if before.State != StateEstablished || before.ReapState != StaOperational {
		t.Fatalf("before: %v %v", before.State, before.ReapState)
	}
	nt := Timers{SendTimeout: 4 * time.Second, KeepaliveTimeout: 4 * time.Second}
	for _, nd := range []*simNode{a, b} {
		if err := nd.e.SetTimers(nt); err != nil {
			t.Fatal(err)
		}
		// The control loop re-arms its timer from the engine after a reload.
		nd.apply(nd.e.Tick(net.now))
	}
	if got := a.e.Timers(); got.SendTimeout != 4*time.Second || got.I1Timeout != DefaultTimers().I1Timeout {
		t.Errorf("timers in effect %+v", got)
	}
	after, ok := a.e.Context(ua, ub)
	if !ok || after.State != StateEstablished || after.LocalTag != before.LocalTag || after.PeerTag != before.PeerTag {
		t.Fatalf("context after SetTimers %+v (before %+v)", after, before)
	}
	checkPair(t, a, b, ua, ub)

	net.rules = blackhole("2001:db8:a1::/48")
	cut := net.now.Sub(simEpoch)
	net.runFor(60 * time.Second)
	tm := a.e.Timers()
	limit := cut + tm.SendTimeout + time.Duration(tm.NumInitialProbes)*tm.InitialProbeTimeout + time.Second
	at := a.firstEvent(EventFailover)
	if at < 0 {
		t.Fatal("A: no failover")
	}
	if at < cut+tm.SendTimeout-time.Second || at > limit {
		t.Errorf("A failed over at %v, cut at %v: want within the new Send Timeout (limit %v)", at, cut, limit)
	}
	ca, _ := a.e.Context(ua, ub)
	if ca.LocalTag != before.LocalTag || !onPrefix(ca.LocalLocator, "2001:db8:a2::/48") {
		t.Errorf("after failover: tag %#x (was %#x), locator %v", ca.LocalTag, before.LocalTag, ca.LocalLocator)
	}
}

func TestSetTimersRejectsNegative(t *testing.T) {
	_, a, _, _, _, _ := twoSites(t, 42, 1, Timers{SendTimeout: 20 * time.Second})
	err := a.e.SetTimers(Timers{I1Timeout: -time.Second})
	if !errors.Is(err, ErrConfig) || err.Error() != "shim6: bad engine config: timer I1Timeout is negative (-1s)" {
		t.Fatalf("err = %v", err)
	}
	if err := a.e.SetTimers(Timers{NumInitialProbes: -1}); !errors.Is(err, ErrConfig) {
		t.Fatalf("negative count: %v", err)
	}
	if got := a.e.Timers(); got.SendTimeout != 20*time.Second || got.I1Timeout != 4*time.Second {
		t.Errorf("timers changed by a rejected SetTimers: %+v", got)
	}
}

// SetTimers with new validator timing re-keys the validators; the engine
// still completes handshakes afterwards.
func TestSetTimersValidatorRekey(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 43, 2, Timers{})
	for _, nd := range []*simNode{a, b} {
		if err := nd.e.SetTimers(Timers{NonceInterval: time.Second, SecretRotation: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	if b.e.val.interval != int64(time.Second) || b.e.val.perEpoch != 60 {
		t.Errorf("validators not re-keyed: interval %d per epoch %d", b.e.val.interval, b.e.val.perEpoch)
	}
	ua, ub := sa.hosts[1].ULID, sb.hosts[1].ULID
	establish(t, net, a, b, ua, ub)
}

// SetPolicy: with Packets 3 the third packet of a pair starts the
// handshake, where the default (1) started it at the first.
func TestSetPolicy(t *testing.T) {
	net, a, _, sa, sb, _ := twoSites(t, 44, 2, Timers{})
	i1s := func(acts *Actions) int {
		n := 0
		for _, p := range acts.Packets {
			if m, err := ParseMessage(p.Payload); err == nil && m.Type() == TypeI1 {
				n++
			}
		}
		return n
	}
	u0, p0 := sa.hosts[0].ULID, sb.hosts[0].ULID
	if n := i1s(a.e.HandleTraffic(net.now, u0, p0)); n != 1 {
		t.Fatalf("default policy: %d I1 after the first packet", n)
	}
	if err := a.e.SetPolicy(Policy{InitiateAfterNotices: 3}); err != nil {
		t.Fatal(err)
	}
	if got := a.e.Policy(); got.InitiateAfterNotices != 3 || got.Window != 30*time.Second || got.MaxPending != 65536 {
		t.Errorf("policy in effect %+v", got)
	}
	u1, p1 := sa.hosts[1].ULID, sb.hosts[1].ULID
	for i := 1; i <= 3; i++ {
		n := i1s(a.e.HandleTraffic(net.now.Add(time.Duration(i)*time.Millisecond), u1, p1))
		if want := map[bool]int{true: 1, false: 0}[i == 3]; n != want {
			t.Errorf("packet %d: %d I1, want %d", i, n, want)
		}
	}
	if err := a.e.SetPolicy(Policy{Window: -1}); !errors.Is(err, ErrConfig) {
		t.Errorf("negative window: %v", err)
	}
	if a.e.Policy().InitiateAfterNotices != 3 {
		t.Error("rejected SetPolicy changed the policy")
	}
}

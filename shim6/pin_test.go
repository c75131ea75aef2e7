package shim6

import (
	"net/netip"
	"testing"
	"time"
)

// Rules that were implemented but that no test failed without.

// RFC 5533 §7.11, §12.4: an R1 is matched by the Initiator Nonce *and*
// the locators of our I1: an R1 with the right nonce from another source,
// or to another of our locators, is dropped and moves nothing.
func TestR1LookupNeedsNonceAndLocators(t *testing.T) {
	sa, sb, v := verifiedSites(1)
	local, peer := sa.hosts[0].ULID, sb.hosts[0].ULID
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
		want     State
	}{
		{"from another source", netip.MustParseAddr("2001:db8:66:1::6"), local, StateI1Sent},
		{"from the peer's other locator", sb.hosts[0].Locators[1], local, StateI1Sent},
		{"to our other locator", peer, sa.hosts[0].Locators[1], StateI1Sent},
		{"matching nonce and locators", peer, local, StateI2Sent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEngine(simConfig(sa, v, 7, Timers{}))
			if err != nil {
				t.Fatal(err)
			}
			a := e.Initiate(simEpoch, local, peer)
			m, _ := ParseMessage(a.Packets[0].Payload)
			nonce := I1(m).InitiatorNonce()
			r1 := mustFinish(t, AppendResponderValidator(AppendR1(nil, nonce, 77), []byte("validator-16-oct")))
			out := e.HandleControl(simEpoch, tc.src, tc.dst, r1)
			ci, _ := e.Context(local, peer)
			if ci.State != tc.want {
				t.Fatalf("state %v, want %v", ci.State, tc.want)
			}
			if tc.want == StateI1Sent {
				if len(out.Packets) != 0 || e.Stats().Drops[DropNoContext] != 1 {
					t.Errorf("R1 %s: %d packets sent, %d no_context drops; want 0, 1", tc.name, len(out.Packets), e.Stats().Drops[DropNoContext])
				}
				return
			}
			if len(out.Packets) != 1 || out.Packets[0].Src != local || out.Packets[0].Dst != peer {
				t.Fatalf("matching R1: %+v, want one I2", out.Packets)
			}
			if m, _ := ParseMessage(out.Packets[0].Payload); m.Type() != TypeI2 || I2(m).ResponderNonce() != 77 {
				t.Errorf("matching R1 answered with %v", m.Type())
			}
		})
	}
}

// RFC 5534 §6.8: Probe(InboundOk) received while exploring stops the
// Keepalive timer (and restarts the Send timer): no Keepalive follows,
// although payload received before the exploration had started it.
func TestProbeInboundOkStopsKeepaliveTimer(t *testing.T) {
	for _, stop := range []bool{true, false} {
		name := "Probe(InboundOk)"
		if !stop {
			name = "control: no probe, Keepalive due"
		}
		t.Run(name, func(t *testing.T) {
			p, _ := newRawPeer(t, nil)
			rnonce, v := p.i1r1(0)
			tag := R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)).ResponderTag()
			// Payload received, nothing sent: the Keepalive timer runs.
			p.now = p.now.Add(time.Second)
			p.e.ObserveTraffic(p.now, tag, time.Time{}, p.now)
			if stop {
				// The peer explores; we answer Probe(InboundOk) and the
				// peer confirms with Probe(InboundOk).
				p.now = p.now.Add(10 * time.Millisecond)
				exp := mustFinish(t, AppendProbe(nil, tag, StaExploring, []ProbeRecord{{Src: p.ulid, Dst: p.local, Nonce: 1}}, nil))
				if m := Probe(p.only(p.send(p.ulid, exp), TypeProbe)); m.Sta() != StaInboundOk {
					t.Fatalf("answer to Probe(Exploring): %v", m.Sta())
				}
				p.now = p.now.Add(10 * time.Millisecond)
				ok := mustFinish(t, AppendProbe(nil, tag, StaInboundOk, []ProbeRecord{{Src: p.ulid, Dst: p.local, Nonce: 2}}, nil))
				if m := Probe(p.only(p.send(p.ulid, ok), TypeProbe)); m.Sta() != StaOperational {
					t.Fatalf("answer to Probe(InboundOk): %v", m.Sta())
				}
			}
			// Run the timers for one Keepalive Timeout (15 s) in 100 ms steps.
			kas := 0
			for end := p.now.Add(DefaultTimers().KeepaliveTimeout); p.now.Before(end); p.now = p.now.Add(100 * time.Millisecond) {
				for _, pk := range p.e.Tick(p.now).Packets {
					if m, _ := ParseMessage(pk.Payload); m.Type() == TypeKeepalive {
						kas++
					}
				}
			}
			if stop && kas != 0 {
				t.Errorf("%d Keepalives after Probe(InboundOk) stopped the Keepalive timer", kas)
			}
			if !stop && kas == 0 {
				t.Error("no Keepalive while the Keepalive timer runs: the test proves nothing")
			}
		})
	}
}

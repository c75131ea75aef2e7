package shim6

import (
	"fmt"
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

// rawEstablished has a raw peer set up a context with the engine and
// returns it with the engine's CT(local).
func rawEstablished(t *testing.T) (*rawPeer, ContextTag) {
	p, _ := newRawPeer(t, nil)
	rnonce, v := p.i1r1(0)
	return p, R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)).ResponderTag()
}

// tickFor runs the engine's timers for d in 100 ms steps and returns the
// types it sent.
func (p *rawPeer) tickFor(d time.Duration) []Type {
	var types []Type
	for end := p.now.Add(d); p.now.Before(end); p.now = p.now.Add(100 * time.Millisecond) {
		for _, pk := range p.e.Tick(p.now).Packets {
			m, _ := ParseMessage(pk.Payload)
			types = append(types, m.Type())
		}
	}
	return types
}

func countType(ts []Type, want Type) int {
	n := 0
	for _, x := range ts {
		if x == want {
			n++
		}
	}
	return n
}

// RFC 5534 §6.1: an Update Request we send counts as payload sent (it
// starts the Send timer, so an unanswered one leads to exploration), and
// one we receive counts as payload received (it stops the Send timer).
func TestUpdateRequestCountsAsPayload(t *testing.T) {
	t.Run("sent", func(t *testing.T) {
		p, _ := rawEstablished(t)
		p.e.SetLocatorPreference(p.now, p.local, LocatorPreference{Priority: 1})
		sent := p.tickFor(DefaultTimers().SendTimeout + time.Second)
		if countType(sent, TypeProbe) == 0 {
			t.Errorf("unanswered Update Request did not start the Send timer: sent %v", sent)
		}
	})
	t.Run("received", func(t *testing.T) {
		p, tag := rawEstablished(t)
		p.e.ObserveTraffic(p.now, tag, p.now, time.Time{}) // payload sent: Send timer runs
		p.now = p.now.Add(time.Second)
		ur := AppendUpdateRequest(nil, tag, 5)
		ur = mustFinish(t, AppendLocatorList(ur, 9, []uint8{VerifyHBA}, []netip.Addr{p.ulid}))
		p.only(p.send(p.ulid, ur), TypeUpdateAck)
		if sent := p.tickFor(DefaultTimers().SendTimeout); countType(sent, TypeProbe) != 0 {
			t.Errorf("the received Update Request did not stop the Send timer: sent %v", sent)
		}
	})
}

// RFC 5534 §5.3: a Keepalive Timeout option in an Update Request or R2
// sets the peer's Keepalive Timeout, which paces our Keepalives.
func TestKeepaliveTimeoutOptionApplied(t *testing.T) {
	// kas counts the Keepalives sent in 3 s of received-only payload.
	kas := func(p *rawPeer, tag ContextTag) int {
		p.now = p.now.Add(100 * time.Millisecond) // after our last message
		p.e.ObserveTraffic(p.now, tag, time.Time{}, p.now)
		return countType(p.tickFor(2900*time.Millisecond), TypeKeepalive)
	}
	t.Run("Update Request", func(t *testing.T) {
		p, tag := rawEstablished(t)
		if n := kas(p, tag); n != 0 {
			t.Fatalf("%d Keepalives in 3 s at the default 15 s timeout", n)
		}
		ur := AppendUpdateRequest(nil, tag, 5)
		ur = AppendLocatorList(ur, 9, []uint8{VerifyHBA}, []netip.Addr{p.ulid})
		p.only(p.send(p.ulid, mustFinish(t, AppendKeepaliveTimeout(ur, 3))), TypeUpdateAck)
		if n := kas(p, tag); n < 2 {
			t.Errorf("%d Keepalives in 3 s after the peer asked for 3 s, want ≥ 2", n)
		}
	})
	t.Run("R2", func(t *testing.T) {
		sa, sb, v := verifiedSites(1)
		e, err := NewEngine(simConfig(sa, v, 7, Timers{}))
		if err != nil {
			t.Fatal(err)
		}
		local, peer := sa.hosts[0].ULID, sb.hosts[0].ULID
		m, _ := ParseMessage(e.Initiate(simEpoch, local, peer).Packets[0].Payload)
		e.HandleControl(simEpoch, peer, local, mustFinish(t, AppendResponderValidator(AppendR1(nil, I1(m).InitiatorNonce(), 77), []byte("validator-16-oct"))))
		c := e.byTag[I1(m).InitiatorTag()]
		e.HandleControl(simEpoch, peer, local, mustFinish(t, AppendKeepaliveTimeout(AppendR2(nil, 0x5151, c.inonce), 3)))
		p := &rawPeer{t: t, e: e, now: simEpoch, ulid: peer, local: local}
		if n := kas(p, c.localTag); n < 2 {
			t.Errorf("%d Keepalives in 3 s after the R2 asked for 3 s, want ≥ 2", n)
		}
	})
}

// RFC 5534 §4.3: a context that explores without success for IdleTimeout
// is discarded, even while its host keeps sending.
func TestExploringContextDiscardedAfterIdleTimeout(t *testing.T) {
	timers := Timers{IdleTimeout: 2 * time.Minute}
	net, a, b, sa, sb, _ := twoSites(t, 41, 1, timers)
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establish(t, net, a, b, ua, ub)
	oneWay(net, a, ua, ub, 200*time.Millisecond, net.now.Add(10*time.Minute))
	net.runFor(2 * time.Second)
	net.rules = everywhere(linkRule{down: true})
	net.runFor(time.Minute)
	if a.state(ua, ub) != StateEstablished {
		t.Fatalf("context %v after one minute of exploring", a.state(ua, ub))
	}
	net.runFor(2 * time.Minute)
	// Discarded; the host's traffic may have started a new setup since.
	if st := a.state(ua, ub); st == StateEstablished {
		t.Errorf("context %v after exploring for IdleTimeout with the host still sending", st)
	}
}

// RFC 5533 §14: retransmission timeouts double per retry and are drawn
// from [0.5, 1.5] times that (probes: TestReapProbeBackoff).
func TestRetransmissionsRandomized(t *testing.T) {
	t.Run("I1", func(t *testing.T) {
		var ratios []float64
		for seed := byte(1); seed <= 5; seed++ {
			sa := newSite("a", 1)
			e, err := NewEngine(simConfig(sa, nil, seed, Timers{}))
			if err != nil {
				t.Fatal(err)
			}
			now := simEpoch
			e.Initiate(now, sa.hosts[0].ULID, netip.MustParseAddr("2001:db8:b1:1::1"))
			nominal := DefaultTimers().I1Timeout
			for range DefaultTimers().I1RetriesMax {
				next := e.NextDeadline()
				ratios = append(ratios, float64(next.Sub(now))/float64(nominal))
				now = next
				e.Tick(now)
				nominal *= 2
			}
		}
		checkJitter(t, ratios, 0.5, 1.5)
	})
}

// checkJitter asserts every ratio is within [lo, hi] and that they are not
// all the nominal value.
func checkJitter(t *testing.T, ratios []float64, lo, hi float64) {
	t.Helper()
	jittered := false
	for _, r := range ratios {
		if r < lo-1e-9 || r > hi+1e-9 {
			t.Errorf("timeout ratio %.3f outside [%.1f, %.1f]", r, lo, hi)
		}
		jittered = jittered || r < 0.99 || r > 1.01
	}
	if !jittered {
		t.Errorf("timeouts not randomized: ratios %v", ratios)
	}
}

// setupWithVerifiedPeer has B's engine (site b) answer an I1 from site
// a's host and returns a raw peer for it; the fake verifier knows the
// host's two locators.
func setupWithVerifiedPeer(t *testing.T) (*rawPeer, LocalHost) {
	sa, sb, v := verifiedSites(1)
	e, err := NewEngine(simConfig(sb, v, 42, Timers{}))
	if err != nil {
		t.Fatal(err)
	}
	h := sa.hosts[0]
	return &rawPeer{t: t, e: e, now: simEpoch, ulid: h.ULID, local: sb.hosts[0].ULID, tag: 0x1234}, h
}

// i2WithList is the I2 for an R1, carrying the peer's verified list.
func (p *rawPeer) i2WithList(rnonce uint32, v []byte, fii uint32, h LocalHost, sender netip.Addr) []byte {
	b := AppendResponderValidator(AppendI2(nil, p.tag, 0xbbbb, rnonce), v)
	if sender != h.ULID {
		b = AppendULIDPair(b, h.ULID, p.local)
	}
	if fii != 0 {
		b = AppendFII(b, fii)
	}
	b = AppendLocatorList(b, 5, []uint8{VerifyHBA, VerifyHBA}, h.Locators)
	return mustFinish(p.t, AppendCGAPDS(b, []byte(fakePDS(h.ULID))))
}

// RFC 5533 §7.10.1, §7.13: the Responder Validator binds the FII and the
// locator pair, so an I2 for another FII, or from another (verified)
// locator of the same peer, is dropped as a bad validator; RFC 5533 §7.2:
// an I2 from a locator outside the verified list is dropped.
func TestI2ValidatorBindsFIIAndLocators(t *testing.T) {
	t.Run("other FII", func(t *testing.T) {
		p, h := setupWithVerifiedPeer(t)
		rnonce, v := p.i1r1(7)
		if out := p.send(p.ulid, p.i2WithList(rnonce, v, 8, h, h.ULID)); len(out) != 0 || p.e.Len() != 0 || p.e.Stats().Drops[DropBadValidator] != 1 {
			t.Errorf("I2 for FII 8 on an R1 for FII 7: %d packets, %d contexts, %d bad_validator", len(out), p.e.Len(), p.e.Stats().Drops[DropBadValidator])
		}
		p.only(p.send(p.ulid, p.i2WithList(rnonce, v, 7, h, h.ULID)), TypeR2)
	})
	t.Run("other verified locator", func(t *testing.T) {
		p, h := setupWithVerifiedPeer(t)
		rnonce, v := p.i1r1(0)
		if out := p.send(h.Locators[1], p.i2WithList(rnonce, v, 0, h, h.Locators[1])); len(out) != 0 || p.e.Len() != 0 || p.e.Stats().Drops[DropBadValidator] != 1 {
			t.Errorf("I2 from the peer's other locator: %d packets, %d contexts, %d bad_validator", len(out), p.e.Len(), p.e.Stats().Drops[DropBadValidator])
		}
	})
	t.Run("locator outside the verified list", func(t *testing.T) {
		p, h := setupWithVerifiedPeer(t)
		p.ulid = netip.MustParseAddr("2001:db8:66:1::6") // I1 and I2 from here, naming h's ULID
		b := mustFinish(t, AppendULIDPair(AppendI1(nil, p.tag, 0xaaaa), h.ULID, p.local))
		r1 := R1(p.only(p.send(p.ulid, b), TypeR1))
		o, _, _ := Message(r1).Option(OptResponderValidator)
		v, _ := o.ResponderValidator()
		if out := p.send(p.ulid, p.i2WithList(r1.ResponderNonce(), v, 0, h, p.ulid)); len(out) != 0 || p.e.Len() != 0 || p.e.Stats().Drops[DropBadLocator] != 1 {
			t.Errorf("I2 from outside Ls(peer): %d packets, %d contexts, %d bad_locator", len(out), p.e.Len(), p.e.Stats().Drops[DropBadLocator])
		}
	})
}

// RFC 5533 §7.16, §12.4: an R2 is matched by the Initiator Nonce and the
// locators of our I2, like the R1: one from the peer's other (verified)
// locator or to our other locator is dropped.
func TestR2LookupNeedsNonceAndLocators(t *testing.T) {
	sa, sb, v := verifiedSites(1)
	local, peer := sa.hosts[0].ULID, sb.hosts[0].ULID
	for _, tc := range []struct {
		src, dst netip.Addr
		want     State
	}{
		{sb.hosts[0].Locators[1], local, StateI2Sent},
		{peer, sa.hosts[0].Locators[1], StateI2Sent},
		{peer, local, StateEstablished},
	} {
		e, err := NewEngine(simConfig(sa, v, 7, Timers{}))
		if err != nil {
			t.Fatal(err)
		}
		m, _ := ParseMessage(e.Initiate(simEpoch, local, peer).Packets[0].Payload)
		e.HandleControl(simEpoch, peer, local, mustFinish(t, AppendResponderValidator(AppendR1(nil, I1(m).InitiatorNonce(), 77), []byte("validator-16-oct"))))
		c := e.byTag[I1(m).InitiatorTag()]
		b := AppendLocatorList(AppendR2(nil, 0x5151, c.inonce), 3, []uint8{VerifyHBA, VerifyHBA}, sb.hosts[0].Locators)
		e.HandleControl(simEpoch, tc.src, tc.dst, mustFinish(t, AppendCGAPDS(b, []byte(fakePDS(peer)))))
		if ci, _ := e.Context(local, peer); ci.State != tc.want {
			t.Errorf("R2 %v → %v: state %v, want %v", tc.src, tc.dst, ci.State, tc.want)
		}
	}
}

// RFC 5533 §12.2: payload with the CT(local) of a context in I2-SENT
// means the peer has the context and our R2 is on its way or lost: send
// the I2 again (never R1bis).
func TestUnknownTagInI2SentRepeatsI2(t *testing.T) {
	sa, sb, v := verifiedSites(1)
	local, peer := sa.hosts[0].ULID, sb.hosts[0].ULID
	e, err := NewEngine(simConfig(sa, v, 7, Timers{}))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := ParseMessage(e.Initiate(simEpoch, local, peer).Packets[0].Payload)
	tag := I1(m).InitiatorTag()
	e.HandleControl(simEpoch, peer, local, mustFinish(t, AppendResponderValidator(AppendR1(nil, I1(m).InitiatorNonce(), 77), []byte("validator-16-oct"))))
	a := e.HandleUnknownTag(simEpoch.Add(time.Millisecond), peer, local, tag)
	if len(a.Packets) != 1 {
		t.Fatalf("%d packets, want the I2 again", len(a.Packets))
	}
	if m, _ := ParseMessage(a.Packets[0].Payload); m.Type() != TypeI2 || I2(m).InitiatorTag() != tag || I2(m).ResponderNonce() != 77 {
		t.Errorf("answered %v, want the I2 (tag %#x, responder nonce 77)", m.Type(), tag)
	}
}

// RFC 5533 §10.4: an Update Request marking the current peer locator
// BROKEN makes the receiver explore itself (not only the sender).
func TestUpdateBrokenPeerLocatorStartsExploration(t *testing.T) {
	p, h := setupWithVerifiedPeer(t)
	rnonce, v := p.i1r1(0)
	tag := R2(p.only(p.send(p.ulid, p.i2WithList(rnonce, v, 0, h, h.ULID)), TypeR2)).ResponderTag()
	p.now = p.now.Add(time.Second)
	ur := AppendUpdateRequest(nil, tag, 5)
	ur = AppendLocatorPreferences(ur, 5, 1, []LocatorPreference{{Flags: FlagBroken}, {}})
	a := p.e.HandleControl(p.now, p.ulid, p.local, mustFinish(t, ur))
	probes, started := 0, false
	for _, pk := range a.Packets {
		if m, _ := ParseMessage(pk.Payload); m.Type() == TypeProbe && Probe(m).Sta() == StaExploring {
			probes++
		}
	}
	for _, ev := range a.Events {
		started = started || ev.Kind == EventExplorationStarted
	}
	if probes == 0 || !started {
		t.Errorf("BROKEN current peer locator: %d Probe(Exploring), exploration event %v", probes, started)
	}
}

// RFC 5533 §8: an ICMPv6 Destination Unreachable or Time Exceeded
// quoting our payload on the current pair starts exploration at once;
// one about another pair does not.
func TestICMPUnreachableStartsExploration(t *testing.T) {
	p, h := setupWithVerifiedPeer(t)
	rnonce, v := p.i1r1(0)
	p.only(p.send(p.ulid, p.i2WithList(rnonce, v, 0, h, h.ULID)), TypeR2)
	c := p.e.byPair[pairKey{p.local, p.ulid, 0}]
	quote := func(src, dst netip.Addr) []byte {
		q := make([]byte, IPv6HeaderLen+8)
		PutIPv6Header(q, src, dst, ProtocolNumber, 8)
		PutPayloadHeader(q[IPv6HeaderLen:], 59, c.peerTag)
		return q
	}
	p.now = p.now.Add(time.Second)
	if a := p.e.HandleICMP(p.now, icmpDestUnreach, 0, quote(c.lp, h.Locators[1])); len(a.Packets) != 0 {
		t.Errorf("ICMP about another pair: %d packets", len(a.Packets))
	}
	a := p.e.HandleICMP(p.now, icmpDestUnreach, 0, quote(c.lp, c.pp))
	if len(a.Packets) == 0 || c.reap != StaExploring {
		t.Errorf("ICMP unreachable on the current pair: %d packets, REAP %v", len(a.Packets), c.reap)
	}
}

// RFC 5534 §4.3: the pairs to probe, in order: usable local locators
// only (uplink up, not drained) and peer locators not BROKEN; known-good
// site paths first, then pairs sharing no locator with the current pair,
// then those sharing one, lower peer priority value first; known-broken
// paths and the current pair last.
func TestProbeCandidateOrder(t *testing.T) {
	type pair struct{ l, p int } // local and peer locator index
	for _, tc := range []struct {
		name  string
		setup func(e *Engine, c *context)
		want  []pair
	}{
		{"default", func(*Engine, *context) {}, []pair{{1, 1}, {0, 1}, {1, 0}, {0, 0}}},
		{"known-good path first", func(e *Engine, c *context) {
			e.pathFor(c.host, c.host.locs[0], c.peer.locs[1]).goodAt = 5
		}, []pair{{0, 1}, {1, 1}, {1, 0}, {0, 0}}},
		{"known-broken path last", func(e *Engine, c *context) {
			e.pathFor(c.host, c.host.locs[1], c.peer.locs[1]).brokenAt = 5
		}, []pair{{0, 1}, {1, 0}, {0, 0}, {1, 1}}},
		{"BROKEN peer locator left out", func(e *Engine, c *context) {
			c.peer.prefs = []LocatorPreference{{}, {Flags: FlagBroken}}
		}, []pair{{1, 0}, {0, 0}}},
		{"peer priority", func(e *Engine, c *context) {
			c.peer.prefs = []LocatorPreference{{Priority: 0}, {Priority: 50}}
		}, []pair{{1, 0}, {1, 1}, {0, 1}, {0, 0}}},
		{"down uplink left out", func(e *Engine, c *context) {
			e.down[c.host.uplink[1]] = true
		}, []pair{{0, 1}, {0, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, h := setupWithVerifiedPeer(t)
			rnonce, v := p.i1r1(0)
			p.only(p.send(p.ulid, p.i2WithList(rnonce, v, 0, h, h.ULID)), TypeR2)
			c := p.e.byPair[pairKey{p.local, p.ulid, 0}]
			if c.lp != c.host.locs[0] || c.pp != c.peer.locs[0] {
				t.Fatalf("current pair %v → %v, want the ULIDs", c.lp, c.pp)
			}
			tc.setup(p.e, c)
			var got []pair
			for _, k := range p.e.candidates(c) {
				got = append(got, pair{k.li, k.pi})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("candidates %v, want %v", got, tc.want)
			}
		})
	}
}

// RFC 5533 §10.2: Update Request retransmissions back off up to
// MAX_UPDATE_TIMEOUT and then keep that pace.
func TestUpdateRetransmissionCapped(t *testing.T) {
	sb := newSite("b", 1)
	e, err := NewEngine(simConfig(sb, nil, 42, Timers{UpdateTimeout: time.Second, MaxUpdateTimeout: 3 * time.Second, IdleTimeout: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, e: e, now: simEpoch, ulid: netip.MustParseAddr("2001:db8:c1:1::5"), local: sb.hosts[0].ULID, tag: 0x1234}
	rnonce, v := p.i1r1(0)
	p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)
	p.e.SetLocatorPreference(p.now, p.local, LocatorPreference{Priority: 1})
	last, n := p.now, 0
	for end := p.now.Add(time.Minute); p.now.Before(end); p.now = p.now.Add(10 * time.Millisecond) {
		for _, pk := range p.e.Tick(p.now).Packets {
			if m, _ := ParseMessage(pk.Payload); m.Type() == TypeUpdateRequest {
				if gap := p.now.Sub(last); gap > 3*time.Second+10*time.Millisecond {
					t.Errorf("retransmission %d after %v, more than MAX_UPDATE_TIMEOUT 3 s", n+1, gap)
				}
				last = p.now
				n++
			}
		}
	}
	if n < 60/3 {
		t.Errorf("%d retransmissions in a minute, want ≥ 20 at the 3 s cap", n)
	}
}

// RFC 5534 §4.1, §6.2: while payload is received and nothing sent,
// Keepalives go every Keepalive Timeout/3 and one more exactly when the
// Keepalive timer expires, none after it.
func TestKeepaliveAtExpiryAndNoneAfter(t *testing.T) {
	sb := newSite("b", 1)
	e, err := NewEngine(simConfig(sb, nil, 42, Timers{KeepaliveTimeout: 4 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, e: e, now: simEpoch, ulid: netip.MustParseAddr("2001:db8:c1:1::5"), local: sb.hosts[0].ULID, tag: 0x1234}
	rnonce, v := p.i1r1(0)
	tag := R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)).ResponderTag()
	p.now = p.now.Add(time.Second)
	recv := p.now
	p.e.ObserveTraffic(p.now, tag, time.Time{}, recv)
	var at []time.Duration
	for range 20 {
		next := p.e.NextDeadline()
		if next.IsZero() || next.Sub(recv) > 20*time.Second {
			break
		}
		p.now = next
		for _, pk := range p.e.Tick(p.now).Packets {
			if m, _ := ParseMessage(pk.Payload); m.Type() == TypeKeepalive {
				at = append(at, p.now.Sub(recv))
			}
		}
	}
	expiry, atExpiry := 4*time.Second, false
	prev := time.Duration(0)
	for _, d := range at {
		if d-prev > expiry/3 || d > expiry {
			t.Errorf("Keepalives at %v after the payload: a gap above %v or one after the expiry at %v", at, expiry/3, expiry)
			break
		}
		atExpiry = atExpiry || d == expiry
		prev = d
	}
	if !atExpiry {
		t.Errorf("Keepalives at %v after the payload, none at the expiry %v", at, expiry)
	}
}

// RFC 5533 §10.4: Locator Preferences sent with a new Locator List must
// match its generation (Error 3, Pointer at the preferences' generation)
// and its element count (Error 4, Pointer at the option's Length);
// nothing is applied.
func TestUpdateListWithPreferencesErrors(t *testing.T) {
	p, tag := rawEstablished(t)
	for _, tc := range []struct {
		name   string
		gen    uint32
		prefs  []LocatorPreference
		code   ErrorCode
		offset int
	}{
		{"generation mismatch", 8, []LocatorPreference{{}}, CodeGenerationMismatch, LocatorPreferencesGenerationOffset},
		{"element count", 9, []LocatorPreference{{}, {}}, CodeElementCountInvalid, LocatorPreferencesLengthOffset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.now = p.now.Add(time.Second) // the Error rate limit
			ur := AppendUpdateRequest(nil, tag, 5)
			ur = AppendLocatorList(ur, 9, []uint8{VerifyHBA}, []netip.Addr{p.ulid})
			ur = mustFinish(t, AppendLocatorPreferences(ur, tc.gen, 1, tc.prefs))
			em := ErrorMessage(p.only(p.send(p.ulid, ur), TypeError))
			m, _ := ParseMessage(ur)
			_, poff, _ := m.Option(OptLocatorPreferences)
			if em.Code() != tc.code || int(em.Pointer()) != IPv6HeaderLen+poff+tc.offset {
				t.Errorf("Error code %v pointer %d, want %v at %d", em.Code(), em.Pointer(), tc.code, IPv6HeaderLen+poff+tc.offset)
			}
			if c := p.e.byTag[tag]; c.peer != nil && c.peer.hasGen {
				t.Error("the refused list was applied")
			}
		})
	}
}

package shim6

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// Tests that drive one engine with hand-built messages, playing the peer.

type rawPeer struct {
	t        *testing.T
	e        *Engine
	now      time.Time
	ulid     netip.Addr // the peer's ULID (= its locator here)
	local    netip.Addr // the engine's host
	tag      ContextTag
	gotR2Tag ContextTag
}

func newRawPeer(t *testing.T, v Verifier) (*rawPeer, site) {
	sb := newSite("b", 1)
	e, err := NewEngine(simConfig(sb, v, 42, Timers{}))
	if err != nil {
		t.Fatal(err)
	}
	return &rawPeer{t: t, e: e, now: simEpoch, ulid: netip.MustParseAddr("2001:db8:c1:1::5"),
		local: sb.hosts[0].ULID, tag: 0x1234}, sb
}

// send delivers msg from src and returns the engine's answers.
func (p *rawPeer) send(src netip.Addr, msg []byte) []OutPacket {
	a := p.e.HandleControl(p.now, src, p.local, msg)
	out := make([]OutPacket, len(a.Packets))
	for i, x := range a.Packets {
		out[i] = OutPacket{Src: x.Src, Dst: x.Dst, Payload: append([]byte(nil), x.Payload...)}
	}
	return out
}

func (p *rawPeer) only(out []OutPacket, want Type) Message {
	p.t.Helper()
	if len(out) != 1 {
		p.t.Fatalf("%d packets, want one %v", len(out), want)
	}
	m, err := ParseMessage(out[0].Payload)
	if err != nil {
		p.t.Fatal(err)
	}
	if m.Type() != want {
		p.t.Fatalf("got %v, want %v", m.Type(), want)
	}
	return m
}

func mustFinish(t *testing.T, b []byte) []byte {
	t.Helper()
	if err := FinishMessage(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// i1r1 runs I1 → R1 and returns the R1's nonce and validator.
func (p *rawPeer) i1r1(fii uint32) (uint32, []byte) {
	b := AppendI1(nil, p.tag, 0xaaaa)
	if fii != 0 {
		b = mustFinish(p.t, AppendFII(b, fii))
	}
	r1 := R1(p.only(p.send(p.ulid, b), TypeR1))
	if r1.InitiatorNonce() != 0xaaaa {
		p.t.Fatalf("R1 nonce %#x", r1.InitiatorNonce())
	}
	o, _, ok := Message(r1).Option(OptResponderValidator)
	if !ok {
		p.t.Fatal("R1 without validator")
	}
	v, _ := o.ResponderValidator()
	return r1.ResponderNonce(), append([]byte(nil), v...)
}

func (p *rawPeer) i2(rnonce uint32, v []byte, fii uint32) []byte {
	b := AppendI2(nil, p.tag, 0xbbbb, rnonce)
	b = AppendResponderValidator(b, v)
	if fii != 0 {
		b = AppendFII(b, fii)
	}
	return mustFinish(p.t, b)
}

func TestForgedAndReplayedMessages(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	rnonce, v := p.i1r1(0)
	if p.e.Len() != 0 {
		t.Fatal("R1 allocated state")
	}

	t.Run("forged validator", func(t *testing.T) {
		bad := append([]byte(nil), v...)
		bad[0] ^= 1
		if out := p.send(p.ulid, p.i2(rnonce, bad, 0)); len(out) != 0 || p.e.Len() != 0 {
			t.Fatalf("forged I2 answered: %d packets, %d contexts", len(out), p.e.Len())
		}
	})
	t.Run("validator for another tag", func(t *testing.T) {
		b := AppendI2(nil, p.tag+1, 0xbbbb, rnonce)
		b = mustFinish(t, AppendResponderValidator(b, v))
		if out := p.send(p.ulid, b); len(out) != 0 || p.e.Len() != 0 {
			t.Fatal("I2 with a validator made for another tag accepted")
		}
	})
	t.Run("validator from another locator", func(t *testing.T) {
		other := netip.MustParseAddr("2001:db8:c1:1::6")
		b := AppendI2(nil, p.tag, 0xbbbb, rnonce)
		b = AppendResponderValidator(b, v)
		b = mustFinish(t, AppendULIDPair(b, p.ulid, p.local))
		if out := p.send(other, b); len(out) != 0 || p.e.Len() != 0 {
			t.Fatal("I2 from another locator accepted")
		}
	})
	t.Run("forged R1", func(t *testing.T) {
		b := AppendR1(nil, 0x77777777, 1)
		b = mustFinish(t, AppendResponderValidator(b, v))
		if out := p.send(p.ulid, b); len(out) != 0 {
			t.Fatal("unsolicited R1 answered")
		}
		if p.e.Stats().Drops[DropNoContext] == 0 {
			t.Error("unsolicited R1 not counted")
		}
	})
	t.Run("valid I2", func(t *testing.T) {
		r2 := R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2))
		if r2.InitiatorNonce() != 0xbbbb {
			t.Errorf("R2 echoes %#x", r2.InitiatorNonce())
		}
		ci, ok := p.e.Context(p.local, p.ulid)
		if !ok || ci.State != StateEstablished || ci.PeerTag != p.tag || ci.LocalTag != r2.ResponderTag() {
			t.Fatalf("context %+v", ci)
		}
	})
	t.Run("replay within lifetime", func(t *testing.T) {
		// Same I2 again (retransmission or replay): R2 again, no new state.
		p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)
		if p.e.Len() != 1 {
			t.Fatalf("%d contexts", p.e.Len())
		}
	})
	t.Run("replay after lifetime", func(t *testing.T) {
		p.e.Teardown(p.now, p.local, p.ulid)
		p.now = p.now.Add(DefaultTimers().ValidatorMinLifetime + 2*DefaultTimers().NonceInterval)
		if out := p.send(p.ulid, p.i2(rnonce, v, 0)); len(out) != 0 || p.e.Len() != 0 {
			t.Fatal("stale I2 accepted")
		}
		if p.e.Stats().Drops[DropStaleNonce] != 1 {
			t.Errorf("stale drops %d", p.e.Stats().Drops[DropStaleNonce])
		}
	})
}

func TestValidatorRotationGrace(t *testing.T) {
	// A nonce issued just before a secret rotation is still accepted
	// with the previous secret until ValidatorMinLifetime has passed.
	tm := DefaultTimers()
	v := newValidators([]byte("s"), tm)
	t0 := time.Unix(0, 0).Add(tm.SecretRotation - time.Second)
	n := v.nonce(t0)
	a := netip.MustParseAddr("2001:db8::1")
	want := v.r1(nil, n, 5, a, a, a, a, 0)
	for _, dt := range []time.Duration{0, 2 * time.Second, tm.ValidatorMinLifetime} {
		now := t0.Add(dt)
		if !v.fresh(now, n) {
			t.Errorf("+%v: nonce not fresh", dt)
		}
		if got := v.r1(nil, n, 5, a, a, a, a, 0); !v.check(got, want) {
			t.Errorf("+%v: validator changed", dt)
		}
	}
	if v.fresh(t0.Add(tm.ValidatorMinLifetime+2*tm.NonceInterval), n) {
		t.Error("nonce fresh after the lifetime")
	}
	// Across the rotation the secret differs for new nonces.
	n2 := v.nonce(t0.Add(2 * time.Second))
	if v.r1(nil, n2, 5, a, a, a, a, 0)[0] == want[0] && string(v.r1(nil, n2, 5, a, a, a, a, 0)) == string(want) {
		t.Error("same validator after rotation")
	}
	// An HA twin with the same site secret accepts it too.
	twin := newValidators([]byte("s"), tm)
	if !twin.check(twin.r1(nil, n, 5, a, a, a, a, 0), want) {
		t.Error("twin with the same secret disagrees")
	}
	other := newValidators([]byte("t"), tm)
	if other.check(other.r1(nil, n, 5, a, a, a, a, 0), want) {
		t.Error("another secret accepts the validator")
	}
}

func TestForkedInstance(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	for _, fii := range []uint32{0, 7} {
		p.tag = 0x1000 + ContextTag(fii) // the peer allocates a tag per context
		rnonce, v := p.i1r1(fii)
		p.only(p.send(p.ulid, p.i2(rnonce, v, fii)), TypeR2)
	}
	if p.e.Len() != 2 {
		t.Fatalf("%d contexts, want 2 (FII 0 and 7)", p.e.Len())
	}
	seen := map[uint32]ContextTag{}
	for _, ci := range p.e.Contexts() {
		seen[ci.FII] = ci.LocalTag
	}
	if len(seen) != 2 || seen[0] == seen[7] {
		t.Errorf("forked contexts %v: need distinct tags", seen)
	}
}

func TestErrorMessages(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	t.Run("unknown type", func(t *testing.T) {
		b := AppendKeepalive(nil, 1)
		b[2] = 100 // unknown type 100
		binary.BigEndian.PutUint16(b[4:], 0)
		binary.BigEndian.PutUint16(b[4:], ControlChecksum(b))
		em := ErrorMessage(p.only(p.send(p.ulid, b), TypeError))
		if em.Code() != CodeUnknownType || em.Pointer() != IPv6HeaderLen+UnknownTypeOffset {
			t.Errorf("code %v pointer %d", em.Code(), em.Pointer())
		}
		q := em.Packet()
		if q[0]>>4 != 6 || string(q[IPv6HeaderLen:IPv6HeaderLen+len(b)]) != string(b) {
			t.Error("quoted packet is not the IPv6 packet that carried the message")
		}
	})
	t.Run("unknown critical option", func(t *testing.T) {
		b := AppendI1(nil, 9, 9)
		b = mustFinish(t, AppendOption(b, 999, true, []byte{1, 2, 3, 4}))
		em := ErrorMessage(p.only(p.send(p.ulid, b), TypeError))
		if em.Code() != CodeCriticalOption || em.Pointer() != IPv6HeaderLen+16 {
			t.Errorf("code %v pointer %d", em.Code(), em.Pointer())
		}
	})
	t.Run("unknown non-critical option ignored", func(t *testing.T) {
		b := AppendI1(nil, 9, 9)
		b = mustFinish(t, AppendOption(b, 999, false, []byte{1, 2, 3, 4}))
		p.only(p.send(p.ulid, b), TypeR1)
	})
	t.Run("bad checksum silent", func(t *testing.T) {
		b := AppendI1(nil, 9, 9)
		b[5] ^= 1
		if out := p.send(p.ulid, b); len(out) != 0 {
			t.Error("answered a message with a bad checksum")
		}
	})
	t.Run("multicast source silent", func(t *testing.T) {
		if out := p.send(netip.MustParseAddr("ff02::1"), AppendI1(nil, 9, 9)); len(out) != 0 {
			t.Error("answered a multicast source")
		}
	})
	t.Run("unknown tag control → R1bis", func(t *testing.T) {
		r := R1bis(p.only(p.send(p.ulid, AppendKeepalive(nil, 0x4242)), TypeR1bis))
		if r.PacketTag() != 0x4242 {
			t.Errorf("packet tag %#x", r.PacketTag())
		}
	})
	t.Run("unknown tag R2 silent", func(t *testing.T) {
		if out := p.send(p.ulid, AppendR2(nil, 5, 0x31337)); len(out) != 0 {
			t.Error("answered an R2 for nothing")
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		sent := 0
		for range 1000 {
			sent += len(p.send(p.ulid, AppendKeepalive(nil, 0x4242)))
		}
		if sent > 100 {
			t.Errorf("%d R1bis in one instant, want ≤ MaxErrorsPerSecond", sent)
		}
	})
}

func TestNoSupportByICMP(t *testing.T) {
	sa := newSite("a", 1)
	e, err := NewEngine(simConfig(sa, nil, 3, Timers{}))
	if err != nil {
		t.Fatal(err)
	}
	ua, peer := sa.hosts[0].ULID, netip.MustParseAddr("2001:db8:ff::9")
	a := e.Initiate(simEpoch, ua, peer)
	if len(a.Packets) != 1 {
		t.Fatal("no I1")
	}
	quoted := AppendIPv6Control(nil, a.Packets[0].Src, a.Packets[0].Dst, a.Packets[0].Payload)
	// A Parameter Problem that quotes something else changes nothing.
	other := append([]byte(nil), quoted...)
	other[IPv6HeaderLen+7] ^= 0xff // another initiator tag
	e.HandleICMP(simEpoch, 4, 1, other)
	if ci, _ := e.Context(ua, peer); ci.State != StateI1Sent {
		t.Fatalf("state %v", ci.State)
	}
	a = e.HandleICMP(simEpoch, 4, 1, quoted)
	if ci, _ := e.Context(ua, peer); ci.State != StateNoSupport {
		t.Fatalf("state %v after Parameter Problem, want NO-SUPPORT", ci.State)
	}
	if len(a.Events) != 1 || a.Events[0].Kind != EventNoSupport {
		t.Errorf("events %+v", a.Events)
	}
	// Held for ICMP_HOLDDOWN_TIME, then IDLE.
	at := a.NextDeadline
	if want := simEpoch.Add(DefaultTimers().ICMPHolddownTime); !at.Equal(want) {
		t.Errorf("hold-down until %v, want %v", at, want)
	}
	e.HandleTraffic(simEpoch.Add(time.Minute), ua, peer)
	if ci, _ := e.Context(ua, peer); ci.State != StateNoSupport {
		t.Errorf("traffic during NO-SUPPORT changed the state to %v", ci.State)
	}
	e.Tick(at)
	if e.Len() != 0 {
		t.Errorf("NO-SUPPORT not expired")
	}
}

func TestNoSupportByErrorMessage(t *testing.T) {
	sa := newSite("a", 1)
	e, _ := NewEngine(simConfig(sa, nil, 3, Timers{}))
	ua, peer := sa.hosts[0].ULID, netip.MustParseAddr("2001:db8:ff::9")
	a := e.Initiate(simEpoch, ua, peer)
	quoted := AppendIPv6Control(nil, a.Packets[0].Src, a.Packets[0].Dst, a.Packets[0].Payload)
	em := AppendError(nil, CodeUnknownType, IPv6HeaderLen+UnknownTypeOffset, quoted)
	e.HandleControl(simEpoch, peer, ua, em)
	if ci, _ := e.Context(ua, peer); ci.State != StateNoSupport {
		t.Fatalf("state %v, want NO-SUPPORT", ci.State)
	}
}

func TestContextConfusion(t *testing.T) {
	// Two ULID pairs whose peer reuses one tag with an overlapping locator
	// set: the older context must stop (RFC 5533 §7.6, §7.15).
	otherULID := netip.MustParseAddr("2001:db8:c9::1")
	p, _ := newRawPeer(t, &fakeVerifier{sets: map[netip.Addr][]netip.Addr{}})
	p.e.ver.(*fakeVerifier).sets[otherULID] = []netip.Addr{otherULID, p.ulid}
	rnonce, v := p.i1r1(0)
	p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)
	old, _ := p.e.Context(p.local, p.ulid)
	// The same peer locator now belongs to another ULID with the same tag.
	b := AppendI1(nil, p.tag, 0xaaaa)
	b = mustFinish(t, AppendULIDPair(b, otherULID, p.local))
	r1 := R1(p.only(p.send(p.ulid, b), TypeR1))
	o, _, _ := Message(r1).Option(OptResponderValidator)
	v2, _ := o.ResponderValidator()
	i2 := AppendI2(nil, p.tag, 0xcccc, r1.ResponderNonce())
	i2 = AppendResponderValidator(i2, v2)
	i2 = AppendULIDPair(i2, otherULID, p.local)
	i2 = AppendLocatorList(i2, 1, []uint8{VerifyHBA, VerifyHBA}, []netip.Addr{otherULID, p.ulid})
	i2 = mustFinish(t, AppendCGAPDS(i2, []byte(fakePDS(otherULID))))
	a := p.e.HandleControl(p.now, p.ulid, p.local, i2)
	if len(a.Packets) != 1 || Type(a.Packets[0].Payload[2]) != TypeR2 {
		t.Fatalf("second I2 not answered with R2: %d packets", len(a.Packets))
	}
	if _, ok := p.e.Context(p.local, p.ulid); ok {
		t.Error("old context kept although its CT(peer) and locator were reused")
	}
	removed := false
	for _, u := range a.Updates {
		if u.Removed && u.LocalTag == old.LocalTag {
			removed = true
		}
	}
	if !removed {
		t.Error("fast-table entry of the confused context not removed")
	}
}

func TestEFailedExitOnPeerI1(t *testing.T) {
	// E-FAILED is left after NO_R1_HOLDDOWN_TIME (TestSimEFailedAfterSilence)
	// or as soon as the peer itself starts a context: it speaks Shim6.
	p, _ := newRawPeer(t, nil)
	now := p.now
	p.e.Initiate(now, p.local, p.ulid)
	for i := 0; i < 400 && p.e.Len() > 0; i++ {
		now = now.Add(time.Second)
		p.e.Tick(now)
		if ci, _ := p.e.Context(p.local, p.ulid); ci.State == StateEFailed {
			break
		}
	}
	if ci, _ := p.e.Context(p.local, p.ulid); ci.State != StateEFailed {
		t.Fatalf("state %v, want E-FAILED", ci.State)
	}
	p.now = now
	rnonce, v := p.i1r1(0)
	if p.e.Len() != 0 {
		t.Fatal("E-FAILED entry kept after the peer's I1")
	}
	p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)
	if ci, _ := p.e.Context(p.local, p.ulid); ci.State != StateEstablished {
		t.Fatalf("state %v", ci.State)
	}
}

// establishRaw runs a full exchange with a locator list and returns the
// engine's CT(local).
func (p *rawPeer) establishRaw(locs []netip.Addr, gen uint32) ContextTag {
	rnonce, v := p.i1r1(0)
	b := AppendI2(nil, p.tag, 0xbbbb, rnonce)
	b = AppendResponderValidator(b, v)
	b = AppendLocatorList(b, gen, make([]uint8, len(locs)), locs)
	b = AppendCGAPDS(b, []byte(fakePDS(p.ulid)))
	b = AppendKeepaliveTimeout(b, 40)
	r2 := R2(p.only(p.send(p.ulid, mustFinish(p.t, b)), TypeR2))
	return r2.ResponderTag()
}

func TestUpdatePreferenceErrors(t *testing.T) {
	fv := &fakeVerifier{sets: map[netip.Addr][]netip.Addr{}}
	p, _ := newRawPeer(t, fv)
	locs := []netip.Addr{p.ulid, netip.MustParseAddr("2001:db8:c2:1::5")}
	fv.sets[p.ulid] = locs
	tag := p.establishRaw(locs, 10)
	c := p.e.byTag[tag]
	if c.kaTimeout != 40*time.Second {
		t.Errorf("Keepalive Timeout option not applied: %v", c.kaTimeout)
	}
	prefs := []LocatorPreference{{Flags: FlagBroken}, {}}
	for _, tc := range []struct {
		name string
		gen  uint32
		n    int
		code ErrorCode
		ptr  int // from the option's Type field
	}{
		{"generation mismatch", 11, 2, CodeGenerationMismatch, LocatorPreferencesGenerationOffset},
		{"element count", 10, 1, CodeElementCountInvalid, LocatorPreferencesLengthOffset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := AppendUpdateRequest(nil, tag, 0x55)
			optAt := len(b)
			b = mustFinish(t, AppendLocatorPreferences(b, tc.gen, 1, prefs[:tc.n]))
			em := ErrorMessage(p.only(p.send(p.ulid, b), TypeError))
			if em.Code() != tc.code || int(em.Pointer()) != IPv6HeaderLen+optAt+tc.ptr {
				t.Errorf("code %v pointer %d, want %v %d", em.Code(), em.Pointer(), tc.code, IPv6HeaderLen+optAt+tc.ptr)
			}
			if p.e.byTag[tag].peer.broken(0) {
				t.Error("rejected preferences applied")
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		b := AppendUpdateRequest(nil, tag, 0x56)
		b = mustFinish(t, AppendLocatorPreferences(b, 10, 1, prefs))
		ua := UpdateAck(p.only(p.send(p.ulid, b)[:1], TypeUpdateAck))
		if ua.RequestNonce() != 0x56 || ua.ReceiverTag() != p.tag {
			t.Errorf("ack nonce %#x tag %#x", ua.RequestNonce(), ua.ReceiverTag())
		}
		if !p.e.byTag[tag].peer.broken(0) {
			t.Error("BROKEN flag not applied")
		}
	})
	t.Run("from a locator outside Ls(peer) → R1bis", func(t *testing.T) {
		b := mustFinish(t, AppendUpdateRequest(nil, tag, 0x57))
		p.only(p.send(netip.MustParseAddr("2001:db8:c3::1"), b), TypeR1bis)
	})
}

func TestTagSpaceExhaustion(t *testing.T) {
	sa := newSite("a", 1)
	cfg := simConfig(sa, nil, 1, Timers{})
	cfg.TagBits = 2 // three usable tags
	e, _ := NewEngine(cfg)
	for i := range 5 {
		e.Initiate(simEpoch, sa.hosts[0].ULID, netip.AddrFrom16([16]byte{0x20, 0x01, 0xd, 0xb8, 0xcc, 15: byte(i + 1)}))
	}
	if e.Len() != 3 {
		t.Errorf("%d contexts with 3 tags available", e.Len())
	}
	seen := map[ContextTag]bool{}
	for _, ci := range e.Contexts() {
		if seen[ci.LocalTag] || ci.LocalTag == 0 || ci.LocalTag > 3 {
			t.Errorf("tag %#x reused or out of range", ci.LocalTag)
		}
		seen[ci.LocalTag] = true
	}
}

func TestPeerBrokenLocatorAtSetup(t *testing.T) {
	// The peer's I2 marks the locator it sends from as BROKEN: the engine
	// starts probing other pairs at once (RFC 5533 §5.15.3).
	fv := &fakeVerifier{sets: map[netip.Addr][]netip.Addr{}}
	p, _ := newRawPeer(t, fv)
	locs := []netip.Addr{p.ulid, netip.MustParseAddr("2001:db8:c2:1::5")}
	fv.sets[p.ulid] = locs
	rnonce, v := p.i1r1(0)
	b := AppendI2(nil, p.tag, 0xbbbb, rnonce)
	b = AppendResponderValidator(b, v)
	b = AppendLocatorList(b, 3, []uint8{VerifyHBA, VerifyHBA}, locs)
	b = AppendLocatorPreferences(b, 3, 1, []LocatorPreference{{Flags: FlagBroken}, {}})
	b = AppendCGAPDS(b, []byte(fakePDS(p.ulid)))
	out := p.send(p.ulid, mustFinish(t, b))
	if len(out) != 2 {
		t.Fatalf("%d packets, want R2 and a Probe", len(out))
	}
	pr, err := ParseMessage(out[1].Payload)
	if err != nil || pr.Type() != TypeProbe || out[1].Dst != locs[1] {
		t.Fatalf("second packet %v to %v, want a Probe to %v", pr.Type(), out[1].Dst, locs[1])
	}
	if p.e.Stats().Drops != ([NumDropReasons]uint64{}) {
		t.Errorf("drops %v", p.e.Stats().Drops)
	}
	if _, _, held := p.e.PeerHeld(p.local, p.ulid); held {
		t.Error("established pair reported as held")
	}
}

// pointsAtMethod reports whether ptr (from the IPv6 header of the quoted
// packet q) is the method octet of locator i of the message's Locator List.
func pointsAtMethod(t *testing.T, q []byte, ptr, i int) bool {
	t.Helper()
	m, err := ParseMessage(q[IPv6HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	o, off, ok := m.Option(OptLocatorList)
	if !ok {
		return false
	}
	ll, _ := o.LocatorList()
	return ptr == IPv6HeaderLen+off+OptionHeaderLen+ll.MethodOffset(i)
}

func TestOversizedInputs(t *testing.T) {
	sa := newSite("a", 1)
	t.Run("R1 with a huge validator", func(t *testing.T) {
		e, _ := NewEngine(simConfig(sa, nil, 1, Timers{}))
		peer := netip.MustParseAddr("2001:db8:c1::1")
		a := e.Initiate(simEpoch, sa.hosts[0].ULID, peer)
		i1, _ := ParseMessage(a.Packets[0].Payload)
		r1 := AppendR1(nil, I1(i1).InitiatorNonce(), 1)
		r1 = mustFinish(t, AppendResponderValidator(r1, make([]byte, 1500)))
		out := e.HandleControl(simEpoch, peer, sa.hosts[0].ULID, r1)
		if len(out.Packets) != 0 || e.Stats().Drops[DropBadValidatorLen] != 1 {
			t.Errorf("%d packets, drops %v", len(out.Packets), e.Stats().Drops)
		}
		if ci, _ := e.Context(sa.hosts[0].ULID, peer); ci.State != StateI1Sent {
			t.Errorf("state %v", ci.State)
		}
	})
	t.Run("too many locators", func(t *testing.T) {
		h := sa.hosts[0]
		for i := range 40 {
			h.Locators = append(h.Locators, netip.AddrFrom16([16]byte{0x20, 0x01, 0xd, 0xb8, 0xa2, 15: byte(i + 10)}))
		}
		cfg := simConfig(sa, nil, 1, Timers{})
		cfg.Hosts = []LocalHost{h}
		if _, err := NewEngine(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("err %v, want ErrConfig", err)
		}
	})
	t.Run("PDS too large for 1280 octets", func(t *testing.T) {
		h := sa.hosts[0]
		h.PDS = make([]byte, 1100)
		cfg := simConfig(sa, nil, 1, Timers{})
		cfg.Hosts = []LocalHost{h}
		if _, err := NewEngine(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("err %v, want ErrConfig", err)
		}
	})
}

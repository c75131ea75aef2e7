package shim6

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// Corner cases of RFC 5533 the engine must get right: forked contexts,
// I2bis tags, I2 in I1-SENT, Update Request nonces, R1bis lookup and the
// bounds on path and tag state.

// tickUntil calls Tick at every deadline until an emitted packet has type
// want, and returns that packet (at most n ticks).
func tickUntil(t *testing.T, e *Engine, now *time.Time, want Type, n int) OutPacket {
	t.Helper()
	for range n {
		d := e.NextDeadline()
		if d.IsZero() {
			break
		}
		*now = d
		for _, pk := range e.Tick(d).Packets {
			if m, err := ParseMessage(pk.Payload); err == nil && m.Type() == want {
				return OutPacket{Src: pk.Src, Dst: pk.Dst, Payload: append([]byte(nil), pk.Payload...)}
			}
		}
	}
	t.Fatalf("no %v after %d ticks", want, n)
	return OutPacket{}
}

func fiiOf(t *testing.T, b []byte) (uint32, bool) {
	t.Helper()
	m, err := ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	o, _, ok := m.Option(OptForkedInstanceID)
	if !ok {
		return 0, false
	}
	v, _ := o.FII()
	return v, true
}

// RFC 5533 §7.7, §7.11: a context with a non-zero FII must carry the FII
// option in its I1 and I2 too, not only in I2bis. A forked context we
// accepted falls back to I1 when its I2bis goes unanswered (§7.19).
func TestFIIInEveryInitiatorMessage(t *testing.T) {
	const fii = 7
	p, _ := newRawPeer(t, nil)
	p.tag = 0x4321
	rnonce, v := p.i1r1(fii)
	p.only(p.send(p.ulid, p.i2(rnonce, v, fii)), TypeR2)

	// The peer lost its state: R1bis for our CT(peer) on the current pair.
	b := AppendR1bis(nil, p.tag, 0x77)
	b = mustFinish(t, AppendResponderValidator(b, []byte("0123456789abcdef")))
	i2bis := p.only(p.send(p.ulid, b), TypeI2bis)
	if got, ok := fiiOf(t, i2bis); !ok || got != fii {
		t.Fatalf("I2bis FII %d %v, want %d", got, ok, fii)
	}

	// No R2: after I2bis_RETRIES_MAX the engine falls back to I1.
	now := p.now
	i1 := tickUntil(t, p.e, &now, TypeI1, 10)
	if got, ok := fiiOf(t, i1.Payload); !ok || got != fii {
		t.Fatalf("I1 of a forked context: FII %d %v, want %d (RFC 5533 §7.7)", got, ok, fii)
	}

	// R1 → I2 must carry it as well.
	inonce := I1(i1.Payload).InitiatorNonce()
	r1 := AppendR1(nil, inonce, 0x99)
	r1 = mustFinish(t, AppendResponderValidator(r1, []byte("validator-of-r1!")))
	a := p.e.HandleControl(now, i1.Dst, i1.Src, r1)
	if len(a.Packets) != 1 {
		t.Fatalf("%d packets after R1, want one I2", len(a.Packets))
	}
	if m, _ := ParseMessage(a.Packets[0].Payload); m.Type() != TypeI2 {
		t.Fatalf("got %v, want I2", m.Type())
	}
	if got, ok := fiiOf(t, a.Packets[0].Payload); !ok || got != fii {
		t.Fatalf("I2 of a forked context: FII %d %v, want %d (RFC 5533 §7.11)", got, ok, fii)
	}
}

// RFC 5533 §7.20: the responder to an I2bis SHOULD NOT use the Packet
// Context Tag as its new CT(local). With a 2-bit tag space every tag is
// tried as the Packet Context Tag against the same engine seed, so the
// first tag the engine would draw is among them.
func TestI2bisFreshTag(t *testing.T) {
	peerLoc := netip.MustParseAddr("2001:db8:c1:1::5")
	for ptag := ContextTag(1); ptag <= 3; ptag++ {
		sb := newSite("b", 1)
		cfg := simConfig(sb, nil, 42, Timers{})
		cfg.TagBits = 2
		e, err := NewEngine(cfg)
		if err != nil {
			t.Fatal(err)
		}
		local := sb.hosts[0].ULID
		a := e.HandleUnknownTag(simEpoch, peerLoc, local, ptag)
		if len(a.Packets) != 1 {
			t.Fatalf("ptag %d: %d packets, want R1bis", ptag, len(a.Packets))
		}
		r1bis := R1bis(append([]byte(nil), a.Packets[0].Payload...))
		o, _, _ := Message(r1bis).Option(OptResponderValidator)
		v, _ := o.ResponderValidator()
		b := AppendI2bis(nil, 0x2222, 0x3333, r1bis.ResponderNonce(), ptag)
		b = mustFinish(t, AppendResponderValidator(b, v))
		a = e.HandleControl(simEpoch, peerLoc, local, b)
		if len(a.Packets) != 1 {
			t.Fatalf("ptag %d: %d packets, want R2", ptag, len(a.Packets))
		}
		m, err := ParseMessage(a.Packets[0].Payload)
		if err != nil || m.Type() != TypeR2 {
			t.Fatalf("ptag %d: %v %v, want R2", ptag, m.Type(), err)
		}
		if got := R2(m).ResponderTag(); got == ptag {
			t.Errorf("I2bis answered with CT(local) %d = Packet Context Tag (RFC 5533 §7.20)", got)
		}
	}
}

// Site-wide path hints must not outlive their contexts without bound: a
// remote party can make the engine mark paths to arbitrarily many peer
// prefixes (any HBA set names any prefixes), and the entries were never
// freed once marked.
func TestPathTableBounded(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	const n = 3000
	for i := range n {
		p.ulid = netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::5", 0x1000+i))
		p.tag = ContextTag(0x10000 + i)
		rnonce, v := p.i1r1(0)
		r2 := R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2))
		// Probe(InboundOk) marks the context's path good.
		pr := AppendProbe(nil, r2.ResponderTag(), StaInboundOk,
			[]ProbeRecord{{Src: p.ulid, Dst: p.local, Nonce: uint32(i)}}, nil)
		p.send(p.ulid, mustFinish(t, pr))
		p.e.Teardown(p.now, p.local, p.ulid)
		p.now = p.now.Add(time.Millisecond)
	}
	if p.e.Len() != 0 {
		t.Fatalf("%d contexts left", p.e.Len())
	}
	if got := len(p.e.paths); got > maxIdlePaths {
		t.Errorf("%d path entries for 0 contexts after %d peers (bound %d)", got, n, maxIdlePaths)
	}
}

// RFC 5534 §6.8: a Probe(InboundOk) reaching an Operational context that
// is not exploring is answered with Probe(Operational); that is no
// exploration, so it must not be counted or reported as one (a remote
// party could otherwise inflate the exploration metrics at will).
func TestProbeReplyIsNoExploration(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	rnonce, v := p.i1r1(0)
	tag := R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)).ResponderTag()
	for i := range 3 {
		pr := AppendProbe(nil, tag, StaInboundOk, []ProbeRecord{{Src: p.ulid, Dst: p.local, Nonce: uint32(i)}}, nil)
		a := p.e.HandleControl(p.now, p.ulid, p.local, mustFinish(t, pr))
		for _, ev := range a.Events {
			if ev.Kind == EventExplorationStarted || ev.Kind == EventExplorationEnded || ev.Kind == EventFailover {
				t.Errorf("probe %d: event %v for a probe reply", i, ev.Kind)
			}
		}
		if len(a.Packets) != 1 {
			t.Fatalf("probe %d: %d packets, want Probe(Operational)", i, len(a.Packets))
		}
		m, err := ParseMessage(a.Packets[0].Payload)
		if err != nil || m.Type() != TypeProbe || Probe(m).Sta() != StaOperational {
			t.Fatalf("probe %d: reply %v %v, want Probe(Operational)", i, m.Type(), err)
		}
		if r := Probe(m); r.Precvd() < 1 || r.Rcvd(0).Nonce != uint32(i) {
			t.Errorf("probe %d: reply does not report the probe received", i)
		}
		if r := Probe(m); r.ReceiverTag() != p.tag || r.Sent(0).Src != a.Packets[0].Src || r.Sent(0).Dst != a.Packets[0].Dst {
			t.Errorf("probe %d: reply to tag %#x, first record %v>%v, sent %v>%v; want CT(peer) %#x and this probe",
				i, r.ReceiverTag(), r.Sent(0).Src, r.Sent(0).Dst, a.Packets[0].Src, a.Packets[0].Dst, p.tag)
		}
		p.now = p.now.Add(time.Second)
	}
	if n := p.e.Stats().Explorations; n != 0 {
		t.Errorf("Stats.Explorations = %d, want 0", n)
	}
	if ci, _ := p.e.Context(p.local, p.ulid); ci.ReapState != StaOperational {
		t.Errorf("REAP state %v, want Operational", ci.ReapState)
	}
}

// RFC 5533 §7.13 (I1-SENT row of App. B): a validated I2 reaching a
// context in I1-SENT records CT(peer), answers R2 with the CT(local)
// already announced in our I1 and establishes.
func TestI2InI1Sent(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	rnonce, v := p.i1r1(0) // R1 while the engine is IDLE
	a := p.e.Initiate(p.now, p.local, p.ulid)
	if len(a.Packets) != 1 {
		t.Fatalf("%d packets, want I1", len(a.Packets))
	}
	myTag := I1(a.Packets[0].Payload).InitiatorTag()
	r2 := R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2))
	if r2.ResponderTag() != myTag {
		t.Errorf("R2 tag %#x, want the I1's %#x", r2.ResponderTag(), myTag)
	}
	if r2.InitiatorNonce() != 0xbbbb {
		t.Errorf("R2 nonce %#x, want the I2's 0xbbbb", r2.InitiatorNonce())
	}
	ci, _ := p.e.Context(p.local, p.ulid)
	if ci.State != StateEstablished || ci.PeerTag != p.tag || ci.LocalTag != myTag {
		t.Errorf("context %v local %#x peer %#x, want ESTABLISHED %#x %#x", ci.State, ci.LocalTag, ci.PeerTag, myTag, p.tag)
	}
	// The I1's timer is gone: no I1 retransmission afterwards.
	now := p.now
	for range 5 {
		d := p.e.NextDeadline()
		if d.IsZero() || d.Sub(now) > time.Minute {
			break
		}
		now = d
		for _, pk := range p.e.Tick(d).Packets {
			if m, _ := ParseMessage(pk.Payload); m.Type() == TypeI1 {
				t.Fatal("I1 retransmitted after the context was established by an I2")
			}
		}
	}
}

// RFC 5533 §10.2, §10.3, §10.5: the Update Request goes to CT(peer), keeps
// its nonce across retransmissions, an Ack with another nonce is ignored,
// the matching one stops the retransmissions; newer information replaces
// the outstanding request with a new nonce.
func TestUpdateRequestNonce(t *testing.T) {
	p, sb := newRawPeer(t, nil)
	rnonce, v := p.i1r1(0)
	tag := R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)).ResponderTag()
	second := sb.hosts[0].Locators[1]

	a := p.e.SetLocatorPreference(p.now, second, LocatorPreference{Priority: 5})
	ur := UpdateRequest(p.only(copyOut(a.Packets), TypeUpdateRequest))
	if ur.ReceiverTag() != p.tag {
		t.Fatalf("Update Request to tag %#x, want CT(peer) %#x", ur.ReceiverTag(), p.tag)
	}
	n1 := ur.RequestNonce()
	now := p.now
	re := UpdateRequest(tickUntil(t, p.e, &now, TypeUpdateRequest, 5).Payload)
	if re.RequestNonce() != n1 {
		t.Fatalf("retransmission nonce %#x, want %#x", re.RequestNonce(), n1)
	}
	ack := func(n uint32) {
		b := mustFinish(t, AppendUpdateAck(nil, tag, n))
		if a := p.e.HandleControl(now, p.ulid, p.local, b); len(a.Packets) != 0 {
			t.Fatalf("%d packets answering an Update Ack", len(a.Packets))
		}
	}
	ack(n1 + 1)
	if re := UpdateRequest(tickUntil(t, p.e, &now, TypeUpdateRequest, 5).Payload); re.RequestNonce() != n1 {
		t.Fatalf("after a wrong Ack: nonce %#x, want %#x", re.RequestNonce(), n1)
	}
	a = p.e.SetLocatorPreference(now, second, LocatorPreference{Priority: 6})
	n2 := UpdateRequest(p.only(copyOut(a.Packets), TypeUpdateRequest)).RequestNonce()
	if n2 == n1 {
		t.Fatal("newer information reused the outstanding nonce (RFC 5533 §10.3)")
	}
	ack(n1) // stale: the outstanding request is n2
	if re := UpdateRequest(tickUntil(t, p.e, &now, TypeUpdateRequest, 5).Payload); re.RequestNonce() != n2 {
		t.Fatalf("nonce %#x, want %#x", re.RequestNonce(), n2)
	}
	ack(n2)
	if c := p.e.byTag[tag]; c == nil || c.upd != nil {
		t.Fatal("matching Ack left the request outstanding")
	}
	for range 5 {
		d := p.e.NextDeadline()
		if d.IsZero() || d.Sub(now) > 5*time.Minute {
			break
		}
		now = d
		for _, pk := range p.e.Tick(d).Packets {
			if m, _ := ParseMessage(pk.Payload); m.Type() == TypeUpdateRequest {
				t.Fatal("Update Request retransmitted after its Ack")
			}
		}
	}
}

func copyOut(ps []OutPacket) []OutPacket {
	out := make([]OutPacket, len(ps))
	for i, x := range ps {
		out[i] = OutPacket{Src: x.Src, Dst: x.Dst, Payload: append([]byte(nil), x.Payload...)}
	}
	return out
}

// RFC 5533 §7.18, §12.4: an R1bis is delivered to the ESTABLISHED context
// whose CT(peer) equals the Packet Context Tag and whose locator sets hold
// the packet's locators; anything else is silently discarded, and a
// context already in I2BIS-SENT sends no second I2bis for another R1bis.
func TestR1bisLookup(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	rnonce, v := p.i1r1(0)
	p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)
	r1bis := func(tag ContextTag) []byte {
		b := AppendR1bis(nil, tag, 0x77)
		return mustFinish(t, AppendResponderValidator(b, []byte("0123456789abcdef")))
	}
	stranger := netip.MustParseAddr("2001:db8:c9:1::5")
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
		tag      ContextTag
	}{
		{"other tag", p.ulid, p.local, p.tag + 1},
		{"source not in Ls(peer)", stranger, p.local, p.tag},
		{"destination not ours", p.ulid, netip.MustParseAddr("2001:db8:b9:1::1"), p.tag},
	} {
		a := p.e.HandleControl(p.now, tc.src, tc.dst, r1bis(tc.tag))
		if len(a.Packets) != 0 {
			t.Errorf("%s: %d packets, want silent drop", tc.name, len(a.Packets))
		}
		if ci, _ := p.e.Context(p.local, p.ulid); ci.State != StateEstablished {
			t.Fatalf("%s: state %v", tc.name, ci.State)
		}
	}
	m := p.only(p.send(p.ulid, r1bis(p.tag)), TypeI2bis)
	x := I2bis(m)
	if x.PacketTag() != p.tag || x.ResponderNonce() != 0x77 {
		t.Errorf("I2bis packet tag %#x nonce %#x, want %#x 0x77", x.PacketTag(), x.ResponderNonce(), p.tag)
	}
	if ci, _ := p.e.Context(p.local, p.ulid); ci.State != StateI2bisSent || ci.PeerTag != p.tag || x.InitiatorTag() != ci.LocalTag {
		t.Errorf("after R1bis: %v peer %#x local %#x, I2bis tag %#x", ci.State, ci.PeerTag, ci.LocalTag, x.InitiatorTag())
	}
	if out := p.send(p.ulid, r1bis(p.tag)); len(out) != 0 {
		t.Errorf("R1bis in I2BIS-SENT answered with %d packets", len(out))
	}
}

// Every I2, I2bis and R2 walks the contexts sharing its CT(peer) for
// context confusion (RFC 5533 §7.15), and every R1bis walks them too
// (§7.18). Peers draw tags at random from 2^47, so a long chain only
// comes from a remote party reusing one tag with many ULIDs on purpose,
// which made establishment quadratic (35 000 contexts: ~10 s of CPU).
// The chain is bounded; a retransmitted I2 of a member is still answered.
func TestPeerTagChainBounded(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	ulid := func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8:77:%x::5", i)) }
	r2s := 0
	var first []byte
	for i := range maxPeerTagChain + 20 {
		p.ulid = ulid(i)
		rnonce, v := p.i1r1(0)
		i2 := p.i2(rnonce, v, 0)
		if i == 0 {
			first = i2
		}
		switch out := p.send(p.ulid, i2); len(out) {
		case 0:
		case 1:
			p.only(out, TypeR2)
			r2s++
		default:
			t.Fatalf("I2 %d: %d packets", i, len(out))
		}
	}
	if r2s != maxPeerTagChain || p.e.Len() != maxPeerTagChain {
		t.Errorf("%d R2s, %d contexts for one CT(peer); want %d", r2s, p.e.Len(), maxPeerTagChain)
	}
	// A member's retransmitted I2 is answered; another tag is accepted.
	p.ulid = ulid(0)
	p.only(p.send(p.ulid, first), TypeR2)
	p.ulid, p.tag = ulid(1000), p.tag+1
	rnonce, v := p.i1r1(0)
	p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)
}

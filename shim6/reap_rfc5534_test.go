package shim6

import (
	"testing"
	"time"
)

// Corner cases of the REAP state machine (RFC 5534 §6): when the Send
// timer starts, what a Probe in Operational does, and how an exploration
// of an idle context ends.

// RFC 5534 §6.5: a Probe retransmission in InboundOk STARTS the Send timer
// only if it is not running; §6.4: its expiry moves InboundOk to Exploring.
// A context that hears the peer's Probe(Exploring) but then nothing more
// must explore again one Send Timeout later, not keep restarting the timer
// with every retransmission.
func TestInboundOkSendTimerNotRestartedByRetransmission(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	rnonce, v := p.i1r1(0)
	tag := R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)).ResponderTag()

	pr := AppendProbe(nil, tag, StaExploring, []ProbeRecord{{Src: p.ulid, Dst: p.local, Nonce: 9}}, nil)
	m := p.only(p.send(p.ulid, mustFinish(t, pr)), TypeProbe)
	if Probe(m).Sta() != StaInboundOk {
		t.Fatalf("reply Sta %v, want InboundOk", Probe(m).Sta())
	}
	entered := p.now
	send := DefaultTimers().SendTimeout
	now := p.now
	var firstExploring time.Time
	for range 100 {
		d := p.e.NextDeadline()
		if d.IsZero() || d.Sub(entered) > 3*send {
			break
		}
		now = d
		for _, pk := range p.e.Tick(d).Packets {
			if m, err := ParseMessage(pk.Payload); err == nil && m.Type() == TypeProbe && Probe(m).Sta() == StaExploring {
				firstExploring = now
			}
		}
		if !firstExploring.IsZero() {
			break
		}
	}
	if firstExploring.IsZero() {
		t.Fatalf("no Probe(Exploring) within %v of entering InboundOk", 3*send)
	}
	if late := firstExploring.Sub(entered); late > send+time.Second {
		t.Errorf("InboundOk → Exploring after %v, want ≈ Send Timeout %v (RFC 5534 §6.4, §6.5)", late, send)
	}
	if ci, _ := p.e.Context(p.local, p.ulid); ci.ReapState != StaExploring {
		t.Errorf("REAP state %v, want Exploring", ci.ReapState)
	}
}

// RFC 5534 §6.9: a Probe(Operational) STARTS the Keepalive timer. The peer
// that sent it restarted its Send timer (§6.8), so without payload from
// us it needs Keepalives, or it explores again one Send Timeout later
// although both directions work.
func TestProbeOperationalStartsKeepalive(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	rnonce, v := p.i1r1(0)
	tag := R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)).ResponderTag()

	pr := AppendProbe(nil, tag, StaExploring, []ProbeRecord{{Src: p.ulid, Dst: p.local, Nonce: 9}}, nil)
	reply := Probe(p.only(p.send(p.ulid, mustFinish(t, pr)), TypeProbe))
	mine := reply.Sent(0)
	p.now = p.now.Add(100 * time.Millisecond)
	pr = AppendProbe(nil, tag, StaOperational, []ProbeRecord{{Src: p.ulid, Dst: p.local, Nonce: 10}}, []ProbeRecord{mine})
	if out := p.send(p.ulid, mustFinish(t, pr)); len(out) != 0 {
		t.Fatalf("%d packets answering Probe(Operational)", len(out))
	}
	if ci, _ := p.e.Context(p.local, p.ulid); ci.ReapState != StaOperational {
		t.Fatalf("REAP state %v, want Operational", ci.ReapState)
	}
	start := p.now
	kat := DefaultTimers().KeepaliveTimeout
	now := p.now
	var ka []time.Duration
	for range 50 {
		d := p.e.NextDeadline()
		if d.IsZero() || d.Sub(start) > kat {
			break
		}
		now = d
		for _, pk := range p.e.Tick(d).Packets {
			m, err := ParseMessage(pk.Payload)
			if err != nil {
				t.Fatal(err)
			}
			switch m.Type() {
			case TypeKeepalive:
				if Keepalive(m).ReceiverTag() != p.tag {
					t.Errorf("Keepalive to tag %#x, want CT(peer) %#x", Keepalive(m).ReceiverTag(), p.tag)
				}
				ka = append(ka, now.Sub(start))
			case TypeProbe:
				t.Errorf("%v: unexpected %v probe", now.Sub(start), Probe(m).Sta())
			}
		}
	}
	if len(ka) == 0 {
		t.Fatalf("no Keepalive within the Keepalive Timeout %v after Probe(Operational)", kat)
	}
	if ka[0] > kat/2 {
		t.Errorf("first Keepalive after %v, want ≤ Keepalive Timeout/2 (RFC 5534 §4.1)", ka[0])
	}
}

// End to end: an exploration of an idle context (no payload either way)
// ends once; the side that sent Probe(Operational) restarted its Send
// timer (RFC 5534 §6.8) and the other side's Keepalives (§6.9) stop it, so
// neither explores again while the context stays idle.
func TestIdleExplorationEndsOnce(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 23, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establish(t, net, a, b, ua, ub)
	net.rules = blackhole("2001:db8:a1::/48")
	a.apply(a.e.UplinkDown(net.now, "upa1"))
	net.runFor(3 * time.Minute)
	ca, _ := a.e.Context(ua, ub)
	cb, _ := b.e.Context(ub, ua)
	if !onPrefix(ca.LocalLocator, "2001:db8:a2::/48") || ca.ReapState != StaOperational || cb.ReapState != StaOperational {
		t.Fatalf("A on %v (%v), B %v", ca.LocalLocator, ca.ReapState, cb.ReapState)
	}
	for _, nd := range []*simNode{a, b} {
		if n := len(nd.eventsOf(EventExplorationStarted)); n > 1 {
			t.Errorf("%s: %d explorations of an idle context in 3 min, want at most 1", nd.name, n)
		}
	}
}

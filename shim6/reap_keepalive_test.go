package shim6

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Sub-second Send Timeouts: the Keepalive Timeout option (RFC 5534 §5.3)
// carries whole seconds, so the option says at least 1 s and each shim6gw
// paces its Keepalives by the shorter of the option and its own
// keepalive_timeout.

func TestKeepaliveOptionSeconds(t *testing.T) {
	for _, tc := range []struct {
		send time.Duration
		want uint16
		wire []byte // the option as sent, RFC 5534 §5.3
	}{
		{100 * time.Millisecond, 1, []byte{0x00, 0x14, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01}},
		{500 * time.Millisecond, 1, []byte{0x00, 0x14, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01}},
		{999 * time.Millisecond, 1, []byte{0x00, 0x14, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01}},
		{time.Second, 1, []byte{0x00, 0x14, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01}},
		// Rounded down above 1 s: the peer keeps alive a bit more often.
		{1500 * time.Millisecond, 1, []byte{0x00, 0x14, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01}},
		{3 * time.Second, 3, []byte{0x00, 0x14, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03}},
		{15 * time.Second, 15, []byte{0x00, 0x14, 0x00, 0x04, 0x00, 0x00, 0x00, 0x0f}},
		{300 * time.Second, 300, []byte{0x00, 0x14, 0x00, 0x04, 0x00, 0x00, 0x01, 0x2c}},
		{65535 * time.Second, 65535, []byte{0x00, 0x14, 0x00, 0x04, 0x00, 0x00, 0xff, 0xff}},
		{100000 * time.Second, 65535, []byte{0x00, 0x14, 0x00, 0x04, 0x00, 0x00, 0xff, 0xff}},
	} {
		got := Timers{SendTimeout: tc.send}.KeepaliveOptionSeconds()
		if got != tc.want {
			t.Errorf("Send Timeout %v: option %d s, want %d s", tc.send, got, tc.want)
		}
		wire := AppendKeepaliveTimeout(nil, got)
		if d := cmp.Diff(tc.wire, wire); d != "" {
			t.Errorf("Send Timeout %v: option bytes (-want +got):\n%s", tc.send, d)
		}
		// What the peer reads back is what its Keepalive Timeout becomes.
		if o := Option(wire); o.Type() != OptKeepaliveTimeout {
			t.Errorf("option type %v", o.Type())
		} else if s, ok := o.KeepaliveTimeout(); !ok || s != tc.want {
			t.Errorf("Send Timeout %v: option parses as %d %v", tc.send, s, ok)
		}
	}
}

// Two gateways with a sub-second Send/Keepalive Timeout: the option says
// 1 s, yet B keeps alive every 200 ms / 3 (its own keepalive_timeout), so
// A's 200 ms Send timer never expires under one-way traffic.
func TestReapSubSecondKeepalivePacing(t *testing.T) {
	const send = 200 * time.Millisecond
	tm := labLikeTimers(send)
	net, a, b, sa, sb, _ := twoSites(t, 31, 1, tm)
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establish(t, net, a, b, ua, ub)
	// B's context holds A's advertised Keepalive Timeout: 1 s, the least
	// the option can say (set here as the option sets it, RFC 5534 §5.3).
	cb := b.e.byPair[pairKey{ub, ua, 0}]
	cb.kaTimeout = time.Duration(tm.KeepaliveOptionSeconds()) * time.Second
	if cb.kaTimeout != time.Second {
		t.Fatalf("advertised Keepalive Timeout %v, want 1s", cb.kaTimeout)
	}
	if got := b.e.kaPacing(cb); got != send {
		t.Errorf("B paces Keepalives by %v, want its own %v", got, send)
	}

	start := net.now
	oneWay(net, a, ua, ub, 500*time.Millisecond, start.Add(5*time.Second))
	net.runFor(6 * time.Second)
	kas := net.sentAt(TypeKeepalive, "B")
	// Payload every 500 ms: B sends Keepalives 200/3 ms after each, then
	// every 200/3 ms until 200 ms after the payload (RFC 5534 §4.1, §6.3).
	if len(kas) < 3*10 {
		t.Fatalf("%d keepalives from B in 5 s, want ≥ 30: %v", len(kas), kas)
	}
	first := kas[0] - start.Sub(simEpoch) - net.delay
	if want := send / 3; first < want-time.Millisecond || first > want+time.Millisecond {
		t.Errorf("first Keepalive %v after the payload arrived, want %v", first, want)
	}
	if d := kas[1] - kas[0]; d < send/3-time.Millisecond || d > send/3+time.Millisecond {
		t.Errorf("Keepalive interval %v, want %v", d, send/3)
	}
	if n := len(a.eventsOf(EventExplorationStarted)); n != 0 {
		t.Errorf("A explored %d times although B kept alive:%s", n, eventLog(a))
	}
	if net.count(TypeProbe) != 0 {
		t.Errorf("%d probes", net.count(TypeProbe))
	}
}

// The trade-off of a sub-second Send Timeout with a peer that paces by
// the 1 s option alone (any non-shim6gw REAP implementation): our Send
// timer expires between its Keepalives and we explore needlessly. The
// exploration finds a working pair at once (the current pair is probed
// last, so the context may move to another working one, RFC 5534 §4.3),
// both sides end up Operational on the same pair and no payload is lost.
func TestReapSubSecondSendTimeoutRFCPeer(t *testing.T) {
	// B has the RFC defaults: it paces by the option.
	net, a, b, sa, sb, _ := asymSites(t, 33, labLikeTimers(300*time.Millisecond), Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establish(t, net, a, b, ua, ub)
	cb := b.e.byPair[pairKey{ub, ua, 0}]
	cb.kaTimeout = time.Second // A's option
	if got := b.e.kaPacing(cb); got != time.Second {
		t.Fatalf("B paces by %v, want the option's 1s", got)
	}
	net.dataLost, net.dataSent = 0, 0
	oneWay(net, a, ua, ub, 2*time.Second, net.now.Add(10*time.Second))
	net.runFor(12 * time.Second)
	if n := len(a.eventsOf(EventExplorationStarted)); n == 0 {
		t.Errorf("A never explored; B's Keepalives 333 ms apart should miss its 300 ms Send timer")
	}
	for _, ev := range a.eventsOf(EventFailover) {
		if ev.Duration > time.Second {
			t.Errorf("a needless exploration took %v", ev.Duration)
		}
	}
	checkPair(t, a, b, ua, ub)
	ca, _ := a.e.Context(ua, ub)
	cb2, _ := b.e.Context(ub, ua)
	if ca.ReapState != StaOperational || cb2.ReapState != StaOperational {
		t.Errorf("REAP states A %v B %v, want Operational", ca.ReapState, cb2.ReapState)
	}
	if ca.LocalLocator != cb2.PeerLocator || ca.PeerLocator != cb2.LocalLocator {
		t.Errorf("pairs disagree: A %v>%v, B %v>%v", ca.LocalLocator, ca.PeerLocator, cb2.LocalLocator, cb2.PeerLocator)
	}
	if net.dataLost != 0 || net.dataSent == 0 {
		t.Errorf("%d of %d payload packets lost", net.dataLost, net.dataSent)
	}
}

// kaPacing takes the shorter of the advertised and the local Keepalive
// Timeout; without an option the local one.
func TestReapKeepalivePacingTable(t *testing.T) {
	for _, tc := range []struct {
		name              string
		local, advertised time.Duration
		want              time.Duration
	}{
		{"no option", 15 * time.Second, 0, 15 * time.Second},
		{"option shorter", 15 * time.Second, 12 * time.Second, 12 * time.Second},
		{"local shorter (sub-second)", 500 * time.Millisecond, time.Second, 500 * time.Millisecond},
		{"equal", 3 * time.Second, 3 * time.Second, 3 * time.Second},
		{"no option, sub-second", 100 * time.Millisecond, 0, 100 * time.Millisecond},
	} {
		e, err := NewEngine(simConfig(newSite("a", 1), nil, 1, Timers{KeepaliveTimeout: tc.local}))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.kaPacing(&context{kaTimeout: tc.advertised}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

package shim6

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// Tests for the engine's resource limits: what a remote sender can make
// it store or send is bounded.

// An Error message is never answered with an Error (RFC 5533 §5.14: "The
// Error message is unacknowledged"; cf. RFC 4443 §2.4(e)), so two
// implementations cannot bounce Errors forever. The Error's body is the
// quoted packet, not options, so no Error we receive fails option parsing
// today; sendError refuses to answer one all the same (the unit part
// below failed before the guard).
func TestLimitsNoErrorForError(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	quoted := make([]byte, IPv6HeaderLen)
	PutIPv6Header(quoted, p.local, p.ulid, ProtocolNumber, 16)
	crit := AppendOption(AppendI1(nil, 9, 9), 200, true, []byte{1, 2, 3, 4}) // unknown critical option
	for name, q := range map[string][]byte{
		"quoting an I1":             append(quoted, AppendI1(nil, 9, 9)...),
		"quoting a critical option": append(quoted, crit...),
		"quoting an Error":          mustFinish(t, AppendError(nil, CodeUnknownType, 0, AppendI1(nil, 1, 1))),
		"quoting garbage":           {1, 2, 3},
		"with a debugging code 127": nil,
	} {
		code := CodeCriticalOption
		if q == nil {
			code = 127
		}
		b := mustFinish(t, AppendError(nil, code, 0, q))
		if out := p.send(p.ulid, b); len(out) != 0 {
			m, _ := ParseMessage(out[0].Payload)
			t.Errorf("%s: answered an Error with %d packets (%v)", name, len(out), m.Type())
		}
	}
	// The guard itself: asked to answer an Error, sendError sends nothing.
	p.e.begin(p.now)
	em := mustFinish(t, AppendError(nil, CodeUnknownType, 0, AppendI1(nil, 1, 1)))
	p.e.sendError(p.local, p.ulid, CodeCriticalOption, 8, em)
	if n := len(p.e.end().Packets); n != 0 {
		t.Errorf("sendError answered an Error message with %d packets", n)
	}
	// Any other message with an unknown critical option gets Error 1.
	i2 := mustFinish(t, AppendOption(AppendI2(nil, 1, 2, 3), 200, true, []byte{1, 2, 3, 4}))
	if em := ErrorMessage(p.only(p.send(p.ulid, i2), TypeError)); em.Code() != CodeCriticalOption {
		t.Errorf("code %v, want critical option", em.Code())
	}
}

// RFC 5533 §5.3, §7.17: only payload and control types 64–127 that name
// an unknown context trigger R1bis; types 0–63 never do, and neither does
// an Error (68), which carries no Context Tag.
func TestLimitsR1bisOnlyFor64To127(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	v := []byte("0123456789abcdef")
	never := map[string][]byte{
		"R1":    mustFinish(t, AppendResponderValidator(AppendR1(nil, 0x4444, 1), v)),
		"I2":    mustFinish(t, AppendResponderValidator(AppendI2(nil, 0x4242, 1, 2), v)),
		"R2":    mustFinish(t, AppendR2(nil, 0x4242, 0x4444)),
		"R1bis": mustFinish(t, AppendResponderValidator(AppendR1bis(nil, 0x4242, 1), v)),
		"I2bis": mustFinish(t, AppendResponderValidator(AppendI2bis(nil, 0x4242, 1, 2, 0x4242), v)),
		"Error": mustFinish(t, AppendError(nil, CodeUnknownType, 0, AppendKeepalive(nil, 0x4242))),
	}
	for name, b := range never {
		for _, pk := range p.send(p.ulid, b) {
			if m, _ := ParseMessage(pk.Payload); m.Type() == TypeR1bis {
				t.Errorf("%s for an unknown context answered with R1bis", name)
			}
		}
	}
	// The context lookup of tagged messages enforces it too (a future
	// tagged type below 64 must not trigger R1bis).
	p.e.begin(p.now)
	if p.e.contextFor(p.ulid, p.local, 60, 0x4545, true) != nil || len(p.e.end().Packets) != 0 {
		t.Error("contextFor answered type 60 for an unknown tag")
	}
	// Unknown types below 64 get Error 0, never R1bis.
	for _, ty := range []byte{10, 63} {
		b := AppendKeepalive(nil, 0x4242)
		b[offType] = ty
		b = mustFinish(t, b)
		if em := ErrorMessage(p.only(p.send(p.ulid, b), TypeError)); em.Code() != CodeUnknownType {
			t.Errorf("type %d: code %v", ty, em.Code())
		}
	}
	for name, b := range map[string][]byte{
		"Keepalive":      AppendKeepalive(nil, 0x4242),
		"Update Request": mustFinish(t, AppendUpdateRequest(nil, 0x4242, 7)),
		"Update Ack":     mustFinish(t, AppendUpdateAck(nil, 0x4242, 7)),
	} {
		p.now = p.now.Add(time.Second)
		if r := R1bis(p.only(p.send(p.ulid, b), TypeR1bis)); r.PacketTag() != 0x4242 {
			t.Errorf("%s: packet tag %#x", name, r.PacketTag())
		}
	}
}

// The R1bis/Error rate limit is per source /64: one source using up its
// share does not silence the answers to another (formerly one site-wide
// bucket), and the site-wide cap still holds against many sources.
func TestLimitsErrorRatePerSource(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	flood := netip.MustParseAddr("2001:db8:e1:1::66")
	sent := 0
	for range 1000 {
		sent += len(p.e.HandleUnknownTag(p.now, flood, p.local, 0x4242).Packets)
	}
	if sent == 0 || sent > 100/5 {
		t.Errorf("%d R1bis to one source in one instant, want 1..%d", sent, 100/5)
	}
	other := netip.MustParseAddr("2001:db8:e2:1::77")
	if n := len(p.e.HandleUnknownTag(p.now, other, p.local, 0x4343).Packets); n != 1 {
		t.Fatalf("another source got %d R1bis after a flood from %v, want 1", n, flood)
	}
	// Same /64, other interface identifier: same bucket.
	if n := len(p.e.HandleUnknownTag(p.now, netip.MustParseAddr("2001:db8:e1:1::67"), p.local, 1).Packets); n != 0 {
		t.Errorf("same /64 as the flood got %d R1bis", n)
	}
	// Many sources: the site-wide cap (MaxErrorsPerSecond = 100) holds.
	total := 0
	for i := range 500 {
		src := netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:1::1", 0x1000+i))
		total += len(p.e.HandleUnknownTag(p.now, src, p.local, 0x4444).Packets)
	}
	if total+sent+1 > 100 {
		t.Errorf("%d R1bis in one instant over all sources, want ≤ 100", total+sent+1)
	}
	// A second later the flooding source has tokens again.
	p.now = p.now.Add(time.Second)
	if n := len(p.e.HandleUnknownTag(p.now, flood, p.local, 0x4242).Packets); n != 1 {
		t.Errorf("after 1 s: %d R1bis, want 1", n)
	}
	if p.e.Stats().Drops[DropRateLimited] == 0 {
		t.Error("no rate_limited drops counted")
	}
}

// MaxContexts: a remote host with many ULIDs cannot create contexts
// without bound. Beyond the cap, with no context evictable (all carry
// traffic), an I2 that would create one is dropped and counted
// (DropContextLimit) with one EventContextLimit, local initiations are
// refused too, existing contexts stay and keep working, and a freed slot
// is usable again.
func TestLimitsMaxContexts(t *testing.T) {
	sb := newSite("b", 1)
	cfg := simConfig(sb, nil, 42, Timers{})
	cfg.MaxContexts = 3
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, e: e, now: simEpoch, local: sb.hosts[0].ULID, tag: 0x1234}
	ulid := func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8:c1:%x::5", i)) }
	var events []Event
	i2s := map[int][]byte{}
	establish := func(i int) int {
		p.ulid, p.tag = ulid(i), ContextTag(0x1000+i)
		rnonce, v := p.i1r1(0)
		i2s[i] = p.i2(rnonce, v, 0)
		a := p.e.HandleControl(p.now, p.ulid, p.local, i2s[i])
		events = append(events, a.Events...)
		return len(a.Packets)
	}
	for i := range 3 {
		if n := establish(i); n != 1 {
			t.Fatalf("context %d: %d packets, want R2", i, n)
		}
		// Carrying traffic, so not evictable (engine_quota.go).
		ci, _ := e.Context(p.local, ulid(i))
		e.ObserveTraffic(p.now, ci.LocalTag, p.now, p.now)
	}
	events = nil
	for i := 3; i < 10; i++ {
		if n := establish(i); n != 0 {
			t.Errorf("I2 beyond the cap: %d packets, want none", n)
		}
	}
	if e.Len() != 3 {
		t.Fatalf("%d contexts, want the cap 3", e.Len())
	}
	if got := e.Stats().Drops[DropContextLimit]; got != 7 {
		t.Errorf("context_limit drops %d, want 7", got)
	}
	if len(events) != 1 || events[0].Kind != EventContextLimit || events[0].PeerULID != ulid(3) || events[0].Reason != "I2" {
		t.Errorf("events %+v, want one context_limit for %v", events, ulid(3))
	}
	for i := range 3 {
		if ci, ok := e.Context(p.local, ulid(i)); !ok || ci.State != StateEstablished {
			t.Errorf("context %d evicted or not established: %v", i, ci.State)
		}
	}
	// A retransmitted I2 of an existing context is still answered.
	p.ulid = ulid(1)
	p.only(p.send(p.ulid, i2s[1]), TypeR2)
	// Local initiation is refused and counted, HandleTraffic too.
	peer := netip.MustParseAddr("2001:db8:dd::1")
	if a := e.Initiate(p.now, p.local, peer); len(a.Packets) != 0 {
		t.Errorf("Initiate at the cap sent %d packets", len(a.Packets))
	}
	if a := e.HandleTraffic(p.now, p.local, peer); len(a.Packets) != 0 {
		t.Errorf("HandleTraffic at the cap sent %d packets", len(a.Packets))
	}
	if got := e.Stats().Drops[DropContextLimit]; got != 9 {
		t.Errorf("context_limit drops %d, want 9", got)
	}
	// A freed slot is used again.
	e.Teardown(p.now, p.local, ulid(0))
	if a := e.Initiate(p.now, p.local, peer); len(a.Packets) != 1 {
		t.Errorf("Initiate below the cap sent %d packets, want an I1", len(a.Packets))
	}
	if e.Len() != 3 {
		t.Errorf("%d contexts, want 3", e.Len())
	}
}

// The default cap applies when MaxContexts is 0.
func TestLimitsDefaultMaxContexts(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	if p.e.cfg.MaxContexts != DefaultMaxContexts {
		t.Errorf("MaxContexts %d, want %d", p.e.cfg.MaxContexts, DefaultMaxContexts)
	}
}

// Pending initiations (Policy.InitiateAfterNotices > 1) stay within MaxPending however
// many pairs see traffic.
func TestLimitsPendingBounded(t *testing.T) {
	sb := newSite("b", 1)
	cfg := simConfig(sb, nil, 42, Timers{})
	cfg.Policy = Policy{InitiateAfterNotices: 5, MaxPending: 100}
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := simEpoch
	for i := range 1000 {
		e.HandleTraffic(now, sb.hosts[0].ULID, netip.MustParseAddr(fmt.Sprintf("2001:db8:ee:%x::1", i)))
	}
	if len(e.pending) != 100 || e.Len() != 0 {
		t.Errorf("%d pending, %d contexts; want 100, 0", len(e.pending), e.Len())
	}
}

// Checking the Error/R1bis limit allocates nothing, sent or suppressed.
func TestLimitsRateLimitAllocs(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	src := netip.MustParseAddr("2001:db8:e1:1::66")
	p.e.HandleUnknownTag(p.now, src, p.local, 0x4242)
	now := p.now
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(10 * time.Millisecond)
		p.e.HandleUnknownTag(now, src, p.local, 0x4242)
	}); n != 0 {
		t.Errorf("HandleUnknownTag: %v allocs", n)
	}
}

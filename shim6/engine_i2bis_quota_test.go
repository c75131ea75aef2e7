package shim6

import (
	"fmt"
	"maps"
	"net/netip"
	"testing"
	"time"
)

// checkQuotaInvariants: the LRU list holds exactly the stored contexts,
// and the quota counters match the contexts' origins.
func checkQuotaInvariants(e *Engine) error {
	n := 0
	var prev *context
	for c := e.lru.head; c != nil; c = c.lruNext {
		if e.byPair[c.key()] != c || c.lruPrev != prev {
			return fmt.Errorf("lru list holds a stale or mislinked context")
		}
		prev = c
		if n++; n > len(e.byPair) {
			break
		}
	}
	if n != len(e.byPair) || e.lru.tail != prev {
		return fmt.Errorf("lru list has %d contexts, table %d", n, len(e.byPair))
	}
	locs, pfx := map[netip.Addr]int{}, map[uint64]int{}
	for _, c := range e.byPair {
		if c.origin.IsValid() {
			locs[c.origin]++
			pfx[prefix64(c.origin)]++
		}
	}
	if !maps.Equal(locs, e.byOrigin) || !maps.Equal(pfx, e.byOriginPrefix) {
		return fmt.Errorf("quota counters %v %v, contexts say %v %v", e.byOrigin, e.byOriginPrefix, locs, pfx)
	}
	return nil
}

// i2bisFlood gets one R1bis for src (a payload packet with an unknown tag)
// and sends n I2bis echoing it, each with another FII, so each names a
// new context (the R1bis validator binds only the tag and the locators,
// RFC 5533 §7.17.1). It returns the contexts' count afterwards.
func i2bisFlood(t *testing.T, p *rawPeer, src netip.Addr, n int) {
	t.Helper()
	const ptag = 0x4242
	r := R1bis(p.only(toCopies(p.e.HandleUnknownTag(p.now, src, p.local, ptag)), TypeR1bis))
	o, _, _ := Message(r).Option(OptResponderValidator)
	v, _ := o.ResponderValidator()
	for i := range n {
		b := AppendI2bis(nil, ContextTag(0x1000+i), uint32(i), r.ResponderNonce(), ptag)
		b = AppendResponderValidator(b, v)
		b = AppendFII(b, uint32(i+1))
		p.e.HandleControl(p.now, src, p.local, mustFinish(t, b))
	}
}

func toCopies(a *Actions) []OutPacket {
	out := make([]OutPacket, len(a.Packets))
	for i, x := range a.Packets {
		out[i] = OutPacket{Src: x.Src, Dst: x.Dst, Payload: append([]byte(nil), x.Payload...)}
	}
	return out
}

func quotaEngine(t *testing.T, cfg func(*EngineConfig)) *rawPeer {
	sb := newSite("b", 1)
	c := simConfig(sb, nil, 42, Timers{})
	if cfg != nil {
		cfg(&c)
	}
	e, err := NewEngine(c)
	if err != nil {
		t.Fatal(err)
	}
	return &rawPeer{t: t, e: e, now: simEpoch, local: sb.hosts[0].ULID, tag: 0x1234}
}

// 2,000 I2bis after one R1bis create at most the per-locator quota; a
// legitimate I2 afterwards still gets its context.
func TestI2bisMintingBoundedPerLocator(t *testing.T) {
	p := quotaEngine(t, nil)
	attacker := netip.MustParseAddr("2001:db8:c1:1::66")
	i2bisFlood(t, p, attacker, 2000)
	if n := p.e.Len(); n != DefaultMaxContextsPerPeerLocator {
		t.Errorf("%d contexts after 2000 I2bis from one locator, want the quota %d", n, DefaultMaxContextsPerPeerLocator)
	}
	if got := p.e.Stats().Drops[DropSourceQuota]; got != 2000-DefaultMaxContextsPerPeerLocator {
		t.Errorf("source_quota drops %d, want %d", got, 2000-DefaultMaxContextsPerPeerLocator)
	}
	if err := checkQuotaInvariants(p.e); err != nil {
		t.Fatal(err)
	}
	p.ulid = netip.MustParseAddr("2001:db8:c9:1::5")
	rnonce, v := p.i1r1(0)
	p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)
	if ci, ok := p.e.Context(p.local, p.ulid); !ok || ci.State != StateEstablished {
		t.Errorf("legitimate I2 after the flood: %v %v", ci.State, ok)
	}
	// Removing the contexts releases the quota.
	for _, ci := range p.e.Contexts() {
		if ci.FII != 0 {
			p.e.remove(p.e.byPair[pairKey{ci.LocalULID, ci.PeerULID, ci.FII}], "test")
		}
	}
	if len(p.e.byOrigin) != 1 || len(p.e.byOriginPrefix) != 1 {
		t.Errorf("quota counters after removal: %v %v", p.e.byOrigin, p.e.byOriginPrefix)
	}
}

// Many locators of one /64: the per-/64 quota holds.
func TestI2bisMintingBoundedPerPrefix(t *testing.T) {
	p := quotaEngine(t, func(c *EngineConfig) { c.MaxContextsPerPeerLocator, c.MaxContextsPerPeerPrefix = 10, 25 })
	for i := range 10 {
		p.now = p.now.Add(time.Second) // R1bis rate limit per /64
		i2bisFlood(t, p, netip.MustParseAddr(fmt.Sprintf("2001:db8:c1:1::%x", 0x100+i)), 50)
	}
	if n := p.e.Len(); n != 25 {
		t.Errorf("%d contexts from one /64, want the /64 quota 25", n)
	}
	// Another /64 is not affected.
	i2bisFlood(t, p, netip.MustParseAddr("2001:db8:c1:2::1"), 50)
	if n := p.e.Len(); n != 35 {
		t.Errorf("%d contexts, want 25 + 10 from another /64", n)
	}
}

// At MaxContexts the least recently used idle or unestablished context
// makes room, counted in Stats.Evictions; contexts carrying traffic stay.
func TestContextTableFullEvictsLRU(t *testing.T) {
	p := quotaEngine(t, func(c *EngineConfig) { c.MaxContexts = 50 })
	// Two honest contexts that carry traffic.
	var honest []ContextTag
	for i := range 2 {
		p.ulid, p.tag = netip.MustParseAddr(fmt.Sprintf("2001:db8:c9:%x::5", i+1)), ContextTag(0x7000+i)
		rnonce, v := p.i1r1(0)
		honest = append(honest, R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)).ResponderTag())
	}
	// Many sources each within their quota fill the table and more.
	for i := range 40 {
		p.now = p.now.Add(time.Millisecond)
		for _, tag := range honest {
			p.e.ObserveTraffic(p.now, tag, p.now, p.now)
		}
		i2bisFlood(t, p, netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:1::1", 0xd000+i)), 5)
	}
	if n := p.e.Len(); n != 50 {
		t.Errorf("%d contexts, want the cap 50", n)
	}
	if ev := p.e.Stats().Evictions; ev != 2+200-50 {
		t.Errorf("%d evictions, want %d", ev, 2+200-50)
	}
	if d := p.e.Stats().Drops[DropContextLimit]; d != 0 {
		t.Errorf("%d context_limit refusals, want none while idle contexts can go", d)
	}
	for i, tag := range honest {
		if c := p.e.byTag[tag]; c == nil || c.state != StateEstablished {
			t.Errorf("honest context %d carrying traffic was evicted", i)
		}
	}
	// The survivors are the most recently created ones.
	for i := 31; i < 40; i++ { // 48 slots: sources 31–39 and 3 of source 30
		src := netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:1::1", 0xd000+i))
		if p.e.byOrigin[src] != 5 {
			t.Errorf("source %d: %d contexts left, want 5 (most recent)", i, p.e.byOrigin[src])
		}
	}
	// A legitimate I2 still gets its context.
	p.ulid, p.tag = netip.MustParseAddr("2001:db8:c9:9::5"), 0x7777
	rnonce, v := p.i1r1(0)
	p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)
	if err := checkQuotaInvariants(p.e); err != nil {
		t.Fatal(err)
	}
}

// Traffic moves a context to the back of the LRU order: when every
// context is idle, the one used least recently goes, not the oldest.
func TestContextEvictionOrderFollowsUse(t *testing.T) {
	p := quotaEngine(t, func(c *EngineConfig) { c.MaxContexts = 3 })
	tags := map[string]ContextTag{}
	open := func(name string, i int) {
		p.ulid, p.tag = netip.MustParseAddr(fmt.Sprintf("2001:db8:c9:%x::5", i)), ContextTag(0x7000+i)
		rnonce, v := p.i1r1(0)
		tags[name] = R2(p.only(p.send(p.ulid, p.i2(rnonce, v, 0)), TypeR2)).ResponderTag()
	}
	open("A", 1)
	open("B", 2)
	open("C", 3)
	p.now = p.now.Add(time.Second)
	p.e.ObserveTraffic(p.now, tags["A"], p.now, p.now)
	p.now = p.now.Add(time.Minute) // all idle now
	open("D", 4)
	if p.e.byTag[tags["B"]] != nil || p.e.byTag[tags["A"]] == nil {
		t.Errorf("evicted the wrong context: A kept %v, B kept %v", p.e.byTag[tags["A"]] != nil, p.e.byTag[tags["B"]] != nil)
	}
	if p.e.Stats().Evictions != 1 {
		t.Errorf("%d evictions, want 1", p.e.Stats().Evictions)
	}
}

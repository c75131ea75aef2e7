package shim6

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/hba"
)

// The simulator: engines of several sites connected by a network with
// per-path loss, duplication, reordering and partitions, a virtual clock,
// and a toy data plane (fast table, stamps) standing in for the gateway.

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type linkRule struct {
	src, dst netip.Prefix
	loss     float64
	dup      float64
	reorder  time.Duration // extra random delay up to this
	down     bool
}

type simEvent struct {
	at   time.Time
	seq  uint64
	fn   func()
	node *simNode // for ticks
	tick time.Time
}

type eventQ []*simEvent

func (q eventQ) Len() int { return len(q) }
func (q eventQ) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQ) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQ) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *eventQ) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// logEntry is one control message the network carried (or dropped).
type logEntry struct {
	at       time.Duration // since simEpoch
	from, to string
	typ      Type
	dropped  bool
	src, dst netip.Addr
	msg      []byte
}

func (l logEntry) String() string {
	s := fmt.Sprintf("%s>%s %v", l.from, l.to, l.typ)
	if l.dropped {
		s += " (lost)"
	}
	return s
}

type simNet struct {
	t     testing.TB
	now   time.Time
	rng   *rand.Rand
	q     eventQ
	seq   uint64
	nodes []*simNode
	rules []linkRule
	delay time.Duration
	log   []logEntry
	// dataLost counts payload packets the network dropped.
	dataSent, dataLost, dataDelivered int
}

type simNode struct {
	net      *simNet
	name     string
	e        *Engine
	prefixes []netip.Prefix
	tickAt   time.Time
	fast     map[ContextTag]ContextUpdate // by CT(local)
	byPair   map[[2]netip.Addr]ContextTag
	sent     map[ContextTag]time.Time
	recv     map[ContextTag]time.Time
	events   []Event
	evAt     []time.Duration
	unknown  int // payload packets with unknown tags
}

func newSimNet(t testing.TB, seed uint64) *simNet {
	return &simNet{t: t, now: simEpoch, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), delay: 10 * time.Millisecond}
}

func (n *simNet) at(d time.Time, fn func()) {
	n.seq++
	heap.Push(&n.q, &simEvent{at: d, seq: n.seq, fn: fn})
}

func (n *simNet) after(d time.Duration, fn func()) { n.at(n.now.Add(d), fn) }

func (n *simNet) addNode(name string, cfg EngineConfig) *simNode {
	e, err := NewEngine(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	nd := &simNode{net: n, name: name, e: e}
	for _, u := range cfg.Uplinks {
		nd.prefixes = append(nd.prefixes, u.Prefix)
	}
	nd.reset()
	n.nodes = append(n.nodes, nd)
	return nd
}

func (nd *simNode) reset() {
	nd.fast = make(map[ContextTag]ContextUpdate)
	nd.byPair = make(map[[2]netip.Addr]ContextTag)
	nd.sent = make(map[ContextTag]time.Time)
	nd.recv = make(map[ContextTag]time.Time)
	nd.tickAt = time.Time{}
}

// restart replaces the node's engine by a fresh one with the same config:
// all context state is lost, as in a crash or an HA takeover.
func (nd *simNode) restart(cfg EngineConfig) {
	e, err := NewEngine(cfg)
	if err != nil {
		nd.net.t.Fatal(err)
	}
	nd.e = e
	nd.reset()
}

func (n *simNet) nodeFor(a netip.Addr) *simNode {
	for _, nd := range n.nodes {
		for _, p := range nd.prefixes {
			if p.Contains(a) {
				return nd
			}
		}
	}
	return nil
}

func (n *simNet) rule(src, dst netip.Addr) linkRule {
	for _, r := range n.rules {
		if r.src.Contains(src) && r.dst.Contains(dst) {
			return r
		}
	}
	return linkRule{}
}

// transmit carries a packet from src to dst through the network, calling
// deliver at the receiver for every copy that arrives.
func (n *simNet) transmit(src, dst netip.Addr, deliver func(), control Type, from string, msg []byte) bool {
	to := n.nodeFor(dst)
	r := n.rule(src, dst)
	lost := to == nil || r.down || (r.loss > 0 && n.rng.Float64() < r.loss)
	if control != 0 {
		name := "?"
		if to != nil {
			name = to.name
		}
		n.log = append(n.log, logEntry{at: n.now.Sub(simEpoch), from: from, to: name, typ: control, dropped: lost, src: src, dst: dst, msg: msg})
	}
	if lost {
		return false
	}
	copies := 1
	if r.dup > 0 && n.rng.Float64() < r.dup {
		copies = 2
	}
	for range copies {
		d := n.delay
		if r.reorder > 0 {
			d += time.Duration(n.rng.Int64N(int64(r.reorder)))
		}
		n.after(d, deliver)
	}
	return true
}

// apply carries out an engine's actions.
func (nd *simNode) apply(a *Actions) {
	n := nd.net
	for _, p := range a.Packets {
		msg := append([]byte(nil), p.Payload...)
		src, dst := p.Src, p.Dst
		if nd.nodeOwns(src) == false {
			n.t.Errorf("%s sent from %v, not one of its locators", nd.name, src)
		}
		typ := Type(msg[2] & 0x7f)
		n.transmit(src, dst, func() {
			to := n.nodeFor(dst)
			to.apply(to.e.HandleControl(n.now, src, dst, msg))
		}, typ, nd.name, msg)
	}
	for _, u := range a.Updates {
		if u.Removed {
			if cur, ok := nd.fast[u.LocalTag]; ok && cur.PeerULID == u.PeerULID {
				delete(nd.fast, u.LocalTag)
				delete(nd.byPair, [2]netip.Addr{u.LocalULID, u.PeerULID})
			}
			continue
		}
		nd.fast[u.LocalTag] = u
		nd.byPair[[2]netip.Addr{u.LocalULID, u.PeerULID}] = u.LocalTag
	}
	for _, ev := range a.Events {
		nd.events = append(nd.events, ev)
		nd.evAt = append(nd.evAt, n.now.Sub(simEpoch))
	}
	nd.scheduleTick(a.NextDeadline)
}

func (nd *simNode) nodeOwns(a netip.Addr) bool {
	for _, p := range nd.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (nd *simNode) scheduleTick(d time.Time) {
	if d.IsZero() || (!nd.tickAt.IsZero() && !d.Before(nd.tickAt) && nd.tickAt.After(nd.net.now)) {
		return
	}
	if d.Before(nd.net.now) {
		d = nd.net.now
	}
	nd.tickAt = d
	e := nd.e
	nd.net.at(d, func() {
		if nd.e != e || !nd.tickAt.Equal(d) {
			return // stale
		}
		nd.tickAt = time.Time{}
		nd.apply(nd.e.Tick(nd.net.now))
	})
}

// sendData is the toy data plane sending one ULP packet from a local host.
func (nd *simNode) sendData(local, peer netip.Addr) {
	n := nd.net
	tag, ok := nd.byPair[[2]netip.Addr{local, peer}]
	src, dst := local, peer
	var ptag ContextTag
	if ok {
		u := nd.fast[tag]
		src, dst = u.LocalLocator, u.PeerLocator
		if src != local || dst != peer {
			ptag = u.PeerTag
		}
		nd.sent[tag] = n.now
		nd.apply(nd.e.ObserveTraffic(n.now, tag, nd.sent[tag], nd.recv[tag]))
	} else {
		nd.apply(nd.e.HandleTraffic(n.now, local, peer))
	}
	n.dataSent++
	if !n.transmit(src, dst, func() {
		n.dataDelivered++
		n.nodeFor(dst).recvData(src, dst, ptag, local, peer)
	}, 0, nd.name, nil) {
		n.dataLost++
	}
}

// recvData is the toy data plane receiving a packet.
func (nd *simNode) recvData(src, dst netip.Addr, ptag ContextTag, ulidSrc, ulidDst netip.Addr) {
	n := nd.net
	if ptag != 0 {
		u, ok := nd.fast[ptag]
		if !ok || !contains(u.PeerLocators, src) || !contains(u.LocalLocators, dst) {
			nd.unknown++
			nd.apply(nd.e.HandleUnknownTag(n.now, src, dst, ptag))
			return
		}
		if u.LocalULID != ulidDst || u.PeerULID != ulidSrc {
			n.t.Errorf("%s: payload for tag %#x restored to %v<-%v, sent as %v<-%v", nd.name, ptag, u.LocalULID, u.PeerULID, ulidDst, ulidSrc)
		}
		nd.recv[ptag] = n.now
		nd.apply(nd.e.ObserveTraffic(n.now, ptag, nd.sent[ptag], nd.recv[ptag]))
		return
	}
	if tag, ok := nd.byPair[[2]netip.Addr{dst, src}]; ok {
		nd.recv[tag] = n.now
		nd.apply(nd.e.ObserveTraffic(n.now, tag, nd.sent[tag], nd.recv[tag]))
	}
}

func contains(s []netip.Addr, a netip.Addr) bool { return indexAddr(s, a) >= 0 }

// flow sends a packet each way every interval between two hosts until stop.
func (n *simNet) flow(a *simNode, ua netip.Addr, b *simNode, ub netip.Addr, every time.Duration, stop time.Time) {
	var step func()
	step = func() {
		if n.now.After(stop) {
			return
		}
		a.sendData(ua, ub)
		b.sendData(ub, ua)
		n.after(every, step)
	}
	n.after(0, step)
}

// run processes events until the clock would pass until.
func (n *simNet) run(until time.Time) {
	for steps := 0; n.q.Len() > 0; steps++ {
		if steps > 5_000_000 {
			n.t.Fatal("simulation does not settle")
		}
		ev := n.q[0]
		if ev.at.After(until) {
			break
		}
		heap.Pop(&n.q)
		n.now = ev.at
		ev.fn()
	}
	if n.now.Before(until) {
		n.now = until
	}
}

// runFor advances the clock by d.
func (n *simNet) runFor(d time.Duration) { n.run(n.now.Add(d)) }

// types lists the message types the network carried, optionally only the
// delivered ones, as "A>B I1" strings.
func (n *simNet) types(delivered bool) []string {
	var out []string
	for _, l := range n.log {
		if delivered && l.dropped {
			continue
		}
		out = append(out, l.String())
	}
	return out
}

func (n *simNet) count(typ Type) int {
	c := 0
	for _, l := range n.log {
		if l.typ == typ {
			c++
		}
	}
	return c
}

// fakeVerifier accepts exactly the listed locator sets: the PDS must be
// the one registered for the ULID and every locator must be in its set.
type fakeVerifier struct {
	sets map[netip.Addr][]netip.Addr
}

var errForged = errors.New("fake verifier: locator not in the HBA set")

func (f *fakeVerifier) VerifyLocators(ulid netip.Addr, pds, sig []byte, gen uint32, locs []netip.Addr, methods []uint8) error {
	set, ok := f.sets[ulid]
	if !ok || string(pds) != fakePDS(ulid) {
		return errForged
	}
	for i, l := range locs {
		if !contains(set, l) {
			return &hba.LocatorError{Index: i, Err: errForged}
		}
	}
	return nil
}

func fakePDS(ulid netip.Addr) string { return "pds:" + ulid.String() + ":padding" }

// site describes a simulated multihomed site.
type site struct {
	name    string
	uplinks []Uplink
	hosts   []LocalHost
}

// newSite makes a site with two uplinks 2001:db8:<x>1::/48 and
// 2001:db8:<x>2::/48 and nHosts hosts whose ULID is under the first.
func newSite(x string, nHosts int) site {
	s := site{name: x}
	for i := 1; i <= 2; i++ {
		s.uplinks = append(s.uplinks, Uplink{Name: fmt.Sprintf("up%s%d", x, i),
			Prefix: netip.MustParsePrefix(fmt.Sprintf("2001:db8:%s%d::/48", x, i))})
	}
	for h := 1; h <= nHosts; h++ {
		var locs []netip.Addr
		for i := 1; i <= 2; i++ {
			locs = append(locs, netip.MustParseAddr(fmt.Sprintf("2001:db8:%s%d:1::%x", x, i, h)))
		}
		s.hosts = append(s.hosts, LocalHost{ULID: locs[0], Locators: locs, PDS: []byte(fakePDS(locs[0]))})
	}
	return s
}

func (s site) register(v *fakeVerifier) {
	for _, h := range s.hosts {
		v.sets[h.ULID] = h.Locators
	}
}

func simConfig(s site, v Verifier, seed byte, timers Timers) EngineConfig {
	cfg := EngineConfig{Hosts: s.hosts, Uplinks: s.uplinks, Timers: timers, Verifier: v,
		SiteSecret: []byte("site secret " + s.name)}
	cfg.Seed[0] = seed
	return cfg
}

func (nd *simNode) state(local, peer netip.Addr) State {
	ci, ok := nd.e.Context(local, peer)
	if !ok {
		return StateIdle
	}
	return ci.State
}

func (nd *simNode) eventsOf(k EventKind) []Event {
	var out []Event
	for _, e := range nd.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// firstEvent is the virtual time of the first event of kind k (-1: none).
func (nd *simNode) firstEvent(k EventKind) time.Duration {
	for i, e := range nd.events {
		if e.Kind == k {
			return nd.evAt[i]
		}
	}
	return -1
}

func joinTypes(s []string) string { return strings.Join(s, ", ") }

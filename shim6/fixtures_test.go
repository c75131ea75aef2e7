package shim6

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Shared fixtures of the engine tests: verified site pairs, simulated
// networks with two nodes, handshakes, traffic patterns and log queries.

// verifiedSites makes sites A and B with n hosts each, both registered
// with one fakeVerifier.
func verifiedSites(n int) (site, site, *fakeVerifier) {
	sa, sb := newSite("a", n), newSite("b", n)
	v := &fakeVerifier{sets: map[netip.Addr][]netip.Addr{}}
	sa.register(v)
	sb.register(v)
	return sa, sb, v
}

// twoSites builds sites A and B with n hosts each and engines for both.
func twoSites(t testing.TB, seed uint64, n int, timers Timers) (*simNet, *simNode, *simNode, site, site, *fakeVerifier) {
	sa, sb, v := verifiedSites(n)
	net := newSimNet(t, seed)
	a := net.addNode("A", simConfig(sa, v, byte(seed), timers))
	b := net.addNode("B", simConfig(sb, v, byte(seed+1), timers))
	return net, a, b, sa, sb, v
}

// simPair builds a network with nodes A (engine seed 1, timers ta) and B
// (engine seed 2, timers tb) for sites sa and sb.
func simPair(t testing.TB, seed uint64, sa, sb site, v Verifier, ta, tb Timers) (*simNet, *simNode, *simNode) {
	net := newSimNet(t, seed)
	a := net.addNode("A", simConfig(sa, v, 1, ta))
	b := net.addNode("B", simConfig(sb, v, 2, tb))
	return net, a, b
}

// asymSites is twoSites with one host per site and different timers on
// each side (engine seeds 1 and 2).
func asymSites(t testing.TB, seed uint64, ta, tb Timers) (*simNet, *simNode, *simNode, site, site, *fakeVerifier) {
	sa, sb, v := verifiedSites(1)
	net, a, b := simPair(t, seed, sa, sb, v, ta, tb)
	return net, a, b, sa, sb, v
}

// establish has A initiate the pair ua/ub, lets a second pass and asserts
// both ends are ESTABLISHED.
func establish(t *testing.T, net *simNet, a, b *simNode, ua, ub netip.Addr) {
	t.Helper()
	a.apply(a.e.Initiate(net.now, ua, ub))
	net.runFor(time.Second)
	checkPair(t, a, b, ua, ub)
}

// establishWithFlow sets up host i of both sites and starts a flow.
func establishWithFlow(t *testing.T, net *simNet, a, b *simNode, sa, sb site, i int, every time.Duration, stop time.Time) {
	t.Helper()
	ua, ub := sa.hosts[i].ULID, sb.hosts[i].ULID
	establish(t, net, a, b, ua, ub)
	net.flow(a, ua, b, ub, every, stop)
}

// oneWay sends payload from a to b every interval until stop.
func oneWay(net *simNet, a *simNode, ua netip.Addr, ub netip.Addr, every time.Duration, stop time.Time) {
	var step func()
	step = func() {
		if net.now.After(stop) {
			return
		}
		a.sendData(ua, ub)
		net.after(every, step)
	}
	net.after(0, step)
}

// everywhere applies r to every path.
func everywhere(r linkRule) []linkRule {
	r.src, r.dst = netip.MustParsePrefix("::/0"), netip.MustParsePrefix("::/0")
	return []linkRule{r}
}

// blackhole drops everything from or to the prefix.
func blackhole(p string) []linkRule {
	pp := netip.MustParsePrefix(p)
	all := netip.MustParsePrefix("::/0")
	return []linkRule{{src: pp, dst: all, down: true}, {src: all, dst: pp, down: true}}
}

func onPrefix(a netip.Addr, p string) bool { return netip.MustParsePrefix(p).Contains(a) }

// wantTypes asserts the messages the network carried, lost or not, in
// order, as "A>B I1" strings.
func wantTypes(t *testing.T, net *simNet, want ...string) {
	t.Helper()
	if d := cmp.Diff(want, net.types(false)); d != "" {
		t.Fatalf("messages (-want +got):\n%s", d)
	}
}

// sentAt lists when node from sent messages of type typ (lost or not).
func (n *simNet) sentAt(typ Type, from string) []time.Duration {
	var out []time.Duration
	for _, l := range n.log {
		if l.typ == typ && l.from == from {
			out = append(out, l.at)
		}
	}
	return out
}

// lastOfType parses the last message of type typ the network carried; a
// nil Message if there was none.
func (n *simNet) lastOfType(typ Type) Message {
	var m Message
	for _, l := range n.log {
		if l.typ == typ {
			m, _ = ParseMessage(l.msg)
		}
	}
	return m
}

// benchEngines makes engines for sites A and B (seeds 1 and 2, default
// timers) with verifier v.
func benchEngines(tb testing.TB, sa, sb site, v Verifier) (*Engine, *Engine) {
	ea, err := NewEngine(simConfig(sa, v, 1, Timers{}))
	if err != nil {
		tb.Fatal(err)
	}
	eb, err := NewEngine(simConfig(sb, v, 2, Timers{}))
	if err != nil {
		tb.Fatal(err)
	}
	return ea, eb
}

// benchHandshakes runs b.N handshakes of host 0 of sa with host 0 of sb,
// each torn down after it, and reports handshakes/s.
func benchHandshakes(b *testing.B, sa, sb site, v Verifier) {
	ea, eb := benchEngines(b, sa, sb, v)
	la, lb := sa.hosts[0].ULID, sb.hosts[0].ULID
	now := simEpoch
	var q []OutPacket
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if n := runHandshake(b, ea, eb, now, la, lb, &q); n != 4 {
			b.Fatalf("handshake took %d messages", n)
		}
		ea.Teardown(now, la, lb)
		eb.Teardown(now, lb, la)
		now = now.Add(time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
}

package shim6

import (
	"flag"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

var benchContexts = flag.Int("shim6.contexts", 100_000, "contexts BenchmarkContextMemory creates")

// acceptAll is a verifier that accepts every list (benchmarks measure the
// engine, not HBA).
type acceptAll struct{}

func (acceptAll) VerifyLocators(netip.Addr, []byte, []byte, uint32, []netip.Addr, []uint8) error {
	return nil
}

// realisticPDS is the size of an HBA-only PDS for two prefixes
// (16 + 8 + 1 + 68 + 4 + 4 + 2·8 octets).
var realisticPDS = make([]byte, 117)

func benchSite(x string, n int) site {
	s := newSite(x, 0)
	for h := 1; h <= n; h++ {
		var locs []netip.Addr
		for i := 0; i < 2; i++ {
			a := s.uplinks[i].Prefix.Addr().As16()
			a[6], a[7] = 0, 1
			a[12], a[13], a[14], a[15] = byte(h>>24), byte(h>>16), byte(h>>8), byte(h)
			locs = append(locs, netip.AddrFrom16(a))
		}
		s.hosts = append(s.hosts, LocalHost{ULID: locs[0], Locators: locs, PDS: realisticPDS})
	}
	return s
}

// handshake runs one I1/R1/I2/R2 exchange between two in-process engines
// and returns the number of messages exchanged.
func runHandshake(tb testing.TB, a, b *Engine, now time.Time, la, lb netip.Addr, q *[]OutPacket) int {
	*q = (*q)[:0]
	cp := func(act *Actions) {
		for _, p := range act.Packets {
			*q = append(*q, OutPacket{Src: p.Src, Dst: p.Dst, Payload: append([]byte(nil), p.Payload...)})
		}
	}
	cp(a.Initiate(now, la, lb))
	n := 0
	toB := true
	for len(*q) > 0 && n < 8 {
		p := (*q)[0]
		*q = (*q)[1:]
		n++
		if toB {
			cp(b.HandleControl(now, p.Src, p.Dst, p.Payload))
		} else {
			cp(a.HandleControl(now, p.Src, p.Dst, p.Payload))
		}
		toB = !toB
	}
	return n
}

func BenchmarkHandshake(b *testing.B) {
	benchHandshakes(b, benchSite("a", 1), benchSite("b", 1), acceptAll{})
}

func BenchmarkContextMemory(b *testing.B) {
	n := *benchContexts
	for i := 0; i < b.N; i++ {
		sa, sb := benchSite("a", 1), benchSite("b", n)
		ea, _ := benchEngines(b, sa, sb, acceptAll{})
		// One host of A talks to all of B's: above B's per-source quotas.
		cfg := simConfig(sb, acceptAll{}, 2, Timers{})
		cfg.MaxContextsPerPeerLocator, cfg.MaxContextsPerPeerPrefix = n, n
		eb, err := NewEngine(cfg)
		if err != nil {
			b.Fatal(err)
		}
		var q []OutPacket
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		now := simEpoch
		la := sa.hosts[0].ULID
		for j := 0; j < n; j++ {
			if runHandshake(b, ea, eb, now, la, sb.hosts[j].ULID, &q) != 4 {
				b.Fatal("handshake failed")
			}
		}
		q = nil
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if ea.Len() != n || eb.Len() != n {
			b.Fatalf("contexts %d %d", ea.Len(), eb.Len())
		}
		per := float64(m1.HeapAlloc-m0.HeapAlloc) / float64(2*n)
		b.ReportMetric(per, "bytes/context")
		b.ReportMetric(float64(n), "contexts/engine")
		runtime.KeepAlive(ea)
		runtime.KeepAlive(eb)
	}
}

func BenchmarkI1Stateless(b *testing.B) {
	sb := benchSite("b", 1)
	e, _ := NewEngine(simConfig(sb, nil, 1, Timers{}))
	src := netip.MustParseAddr("2001:db8:ee::1")
	msg := AppendI1(nil, 77, 88)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.HandleControl(simEpoch, src, sb.hosts[0].ULID, msg)
	}
}

func BenchmarkObserveTraffic(b *testing.B) {
	e, tag := establishedEngine(b)
	b.ReportAllocs()
	now := simEpoch.Add(time.Second)
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Millisecond)
		e.ObserveTraffic(now, tag, now, now.Add(-time.Microsecond))
	}
}

// establishedEngine returns an engine with one established context and its
// local tag.
func establishedEngine(tb testing.TB) (*Engine, ContextTag) {
	sa, sb := benchSite("a", 1), benchSite("b", 1)
	ea, eb := benchEngines(tb, sa, sb, acceptAll{})
	var q []OutPacket
	if runHandshake(tb, ea, eb, simEpoch, sa.hosts[0].ULID, sb.hosts[0].ULID, &q) != 4 {
		tb.Fatal("handshake failed")
	}
	ci, _ := ea.Context(sa.hosts[0].ULID, sb.hosts[0].ULID)
	return ea, ci.LocalTag
}

func TestHotPathAllocs(t *testing.T) {
	e, tag := establishedEngine(t)
	now := simEpoch.Add(time.Second)
	// Warm up buffers.
	e.ObserveTraffic(now, tag, now, now)
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		e.ObserveTraffic(now, tag, now, now.Add(-time.Microsecond))
	}); n != 0 {
		t.Errorf("ObserveTraffic: %v allocs", n)
	}
	ka := AppendKeepalive(nil, tag)
	ci := e.Contexts()[0]
	e.HandleControl(now, ci.PeerLocator, ci.LocalLocator, ka)
	if n := testing.AllocsPerRun(1000, func() {
		e.HandleControl(now, ci.PeerLocator, ci.LocalLocator, ka)
	}); n != 0 {
		t.Errorf("Keepalive: %v allocs", n)
	}
	// The stateless I1 → R1 path allocates nothing: a flood costs no memory.
	sb := benchSite("b", 1)
	r, _ := NewEngine(simConfig(sb, nil, 1, Timers{}))
	src := netip.MustParseAddr("2001:db8:ee::1")
	i1 := AppendI1(nil, 77, 88)
	r.HandleControl(simEpoch, src, sb.hosts[0].ULID, i1)
	if n := testing.AllocsPerRun(1000, func() {
		r.HandleControl(simEpoch, src, sb.hosts[0].ULID, i1)
	}); n != 0 {
		t.Errorf("I1 → R1: %v allocs", n)
	}
}

func ExampleEngine() {
	sa, sb := benchSite("a", 1), benchSite("b", 1)
	a, _ := NewEngine(EngineConfig{Hosts: sa.hosts, Uplinks: sa.uplinks, Verifier: acceptAll{}})
	b, _ := NewEngine(EngineConfig{Hosts: sb.hosts, Uplinks: sb.uplinks, Verifier: acceptAll{}})
	now := time.Now()
	// Outbound traffic for a pair: the default policy sends an I1 at once.
	act := a.HandleTraffic(now, sa.hosts[0].ULID, sb.hosts[0].ULID)
	for len(act.Packets) > 0 {
		p := act.Packets[0]
		msg := append([]byte(nil), p.Payload...)
		m, _ := ParseMessage(msg)
		fmt.Println(m.Type())
		if b.byLocator[p.Dst] != nil {
			act = b.HandleControl(now, p.Src, p.Dst, msg)
		} else {
			act = a.HandleControl(now, p.Src, p.Dst, msg)
		}
	}
	ci, _ := a.Context(sa.hosts[0].ULID, sb.hosts[0].ULID)
	fmt.Println(ci.State)
	// Output:
	// I1
	// R1
	// I2
	// R2
	// ESTABLISHED
}

package shim6

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// checkInvariants verifies the engine's internal tables agree.
func checkInvariants(e *Engine) error {
	for k, c := range e.byPair {
		if c.key() != k {
			return fmt.Errorf("byPair key %v holds context %v", k, c.key())
		}
		if c.state == StateIdle {
			return fmt.Errorf("IDLE context stored")
		}
		if c.localTag != 0 && e.byTag[c.localTag] != c {
			return fmt.Errorf("tag %#x not indexed", c.localTag)
		}
		if c.localTag > MaxTag {
			return fmt.Errorf("tag %#x exceeds 47 bits", c.localTag)
		}
		if c.flags&flagPublished != 0 && !c.canSend() {
			return fmt.Errorf("published context in %v", c.state)
		}
		if c.canSend() && (c.peerTag == 0 || !c.lp.IsValid() || !c.pp.IsValid()) {
			return fmt.Errorf("%v context without peer tag or pair", c.state)
		}
		if c.state == StateEstablished && c.path == nil {
			return fmt.Errorf("established context on no path")
		}
	}
	for t, c := range e.byTag {
		if c.localTag != t || e.byPair[c.key()] != c {
			return fmt.Errorf("byTag %#x stale", t)
		}
	}
	for n, c := range e.byNonce {
		if c.inonce != n || e.byPair[c.key()] != c {
			return fmt.Errorf("byNonce %#x stale", n)
		}
	}
	for t, head := range e.byPeerTag {
		for x := head; x != nil; x = x.nextPeerTag {
			if x.peerTag != t || e.byPair[x.key()] != x {
				return fmt.Errorf("peer tag chain %#x holds a stale context", t)
			}
		}
	}
	for i, c := range e.timers {
		if int(c.heapIdx) != i {
			return fmt.Errorf("heap index %d != %d", c.heapIdx, i)
		}
		if i > 0 && e.timers[(i-1)/2].deadline > c.deadline {
			return fmt.Errorf("heap order broken at %d", i)
		}
		if e.byPair[c.key()] != c {
			return fmt.Errorf("timer for a removed context")
		}
	}
	if len(e.byPair) > e.cfg.MaxContexts {
		return fmt.Errorf("%d contexts, cap %d", len(e.byPair), e.cfg.MaxContexts)
	}
	if err := checkQuotaInvariants(e); err != nil {
		return err
	}
	n, live := 0, 0
	for k, pe := range e.paths {
		if pe.key != k {
			return fmt.Errorf("path key mismatch")
		}
		m := 0
		for x := pe.head; x != nil; x = x.pathNext {
			if x.path != pe {
				return fmt.Errorf("context on the wrong path list")
			}
			m++
		}
		if m != pe.n {
			return fmt.Errorf("path count %d, list %d", pe.n, m)
		}
		n += m
		if m > 0 {
			live++
		}
	}
	if live != e.livePaths {
		return fmt.Errorf("livePaths %d, paths in use %d", e.livePaths, live)
	}
	if len(e.paths)-live > maxIdlePaths {
		return fmt.Errorf("%d idle path hints, bound %d", len(e.paths)-live, maxIdlePaths)
	}
	return nil
}

// fuzzPair runs two engines with a message queue the fuzzer controls.
type fuzzPair struct {
	e        [2]*Engine
	hosts    [2][]LocalHost
	q        []fuzzPkt
	now      time.Time
	verifier *fakeVerifier
}

type fuzzPkt struct {
	to       int
	src, dst netip.Addr
	msg      []byte
}

func newFuzzPair(tb testing.TB) *fuzzPair {
	sa, sb, v := verifiedSites(2)
	f := &fuzzPair{now: simEpoch, verifier: v}
	for i, s := range []site{sa, sb} {
		cfg := simConfig(s, v, byte(i+1), Timers{})
		cfg.TagBits = 4 // few tag bits: exercise confusion (RFC 5533 App. C.4)
		if i == 1 {
			cfg.MaxContexts = 3 // of 4 host pairs: exercise the context cap
		}
		e, err := NewEngine(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		f.e[i] = e
		f.hosts[i] = s.hosts
	}
	return f
}

func (f *fuzzPair) take(from int, a *Actions) {
	for _, p := range a.Packets {
		if len(f.q) < 64 {
			f.q = append(f.q, fuzzPkt{to: 1 - from, src: p.Src, dst: p.Dst, msg: append([]byte(nil), p.Payload...)})
		}
	}
}

// step performs one fuzzer-chosen operation.
func (f *fuzzPair) step(op byte, arg []byte) {
	side := int(op>>7) & 1
	e := f.e[side]
	pick := func(i int) byte {
		if i < len(arg) {
			return arg[i]
		}
		return 0
	}
	h := f.hosts[side][int(pick(0))%2]
	peerH := f.hosts[1-side][int(pick(1))%2]
	switch op % 10 {
	case 0, 1: // deliver (or drop) the queued packet chosen by arg
		if len(f.q) == 0 {
			return
		}
		i := int(pick(0)) % len(f.q)
		p := f.q[i]
		f.q = append(f.q[:i], f.q[i+1:]...)
		if op%10 == 0 {
			f.take(p.to, f.e[p.to].HandleControl(f.now, p.src, p.dst, p.msg))
		}
	case 2: // time passes
		f.now = f.now.Add(time.Duration(pick(0)) * 100 * time.Millisecond)
		for i := range f.e {
			f.take(i, f.e[i].Tick(f.now))
		}
	case 3: // raw bytes as a control message
		f.take(side, e.HandleControl(f.now, peerH.Locators[int(pick(2))%2], h.Locators[0], arg))
	case 4:
		f.take(side, e.HandleTraffic(f.now, h.ULID, peerH.ULID))
	case 5:
		name := fmt.Sprintf("up%s%d", []string{"a", "b"}[side], pick(0)%2+1)
		if pick(1)%2 == 0 {
			f.take(side, e.UplinkDown(f.now, name))
		} else {
			f.take(side, e.UplinkUp(f.now, name))
		}
	case 6:
		f.take(side, e.HandleUnknownTag(f.now, peerH.Locators[int(pick(2))%2], h.Locators[int(pick(3))%2], ContextTag(pick(0)%16)))
	case 7: // data-plane stamps for some context
		tag := ContextTag(pick(0) % 16)
		f.take(side, e.ObserveTraffic(f.now, tag, f.now.Add(-time.Duration(pick(1))*time.Second), f.now.Add(-time.Duration(pick(2))*time.Second)))
	case 8: // corrupt a queued packet and deliver it
		if len(f.q) == 0 {
			return
		}
		p := f.q[0]
		f.q = f.q[1:]
		if len(p.msg) > 0 {
			i := int(pick(0)) % len(p.msg)
			p.msg[i] ^= pick(1) | 1
			// Keep the checksum right half the time so the body is reached.
			if pick(2)%2 == 0 && len(p.msg) >= 8 {
				p.msg[4], p.msg[5] = 0, 0
				c := ControlChecksum(p.msg)
				p.msg[4], p.msg[5] = byte(c>>8), byte(c)
			}
		}
		f.take(p.to, f.e[p.to].HandleControl(f.now, p.src, p.dst, p.msg))
	case 9:
		if pick(0)%3 == 0 {
			f.take(side, e.Initiate(f.now, h.ULID, peerH.ULID))
		} else {
			f.take(side, e.HandleICMP(f.now, pick(1)%5, pick(2)%3, arg))
		}
	}
}

func FuzzEngine(f *testing.F) {
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 50})
	f.Add([]byte{9, 0, 137, 0, 0, 0, 0, 0, 0, 0, 2, 5, 7, 1, 1, 8, 3, 0})
	f.Add([]byte{4, 4, 0, 0, 0, 0, 8, 9, 0, 0, 2, 200, 2, 200, 5, 1, 2, 100})
	f.Add(AppendI1(nil, 3, 4))
	f.Fuzz(func(t *testing.T, data []byte) {
		fp := newFuzzPair(t)
		for len(data) > 0 {
			op := data[0]
			n := 1 + int(op>>4&0x7)
			if n > len(data)-1 {
				n = len(data) - 1
			}
			arg := data[1 : 1+n]
			data = data[1+n:]
			fp.step(op, arg)
			for i, e := range fp.e {
				if err := checkInvariants(e); err != nil {
					t.Fatalf("engine %d: %v", i, err)
				}
			}
		}
	})
}

// TestEngineRandomSequences runs the fuzz body over pseudo-random inputs so
// plain `go test` covers it too.
func TestEngineRandomSequences(t *testing.T) {
	x := uint64(0x9e3779b97f4a7c15)
	var est, explored, drops, limited uint64
	defer func() {
		// The sequences must reach the interesting states, or the test
		// proves nothing.
		if est == 0 || explored == 0 || drops == 0 || limited == 0 {
			t.Errorf("coverage: %d establishments, %d explorations, %d drops, %d context_limit or evictions", est, explored, drops, limited)
		}
	}()
	for run := 0; run < 300; run++ {
		fp := newFuzzPair(t)
		for i := 0; i < 400; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			arg := []byte{byte(x >> 8), byte(x >> 16), byte(x >> 24), byte(x >> 32)}
			fp.step(byte(x), arg)
			for k, e := range fp.e {
				if err := checkInvariants(e); err != nil {
					t.Fatalf("run %d step %d engine %d: %v", run, i, k, err)
				}
			}
		}
		for _, e := range fp.e {
			st := e.Stats()
			est += st.Established
			explored += st.Explorations
			for _, d := range st.Drops {
				drops += d
			}
			limited += st.Drops[DropContextLimit] + st.Evictions
		}
	}
}

func TestSimInvariantsAfterScenarios(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 31, 3, Timers{})
	for i := range 3 {
		establishWithFlow(t, net, a, b, sa, sb, i, 300*time.Millisecond, simEpoch.Add(time.Minute))
	}
	net.rules = blackhole("2001:db8:b1::/48")
	net.runFor(30 * time.Second)
	b.apply(b.e.UplinkDown(net.now, "upb1"))
	net.runFor(30 * time.Second)
	for _, nd := range []*simNode{a, b} {
		if err := checkInvariants(nd.e); err != nil {
			t.Fatalf("%s: %v", nd.name, err)
		}
	}
}

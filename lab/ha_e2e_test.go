package lab

// End-to-end tests of an HA site (issue 13): gw1a and gw1b run the real
// daemon with one configuration behind keepalived; the active one dies,
// comes back, or both are active at once, while a TCP stream runs each
// way between h1 and h2.

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway/metrics"
)

// haPrefix keeps the HA labs apart from the other lab tests.
const haPrefix = "s6labha"

// haLab is one HA lab of a test.
type haLab struct {
	*Lab
	t      *testing.T
	events *EventLog
	log    *lockedFile
	h1, h2 netip.Addr
}

// upHA builds an HA lab with the lab's VRRP timers and the gateways'
// dataplane.fastpath set to fp; the hosts carry entry 0 of their site's
// book.
func upHA(t *testing.T, fp string) *haLab {
	t.Helper()
	skipUnlessRoot(t)
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("skipping: keepalived not installed (Debian package keepalived)")
	}
	bin := gatewayBinary(t)
	dir := t.TempDir()
	b1, b2 := siteBooks(t, dir)
	f, err := os.Create(filepath.Join(dir, "gateways.log"))
	if err != nil {
		t.Fatal(err)
	}
	h := &haLab{t: t, events: NewEventLog(), log: &lockedFile{f: f}}
	ready := func(ctx context.Context, ns string) error { return h.GatewayReady(ctx, ns) }
	start := func(ctx context.Context, ns, cfg string) (func() error, error) {
		return ExecGateway(io.MultiWriter(h.log, h.GatewayLog(ns)), ready, bin, "run", "--config", "{config}")(ctx, ns, cfg)
	}
	l, err := New(Options{Prefix: haPrefix, Mode: Daemon, HA: true, Dir: dir, StartGateway: start, Events: h.events,
		H1Addrs: BookHostAddrs(b1, 0), H2Addrs: BookHostAddrs(b2, 0), Fastpath: fp})
	if err != nil {
		t.Fatal(err)
	}
	h.Lab = l
	h.h1, h.h2 = l.HostAddrs(H1)[0], l.HostAddrs(H2)[0]
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
		assertClean(t, haPrefix)
		assertNoGatewayState(t)
		assertNoProcessUsing(t, dir)
		if t.Failed() {
			h.dump(dir)
		}
		f.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	return h
}

// assertNoProcessUsing fails if a process still runs with dir in its
// command line (keepalived with its configuration there, a daemon).
func assertNoProcessUsing(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), dir) {
			continue
		}
		if st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); strings.Contains(string(st), ") Z ") {
			continue
		}
		t.Errorf("process %s left running: %s", e.Name(), strings.ReplaceAll(string(b), "\x00", " "))
	}
}

// dump logs the events and the tails of the gateways' and keepalived's
// logs.
func (h *haLab) dump(dir string) {
	var b strings.Builder
	for _, e := range h.events.Events() {
		fmt.Fprintf(&b, "%s %s %s %s\n", e.At.Format("15:04:05.000"), e.Node, e.Source, e.What)
	}
	h.t.Logf("events:\n%s", b.String())
	for _, name := range []string{"gateways.log", "keepalived-gw1a.log", "keepalived-gw1b.log"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		h.t.Logf("%s (last %d lines):\n%s", name, len(lines), strings.Join(lines, "\n"))
	}
}

// scenario runs streams both ways for d with the given steps (and no
// failure of RunScenario's own) and fails the test unless they survived.
func (h *haLab) scenario(d time.Duration, steps ...Step) *Report {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	rep, err := h.RunScenario(ctx, ScenarioOptions{Fail: FailNone, ISP: ISPA1, FailAt: steps[0].At, Duration: d, Port: 5611,
		Steps: steps, LocatorPair: h.ActiveContextPair(h.h1, h.h2)})
	if err != nil {
		h.t.Fatal(err)
	}
	var sum strings.Builder
	_ = rep.WriteSummary(&sum)
	h.t.Logf("%s", sum.String())
	if !rep.Survived {
		h.t.Fatalf("the streams did not survive")
	}
	return rep
}

// context returns gw's context of the h1–h2 pair from gw's side.
func (h *haLab) context(ctx context.Context, gw Node) (metrics.ContextInfo, error) {
	local, peer := h.h1, h.h2
	if gw == GW2 {
		local, peer = peer, local
	}
	cs, err := h.Contexts(ctx, gw)
	if err != nil {
		return metrics.ContextInfo{}, err
	}
	c, ok := FindContext(cs, local, peer)
	if !ok {
		return c, fmt.Errorf("%s has no context for %s-%s", gw, local, peer)
	}
	return c, nil
}

// waitPaired waits (at most 10 s) until gw and gw2 hold established
// contexts of the h1–h2 pair whose tags match, and returns them.
func (h *haLab) waitPaired(gw Node) (site1, site2 metrics.ContextInfo) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	for {
		site1, err = h.context(ctx, gw)
		if err == nil {
			site2, err = h.context(ctx, GW2)
		}
		if err == nil && established(site1) && established(site2) &&
			site1.PeerTag == site2.LocalTag && site2.PeerTag == site1.LocalTag {
			return site1, site2
		}
		select {
		case <-ctx.Done():
			h.t.Fatalf("%s and gw2 not paired: %v; %+v %+v", gw, err, site1, site2)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// step is a Step that records its error for the test.
func (h *haLab) step(at time.Duration, name string, do func(ctx context.Context) error) Step {
	return Step{At: at, Name: name, Do: func(ctx context.Context) error {
		if err := do(ctx); err != nil {
			h.t.Errorf("%s: %v", name, err)
		}
		return nil
	}}
}

func (h *haLab) powerOffActive(ctx context.Context) error {
	_, err := h.FailGateway(ctx)
	return err
}

func (h *haLab) wantActive(want ...Node) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		a, err := h.Active(ctx)
		if err == nil && !slices.Equal(a, want) {
			err = fmt.Errorf("active %v, want %v", a, want)
		}
		return err
	}
}

// eventsOf lists the events of node n whose text starts with what.
func (h *haLab) eventsOf(n Node, what string) []Event {
	var out []Event
	for _, e := range h.events.Events() {
		if e.Node == n && strings.HasPrefix(e.What, what) {
			out = append(out, e)
		}
	}
	return out
}

// TestIntegrationHATakeoverAfterProviderFailure: ISP A of site 1 fails,
// the context moves to P_B and payload carries the Shim6 header; then the
// active gateway powers off. gw1b takes the addresses, rebuilds the
// context from gw2's shimmed packets (R1bis/I2bis) or its LAN's traffic
// (I1 to a peer with a stale context), and gw2 keeps its own context and
// tag: the streams survive.
func TestIntegrationHATakeoverAfterProviderFailure(t *testing.T) {
	forEachFastpath(t, testHATakeoverAfterProviderFailure)
}

func testHATakeoverAfterProviderFailure(t *testing.T, fp string) {
	h := upHA(t, fp)
	var before metrics.ContextInfo
	var fast2 float64
	rep := h.scenario(8*time.Second,
		h.step(1500*time.Millisecond, "ISP A fails", func(ctx context.Context) error { return h.FailLink(ctx, ISPA1) }),
		h.step(4*time.Second, "power off active", func(ctx context.Context) error {
			var err error
			if before, err = h.context(ctx, GW2); err != nil {
				return err
			}
			if !Site1.B.Prefix.Contains(before.PeerLocator) {
				return fmt.Errorf("gw2's context not on P_B before the takeover: %+v", before)
			}
			fast2 = fastPackets(t, h.Lab, GW2, `verdict="fast_in_strip"`)
			return h.powerOffActive(ctx)
		}))
	if rep.ActiveBefore != "gw1a" || rep.ActiveAfter != "gw1b" {
		t.Errorf("active %s → %s, want gw1a → gw1b", rep.ActiveBefore, rep.ActiveAfter)
	}
	s1, s2 := h.waitPaired(GW1B)
	if s2.LocalTag != before.LocalTag {
		t.Errorf("gw2's tag %v → %v: the peer must keep its context", before.LocalTag, s2.LocalTag)
	}
	if !Site1.B.Prefix.Contains(s1.LocalLocator) {
		t.Errorf("gw1b's locator %s is not on the live uplink", s1.LocalLocator)
	}
	if len(h.eventsOf(GW1B, "MASTER")) == 0 {
		t.Error("no MASTER event from gw1b's keepalived")
	}
	// The context stays shimmed across the takeover: with ebpf the new
	// active gateway's program strips gw2's payload (a standby forwards
	// nothing, so all it counted came after the takeover) and gw2's
	// strips gw1b's.
	checkFastPath(t, h.Lab, fp, "after the takeover", GW1B, 0, `verdict="fast_in_strip"`)
	checkFastPath(t, h.Lab, fp, "after the takeover", GW2, fast2, `verdict="fast_in_strip"`)
	t.Logf("gap %d ms", rep.GapMS)
}

// TestIntegrationHATakeoverOnULIDPair: the context runs on the ULID pair
// (no header), so gw1b forwards the streams unchanged at once and sets up
// its own context; gw2 replaces CT(peer) in place.
func TestIntegrationHATakeoverOnULIDPair(t *testing.T) {
	forEachFastpath(t, testHATakeoverOnULIDPair)
}

func testHATakeoverOnULIDPair(t *testing.T, fp string) {
	h := upHA(t, fp)
	var before, b2 metrics.ContextInfo
	var fast2 float64
	rep := h.scenario(6*time.Second,
		h.step(1500*time.Millisecond, "contexts before", func(ctx context.Context) error {
			var err error
			if before, err = h.context(ctx, GW1A); err == nil {
				b2, err = h.context(ctx, GW2)
			}
			if err == nil && (before.LocalLocator != h.h1 || before.PeerLocator != h.h2) {
				err = fmt.Errorf("gw1a's context is not on the ULID pair: %+v", before)
			}
			return err
		}),
		h.step(2*time.Second, "power off active", func(ctx context.Context) error {
			fast2 = fastPackets(t, h.Lab, GW2)
			return h.powerOffActive(ctx)
		}))
	if rep.ActiveBefore != "gw1a" || rep.ActiveAfter != "gw1b" {
		t.Errorf("active %s → %s, want gw1a → gw1b", rep.ActiveBefore, rep.ActiveAfter)
	}
	s1, s2 := h.waitPaired(GW1B)
	if s2.LocalTag != b2.LocalTag || s1.LocalTag == before.LocalTag {
		t.Errorf("tags: gw2 %v → %v (want kept), site 1 %v → %v (want new)", b2.LocalTag, s2.LocalTag, before.LocalTag, s1.LocalTag)
	}
	// With ebpf both sides' programs forward the streams after the
	// takeover (gw1b once its own context is up).
	checkFastPath(t, h.Lab, fp, "after the takeover", GW1B, 0)
	checkFastPath(t, h.Lab, fp, "after the takeover", GW2, fast2)
	t.Logf("gap %d ms", rep.GapMS)
}

// TestIntegrationHAFlap: gw1a dies, gw1b takes over; gw1a comes back and
// stays standby (nopreempt); then gw1b dies and gw1a takes over again
// with no state from its first life.
func TestIntegrationHAFlap(t *testing.T) {
	forEachFastpath(t, testHAFlap)
}

func testHAFlap(t *testing.T, fp string) {
	h := upHA(t, fp)
	rep := h.scenario(11*time.Second,
		h.step(1500*time.Millisecond, "power off gw1a", h.powerOffActive),
		h.step(3500*time.Millisecond, "power on gw1a", func(ctx context.Context) error { return h.PowerOn(ctx, GW1A) }),
		h.step(6500*time.Millisecond, "gw1b still active", h.wantActive(GW1B)),
		h.step(7*time.Second, "power off gw1b", h.powerOffActive))
	if rep.ActiveAfter != "gw1a" {
		t.Errorf("active at the end %s, want gw1a", rep.ActiveAfter)
	}
	h.waitPaired(GW1A)
	if n := len(h.eventsOf(GW1A, "MASTER")); n != 2 {
		t.Errorf("gw1a became master %d times, want 2 (start, after gw1b died)", n)
	}
	// gw1a's second daemon started after its power-off (kill -9): with
	// ebpf it holds one program per interface and carried the streams
	// once it took over again.
	checkAttached(t, h.Lab, fp, "after the flap", GW1A)
	checkFastPath(t, h.Lab, fp, "after the second takeover", GW1A, 0)
	t.Logf("largest gap %d ms", rep.GapMS)
}

// TestIntegrationHASplitBrain: VRRP is cut between the gateways, both
// become master and hold the addresses. The hosts and the providers follow
// the last Neighbor Advertisement, so each flow still has one gateway; a
// gateway that gets a flow without its context recovers it. When VRRP
// comes back the higher priority keeps the addresses and announces them:
// one active again and the streams never broke.
func TestIntegrationHASplitBrain(t *testing.T) {
	forEachFastpath(t, testHASplitBrain)
}

func testHASplitBrain(t *testing.T, fp string) {
	h := upHA(t, fp)
	var fast1 float64
	rep := h.scenario(11*time.Second,
		h.step(1500*time.Millisecond, "partition VRRP", h.PartitionVRRP),
		h.step(3500*time.Millisecond, "both active", h.wantActive(GW1A, GW1B)),
		h.step(6*time.Second, "heal VRRP", h.HealVRRP),
		h.step(8*time.Second, "one active", func(ctx context.Context) error {
			fast1 = fastPackets(t, h.Lab, GW1A)
			return h.wantActive(GW1A)(ctx)
		}))
	if rep.ActiveAfter != "gw1a" {
		t.Errorf("active at the end %s, want gw1a", rep.ActiveAfter)
	}
	h.waitPaired(GW1A)
	// With ebpf gw1a's program carries the streams once it is alone again.
	checkFastPath(t, h.Lab, fp, "after the heal", GW1A, fast1)
	t.Logf("largest gap %d ms", rep.GapMS)
}

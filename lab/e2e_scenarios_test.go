package lab

// End-to-end scenarios of issue 6 with the real daemon (see e2e_test.go).
// Gaps are logged, never asserted (no timed assertions): docs/benchmarks.md
// holds the measured figures.

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
)

// TestIntegrationE2EFailover: a TCP stream in each direction between h1
// and h2 survives the loss of site 1's ISP A, by carrier loss and by a
// blackhole, with the kernel fast path and without it; the context moves
// to site 1's P_B locator.
func TestIntegrationE2EFailover(t *testing.T) {
	for _, tc := range []struct {
		mode     FailMode
		duration time.Duration
	}{
		// Detection takes the Send Timeout (300 ms with LabTimers), then
		// TCP's backed-off retransmission timer decides when data flows
		// again (the retransmission ~0.6 s after the loss).
		{FailLink, 5 * time.Second},
		{FailBlackhole, 6 * time.Second},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			forEachFastpath(t, func(t *testing.T, fp string) {
				e := upE2EFastpath(t, fp)
				h1, h2 := e.b1[0], e.b2[0]
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				rep, err := e.RunScenario(ctx, ScenarioOptions{Fail: tc.mode, FailAt: 2 * time.Second,
					Duration: tc.duration, LocatorPair: e.ContextPair(GW1, h1, h2)})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s failure: gap %d ms, pair before %s, after %s", tc.mode, rep.GapMS, rep.PairBefore, rep.PairAfter)
				if !rep.Established || !rep.Survived {
					t.Fatalf("report: established %v, survived %v: %+v", rep.Established, rep.Survived, rep)
				}
				// Any pair with site 1's P_B locator works: REAP may also pick
				// site 2's P_B locator (RFC 5534 §4.3 leaves the order open).
				e.waitContexts("after failure", GW1, [][2]netip.Addr{{h1, h2}}, onUplink(Site1.B.LAN))
				// Site 2's gateway sees site 1's new locator.
				c2 := e.waitContexts("after failure", GW2, [][2]netip.Addr{{h2, h1}}, established)
				if !Site1.B.LAN.Contains(c2[0].PeerLocator) {
					t.Errorf("gw2 context peer locator %s, want site 1's P_B locator", c2[0].PeerLocator)
				}
				// The moved context is shimmed: with ebpf the program
				// stripped its payload headers on both sides, so the
				// failover reached the kernel's maps.
				for _, gw := range []Node{GW1, GW2} {
					checkFastPath(t, e.Lab, fp, "after the failover", gw, 0, `verdict="fast_in_strip"`)
				}
				if fp == config.FastpathEBPF {
					t.Logf("gw1's fast-path counters:\n%s", fastpathCounters(t, e.Lab, GW1))
				}
			})
		})
	}
}

// TestIntegrationE2EAllContextsMoveAndRestore: three host pairs, so three
// contexts; a link failure moves every one of them to P_B, and after the
// link is restored every connection is still alive and carrying data.
func TestIntegrationE2EAllContextsMoveAndRestore(t *testing.T) {
	forEachFastpath(t, testAllContextsMoveAndRestore)
}

func testAllContextsMoveAndRestore(t *testing.T, fp string) {
	e := upE2EFastpath(t, fp, 0, 1, 2)
	var streams []*Stream
	var pairs [][2]netip.Addr
	for i := range e.b1 {
		streams = append(streams, e.stream(StreamConfig{Name: "h1->h2", From: H1, Src: e.b1[i], To: H2, Dst: e.b2[i], Port: uint16(5611 + i)}))
		pairs = append(pairs, [2]netip.Addr{e.b1[i], e.b2[i]})
	}
	streams = append(streams, e.stream(StreamConfig{Name: "h2->h1", From: H2, Src: e.b2[0], To: H1, Dst: e.b1[0], Port: 5621}))
	e.waitContexts("before failure", GW1, pairs, established)
	for _, s := range streams {
		waitMore(t, s, 0)
	}
	checkFastPath(t, e.Lab, fp, "before the failure", GW1, 0)

	failAt := e.fail(ISPA1, FailLink)
	before := make([]int64, len(streams))
	for i, s := range streams {
		before[i] = s.Tracker.Bytes()
	}
	moved := e.waitContexts("after failure", GW1, pairs, onUplink(Site1.B.LAN))
	strip := fastPackets(t, e.Lab, GW1, `verdict="fast_in_strip"`)
	for i, s := range streams {
		waitMore(t, s, before[i])
		t.Logf("%s %s: gap %v after the link failure", s.Stats(time.Now()).Name, s.Stats(time.Now()).Src,
			s.Tracker.MaxGapAfter(failAt, time.Now()).Len())
	}
	for _, c := range moved {
		t.Logf("moved: %s -> %s on %s -> %s", c.LocalULID, c.PeerULID, c.LocalLocator, c.PeerLocator)
	}
	// The moved contexts are shimmed; with ebpf the program strips
	// their payload headers, so the failover reached the kernel's maps.
	checkFastPath(t, e.Lab, fp, "after the failover", GW1, strip, `verdict="fast_in_strip"`)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.Restore(ctx, ISPA1); err != nil {
		t.Fatal(err)
	}
	restoredAt := time.Now()
	// Traffic may move back to P_A; it must keep flowing either way.
	// Wait for the monitor to see carrier again and a few REAP rounds.
	time.Sleep(3 * time.Second)
	for i, s := range streams {
		before[i] = s.Tracker.Bytes()
	}
	fast := fastPackets(t, e.Lab, GW1)
	for i, s := range streams {
		waitMore(t, s, before[i])
		t.Logf("%s: gap %v after the restore", s.Stats(time.Now()).Name, s.Tracker.MaxGapAfter(restoredAt, time.Now()).Len())
	}
	// On P_A again (passthrough) or still shimmed: the program carries them.
	checkFastPath(t, e.Lab, fp, "after the restore", GW1, fast)
	for _, c := range e.waitContexts("after restore", GW1, pairs, established) {
		t.Logf("after restore: %s -> %s on %s -> %s", c.LocalULID, c.PeerULID, c.LocalLocator, c.PeerLocator)
	}
	checkAlive(t, streams...)
}

// TestIntegrationE2EGatewayRestart: site 2's gateway is killed with
// SIGKILL while the context is shimmed (ISP A of site 1 failed, so payload
// carries the extension header) and started again without state: it
// answers the payload with R1bis, site 1 re-creates the context with
// I2bis (RFC 5533 §7.15-7.17, docs/architecture.md §11) and both connections survive.
func TestIntegrationE2EGatewayRestart(t *testing.T) {
	forEachFastpath(t, testGatewayRestart)
}

func testGatewayRestart(t *testing.T, fp string) {
	e := upE2EFastpath(t, fp)
	h1, h2 := e.b1[0], e.b2[0]
	s1 := e.stream(StreamConfig{Name: "h1->h2", From: H1, Src: h1, To: H2, Dst: h2, Port: 5631})
	s2 := e.stream(StreamConfig{Name: "h2->h1", From: H2, Src: h2, To: H1, Dst: h1, Port: 5632})
	e.waitContexts("before failure", GW1, [][2]netip.Addr{{h1, h2}}, established)
	e.fail(ISPA1, FailLink)
	e.waitContexts("after failure", GW1, [][2]netip.Addr{{h1, h2}}, onUplink(Site1.B.LAN))
	waitMore(t, s1, s1.Tracker.Bytes())
	waitMore(t, s2, s2.Tracker.Bytes())
	i2bisBefore := e.metric(GW1, "shim6gw_control_messages_total", `type="i2bis"`, `direction="tx"`)

	killedAt := time.Now()
	e.killGateway(GW2)
	// Down for a moment, as a crashed daemon under systemd would be.
	time.Sleep(500 * time.Millisecond)
	e.restartGateway(Site2)
	t.Logf("gw2 down for %v (SIGKILL to ready)", time.Since(killedAt).Round(time.Millisecond))
	n1, n2 := s1.Tracker.Bytes(), s2.Tracker.Bytes()
	waitMore(t, s1, n1)
	waitMore(t, s2, n2)
	c := e.waitContexts("after restart", GW2, [][2]netip.Addr{{h2, h1}}, established)
	if !Site1.B.LAN.Contains(c[0].PeerLocator) {
		t.Errorf("restarted gw2's context peer locator %s, want site 1's P_B locator", c[0].PeerLocator)
	}
	now := time.Now()
	r1bis := e.metric(GW2, "shim6gw_control_messages_total", `type="r1bis"`, `direction="tx"`)
	i2bis := e.metric(GW1, "shim6gw_control_messages_total", `type="i2bis"`, `direction="tx"`) - i2bisBefore
	t.Logf("gap across the restart: h1->h2 %v, h2->h1 %v; restarted gw2 sent %v R1bis, gw1 sent %v I2bis",
		s1.Tracker.MaxGapAfter(killedAt, now).Len(), s2.Tracker.MaxGapAfter(killedAt, now).Len(), r1bis, i2bis)
	// Shimmed payload for a tag the new gw2 does not know must draw an
	// R1bis (RFC 5533 §7.17), answered with I2bis (§7.18).
	if r1bis < 1 || i2bis < 1 {
		t.Errorf("recovery without R1bis/I2bis: gw2 sent %v R1bis, gw1 sent %v I2bis", r1bis, i2bis)
	}
	checkAlive(t, s1, s2)
	// The restarted daemon's counters start at zero: with ebpf its
	// program strips the recovered context's payload, and exactly one
	// program of ours hangs on each interface (the killed one's links
	// went with its process, or the restart's crash recovery removed
	// them).
	checkFastPath(t, e.Lab, fp, "after the restart", GW2, 0, `verdict="fast_in_strip"`)
	checkAttached(t, e.Lab, fp, "after the restart", GW2)
}

// TestIntegrationE2ELegacyPeer: while site 1's ISP A is down, a new TCP
// connection from h1's ULID (under P_A) to the legacy host, which does
// not speak shim6, succeeds: the gateway sends it with h1's P_B locator
// (docs/architecture.md §7). An established shim6 session is unaffected.
func TestIntegrationE2ELegacyPeer(t *testing.T) {
	forEachFastpath(t, testLegacyPeer)
}

func testLegacyPeer(t *testing.T, fp string) {
	e := upE2EFastpath(t, fp)
	h1, h2 := e.b1[0], e.b2[0]
	s := e.stream(StreamConfig{Name: "h1->h2", From: H1, Src: h1, To: H2, Dst: h2, Port: 5641})
	e.waitContexts("before failure", GW1, [][2]netip.Addr{{h1, h2}}, established)
	e.fail(ISPA1, FailLink)
	e.waitContexts("after failure", GW1, [][2]netip.Addr{{h1, h2}}, onUplink(Site1.B.LAN))
	waitMore(t, s, s.Tracker.Bytes())
	fast := fastPackets(t, e.Lab, GW1)

	legacyAt := time.Now()
	leg := e.stream(StreamConfig{Name: "h1->legacy", From: H1, Src: h1, To: Legacy, Dst: LegacyAddr, Port: 5642})
	waitMore(t, leg, 100_000)
	n := s.Tracker.Bytes()
	waitMore(t, s, n)
	t.Logf("legacy flow received %d bytes; shim6 session gap since the legacy flow %v",
		leg.Tracker.Bytes(), s.Tracker.MaxGapAfter(legacyAt, time.Now()).Len())
	checkAlive(t, s, leg)
	// The legacy host sees h1's P_B locator, the stateless 1:1
	// translation of its ULID.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.Exec(ctx, Legacy, "ss", "-Htn", "state", "established", "sport", "= :5642")
	if err != nil {
		t.Fatal(err)
	}
	if pb := e.HostAddrs(H1)[1]; !strings.Contains(string(out), "["+pb.String()+"]") {
		t.Errorf("legacy host's connection is not from h1's P_B locator %s:\n%s", pb, out)
	}
	c := e.contexts(GW1)
	if got, ok := FindContext(c, h1, LegacyAddr); ok && got.State == "established" {
		t.Errorf("gw1 has an established shim6 context with the legacy host: %+v", got)
	}
	// The shim6 session stays on the fast path; the translated legacy
	// flow is left to the TUN path (verdict tun_fallback), which only
	// the ebpf run can count.
	checkFastPath(t, e.Lab, fp, "shim6 session beside the legacy flow", GW1, fast)
	if fb := fastpathPackets(t, e.Lab, GW1, `verdict="tun_fallback"`); fp == config.FastpathEBPF && fb == 0 {
		t.Errorf("gw1's fast path handed no fallback packet to the TUN path:\n%s", fastpathCounters(t, e.Lab, GW1))
	}
}

// TestIntegrationE2EMalformed: a few thousand random and truncated
// Next-Header-140 packets from the core at site 1's addresses: the gateway
// keeps running, counts them as drops, and the open session carries on.
func TestIntegrationE2EMalformed(t *testing.T) {
	forEachFastpath(t, testMalformed)
}

func testMalformed(t *testing.T, fp string) {
	e := upE2EFastpath(t, fp)
	h1, h2 := e.b1[0], e.b2[0]
	s1, s2 := e.twoStreams(5651)
	pid := e.gatewayPID(GW1)
	// Each malformed packet is one drop: a control message the engine
	// cannot parse, or a payload packet the data plane refuses. (R1bis
	// replies to unknown tags that the rate limit suppressed count as
	// rate_limited on top, so that reason is left out.)
	countDrops := func() float64 {
		return e.metric(GW1, "shim6gw_control_dropped_messages_total", `reason="malformed"`) +
			e.metric(GW1, "shim6gw_rewrite_dropped_packets_total")
	}
	dropsBefore := countDrops()

	floodAt := time.Now()
	// h1's ULID and P_B locator, another book address and a LAN address
	// outside the book: both uplinks and every lookup path.
	targets := []netip.Addr{h1, e.HostAddrs(H1)[1], Site1.A.HostAddr()}
	const n = 3000
	sent := e.flood(targets, n)
	t.Logf("sent %d malformed NH-140 packets in %v", sent, time.Since(floodAt).Round(time.Millisecond))
	if sent < n*9/10 {
		t.Fatalf("only %d of %d packets sent", sent, n)
	}
	n1, n2 := s1.Tracker.Bytes(), s2.Tracker.Bytes()
	fast := fastPackets(t, e.Lab, GW1)
	waitMore(t, s1, n1)
	waitMore(t, s2, n2)
	checkFastPath(t, e.Lab, fp, "after the flood", GW1, fast)

	if got := e.gatewayPID(GW1); got != pid {
		t.Errorf("gw1 daemon pid %d, was %d: it restarted", got, pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.AdminGet(ctx, GW1, "/healthz"); err != nil {
		t.Errorf("gw1 not healthy after the flood: %v", err)
	}
	// Counters are published with the next snapshot: poll, bounded.
	var drops float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		drops = countDrops() - dropsBefore
		if drops >= float64(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("gw1 counted %v drops; session gap since the flood: h1->h2 %v, h2->h1 %v", drops,
		s1.Tracker.MaxGapAfter(floodAt, time.Now()).Len(), s2.Tracker.MaxGapAfter(floodAt, time.Now()).Len())
	t.Logf("gw1 drop and control counters after the flood:\n%s", e.nonZero(GW1, "dropped", `type="`))
	// A few may be lost on the way (veth and TUN queues), none may pass.
	if drops < float64(sent)*9/10 {
		t.Errorf("gw1 counted %v drops for %d malformed packets", drops, sent)
	}
	// Nothing reached h1's stack: it would count a packet of the
	// unknown protocol 140.
	if got := e.snmp6(H1, "Ip6InUnknownProtos"); got != 0 {
		t.Errorf("h1 received %d packets with next header 140 (of an unknown protocol)", got)
	}
	c := e.waitContexts("after the flood", GW1, [][2]netip.Addr{{h1, h2}}, established)
	if c[0].LocalLocator != h1 || c[0].PeerLocator != h2 {
		t.Errorf("context moved to %s -> %s", c[0].LocalLocator, c[0].PeerLocator)
	}
	checkAlive(t, s1, s2)
}

// flood sends n malformed shim6 packets (IPv6 next header 140) from the
// core to targets through a raw socket and returns how many were sent.
// A third are random bytes of random length (0..120), a third truncated
// or garbled payload extension headers (P bit set, random context tag,
// RFC 5533 §5.1), a third control headers (P bit clear) with random type,
// length and checksum, cut anywhere (§5.2).
func (e *e2e) flood(targets []netip.Addr, n int) int {
	e.t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	sent := 0
	err := inNS(e.NS(Core), func() error {
		fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, 140)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		buf := make([]byte, 128)
		for i := range n {
			var pkt []byte
			switch i % 3 {
			case 0:
				pkt = buf[:rng.IntN(121)]
				fillRandom(rng, pkt)
			case 1:
				pkt = buf[:rng.IntN(24)]
				fillRandom(rng, pkt)
				if len(pkt) > 2 {
					pkt[1] = 0
					pkt[2] |= 0x80
				}
			default:
				pkt = buf[:rng.IntN(64)]
				fillRandom(rng, pkt)
				if len(pkt) > 2 {
					pkt[0] = 59 // no next header
					pkt[1] = byte(rng.IntN(8))
					pkt[2] = byte(1 + rng.IntN(0x46)) // P clear, types 1..70
				}
			}
			dst := targets[i%len(targets)]
			sa := &syscall.SockaddrInet6{Addr: dst.As16()}
			if err := syscall.Sendto(fd, pkt, 0, sa); err == nil {
				sent++
			}
			if i%200 == 199 {
				// Let the veths and the gateway keep up: this tests
				// robustness, not the queue limits.
				time.Sleep(5 * time.Millisecond)
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("flood: %v", err)
	}
	return sent
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
}

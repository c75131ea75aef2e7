package lab

// End-to-end tests of the hosts that join site 1's LAN without hand
// configuration (lanhosts.go): a real ISC dhclient -6 against gw1's
// DHCPv6 server and a SLAAC-only kernel translated by gw1. Gaps are
// logged, never asserted.

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"golang.org/x/net/ipv6"
)

// upLAN builds an end-to-end lab with h1d and h1s, the gateways'
// dataplane.fastpath set to fp, and checks, at the end, that the
// machine's /etc/resolv.conf is as it was: the DHCPv6 client must only
// ever touch its address.
func upLAN(t *testing.T, fp string) *e2e {
	t.Helper()
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if now, _ := os.ReadFile("/etc/resolv.conf"); string(now) != string(resolv) {
			t.Errorf("/etc/resolv.conf changed during the test:\n%s", now)
		}
	})
	return upE2EOpts(t, func(o *Options) { o.LANHosts, o.Fastpath = true, fp })
}

// dhcpLease is one DHCPv6 lease of /debug/leases.
type dhcpLease struct {
	DUID    string     `json:"duid"`
	Entry   int        `json:"entry"`
	Address netip.Addr `json:"address"`
	State   string     `json:"state"`
}

// leases is gw1's /debug/leases.
type leases struct {
	DHCPv6 []dhcpLease `json:"dhcpv6"`
	SLAAC  []struct {
		Host  netip.Addr `json:"host"`
		ULID  netip.Addr `json:"ulid"`
		Entry int        `json:"entry"`
	} `json:"slaac"`
}

func (e *e2e) leases() leases {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := e.AdminGet(ctx, GW1, "/debug/leases")
	if err != nil {
		e.t.Fatal(err)
	}
	var l leases
	if err := json.Unmarshal(body, &l); err != nil {
		e.t.Fatalf("/debug/leases: %v: %s", err, body)
	}
	return l
}

// TestIntegrationE2ELANHostsFailover: h1 (static), h1d (address from
// dhclient -6) and h1s (SLAAC, translated) each hold a TCP session to h2
// through the loss of site 1's ISP A; every session survives, the report
// names each stream's host and addressing, and gw1's tables show the
// lease and the mapping the sessions used.
func TestIntegrationE2ELANHostsFailover(t *testing.T) {
	forEachFastpath(t, testLANHostsFailover)
}

func testLANHostsFailover(t *testing.T, fp string) {
	e := upLAN(t, fp)
	h1d, h1s := e.HostAddrs(H1D)[0], e.HostAddrs(H1S)[0]
	if !Site1.A.LAN.Contains(h1d) || !SLAACPrefix.Contains(h1s) {
		t.Fatalf("h1d %s, h1s %s: want a ULID under %s and an address in %s", h1d, h1s, Site1.A.LAN, SLAACPrefix)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.checkSLAACULIDCrossesTranslator(ctx, h1s)
	rep, err := e.RunScenario(ctx, ScenarioOptions{Fail: FailLink, FailAt: 2 * time.Second,
		Duration: 5 * time.Second, LocatorPair: e.ContextPair(GW1, e.b1[0], e.b2[0])})
	if err != nil {
		t.Fatal(err)
	}
	got := map[Node]string{}
	for _, s := range rep.Streams {
		t.Logf("%-7s %-4s %-16s %s -> %s: %d bytes, max gap %d ms, resets %d %s",
			s.Name, s.Host, s.Addressing, s.Src, s.Dst, s.Bytes, s.MaxGapMS, s.Resets, s.Err)
		if s.Name != "h2->h1" {
			got[s.Host] = s.Addressing
		}
	}
	want := map[Node]string{H1: AddrStatic, H1D: AddrDHCPv6, H1S: AddrSLAACTranslated}
	if len(got) != len(want) || got[H1] != want[H1] || got[H1D] != want[H1D] || got[H1S] != want[H1S] {
		t.Errorf("streams' hosts and addressing %v, want %v", got, want)
	}
	if !rep.Established || !rep.Survived {
		t.Fatalf("report: established %v, survived %v, gap %d ms: %+v", rep.Established, rep.Survived, rep.GapMS, rep.Streams)
	}
	t.Logf("largest gap %d ms; pair before %s, after %s", rep.GapMS, rep.PairBefore, rep.PairAfter)

	l := e.leases()
	i := slices.IndexFunc(l.DHCPv6, func(x dhcpLease) bool {
		return x.Address == h1d
	})
	if i < 0 || l.DHCPv6[i].State != "bound" || l.DHCPv6[i].Entry < DHCPv6FirstEntry || l.DHCPv6[i].Entry >= DHCPv6FirstEntry+DHCPv6Entries {
		t.Errorf("gw1 leases %+v: want h1d's %s bound to an entry of the DHCPv6 pool", l.DHCPv6, h1d)
	}
	var ulid netip.Addr
	for _, m := range l.SLAAC {
		if m.Host == h1s {
			ulid = m.ULID
			if m.Entry < SLAACFirstEntry || m.Entry >= SLAACFirstEntry+SLAACEntries {
				t.Errorf("h1s mapped to entry %d, outside the SLAAC pool", m.Entry)
			}
		}
	}
	if !ulid.IsValid() {
		t.Fatalf("gw1 has no mapping for h1s's %s: %+v", h1s, l.SLAAC)
	}
	// The translated session moved like the others: its context is on
	// site 1's P_B locator.
	e.waitContexts("h1s after failure", GW1, [][2]netip.Addr{{ulid, e.b2[0]}}, onUplink(Site1.B.LAN))
	// The moved contexts are shimmed: with ebpf the program strips their
	// payload headers, so the failover reached the kernel's maps.
	checkFastPath(t, e.Lab, fp, "after the failover", GW1, 0, `verdict="fast_in_strip"`)
	t.Logf("gw1's fast-path counters:\n%s", fastpathCounters(t, e.Lab, GW1))
}

// TestIntegrationE2EDHCPv6Restart: dhclient's address survives a gateway
// restart (SIGTERM) and a kill -9 + restart; after both, a client that
// starts afresh (no lease file, same DUID) is given the same address
// again, from the lease file the gateway reloaded.
func TestIntegrationE2EDHCPv6Restart(t *testing.T) {
	forEachFastpath(t, testDHCPv6Restart)
}

func testDHCPv6Restart(t *testing.T, fp string) {
	e := upLAN(t, fp)
	leased := e.HostAddrs(H1D)[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hasLease := func(when string) {
		t.Helper()
		as, err := e.GlobalAddrs(ctx, H1D)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(as, leased) {
			t.Fatalf("%s: h1d holds %v, not its lease %s", when, as, leased)
		}
		if n, err := e.UDPProbe(ctx, H1D, leased, H2, e.b2[0], 5671, 5, time.Second); err != nil || n == 0 {
			t.Fatalf("%s: h1d's %s cannot reach h2 (%d of 5 probes, %v)", when, leased, n, err)
		}
	}
	// SIGTERM: the daemon stops in order, then starts again.
	e.signalGateway(GW1, syscall.SIGTERM)
	e.restartGateway(Site1)
	hasLease("after a restart")
	checkAttached(t, e.Lab, fp, "after a restart", GW1)

	e.killGateway(GW1)
	// Down for a moment, as a crashed daemon under systemd would be (its
	// threads, and so its instance lock, outlive the zombie leader).
	time.Sleep(500 * time.Millisecond)
	e.restartGateway(Site1)
	hasLease("after kill -9 and restart")
	checkAttached(t, e.Lab, fp, "after kill -9 and restart", GW1)
	if l := e.leases(); !slices.ContainsFunc(l.DHCPv6, func(x dhcpLease) bool {
		return x.Address == leased && x.State == "bound"
	}) {
		t.Errorf("restarted gw1 lost the binding of %s: %+v", leased, l.DHCPv6)
	}

	again, err := e.StartDHCPClient(ctx, "h1d-dhclient6-fresh.leases")
	if err != nil {
		t.Fatal(err)
	}
	if again != leased {
		t.Errorf("a fresh client with the same DUID got %s, had %s", again, leased)
	}
}

// TestIntegrationE2ELANMalformed: malformed DHCPv6 messages, Router
// Solicitations and a Neighbor Solicitation from a LAN host are dropped and counted by reason on
// gw1's /metrics, and gw1 keeps serving.
func TestIntegrationE2ELANMalformed(t *testing.T) {
	forEachFastpath(t, testLANMalformed)
}

func testLANMalformed(t *testing.T, fp string) {
	e := upLAN(t, fp)
	dhcpBefore := e.metric(GW1, "shim6gw_dhcpv6_dropped_messages_total", `reason="malformed"`)
	raBefore := map[string]float64{}
	for _, r := range []string{"malformed", "hop_limit", "code", "target"} {
		raBefore[r] = e.metric(GW1, "shim6gw_ra_dropped_messages_total", `reason="`+r+`"`)
	}
	const n = 5
	err := inNS(e.NS(H1), func() error {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified})
		if err != nil {
			return err
		}
		defer c.Close()
		to := &net.UDPAddr{IP: net.ParseIP("ff02::1:2"), Port: 547, Zone: HostIf}
		for i := 0; i < n; i++ {
			// A Solicit cut inside its transaction ID.
			if _, err := c.WriteToUDP([]byte{1, 0xab}, to); err != nil {
				return err
			}
		}
		r, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		defer r.Close()
		p := ipv6.NewPacketConn(r)
		allRouters := &net.IPAddr{IP: net.ParseIP("ff02::2"), Zone: HostIf}
		for _, m := range []struct {
			hop int
			msg []byte
		}{
			{1, []byte{133, 0, 0, 0, 0, 0, 0, 0}},         // hop limit 1: not from the link
			{255, []byte{133, 1, 0, 0, 0, 0, 0, 0}},       // code 1
			{255, []byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 0}}, // option of length 0
			// An NS for a multicast target (ff02::1).
			{255, append([]byte{135, 0, 0, 0, 0, 0, 0, 0, 0xff, 2}, append(make([]byte, 13), 1)...)},
		} {
			if err := p.SetMulticastHopLimit(m.hop); err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				if _, err := r.WriteTo(m.msg, allRouters); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Counters are published with the next snapshot: poll, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := e.metric(GW1, "shim6gw_dhcpv6_dropped_messages_total", `reason="malformed"`) - dhcpBefore
		ra := map[string]float64{}
		done := d >= n
		for r, before := range raBefore {
			ra[r] = e.metric(GW1, "shim6gw_ra_dropped_messages_total", `reason="`+r+`"`) - before
			done = done && ra[r] >= n
		}
		if done {
			t.Logf("gw1 dropped %v malformed DHCPv6 messages and RS/NS by reason %v", d, ra)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s gw1 counted %v malformed DHCPv6 drops and RS/NS drops %v, want %d each\n%s",
				d, ra, n, e.nonZero(GW1, "dropped"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Still serving: a fresh client gets its lease.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.StartDHCPClient(ctx, "h1d-dhclient6-after.leases"); err != nil {
		t.Fatal(err)
	}
	// With ebpf the program sat at lan0's ingress all along and handed
	// the LAN's control messages on.
	checkAttached(t, e.Lab, fp, "after the malformed messages", GW1)
}

// TestIntegrationE2EDHCPv6PoolFlood: a LAN host floods Solicits with
// random DUIDs at gw1's DHCPv6 pool (4 entries, one leased to h1d). The
// pool runs out: the rest are refused and counted (pool_exhausted, or
// rate_limited once the burst is spent), no entry is held twice, and
// h1d's binding stays: a fresh client with its DUID gets its address back.
func TestIntegrationE2EDHCPv6PoolFlood(t *testing.T) {
	forEachFastpath(t, testDHCPv6PoolFlood)
}

func testDHCPv6PoolFlood(t *testing.T, fp string) {
	e := upLAN(t, fp)
	leased := e.HostAddrs(H1D)[0]
	refused := func(reason string) float64 {
		return e.metric(GW1, "shim6gw_dhcpv6_refusals_total", `reason="`+reason+`"`)
	}
	exhaustedBefore, limitedBefore := refused("pool_exhausted"), refused("rate_limited")
	const n = 50
	err := inNS(e.NS(H1), func() error {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified, Port: 546})
		if err != nil {
			return err
		}
		defer c.Close()
		to := &net.UDPAddr{IP: net.ParseIP("ff02::1:2"), Port: 547, Zone: HostIf}
		for i := 0; i < n; i++ {
			mac := net.HardwareAddr{0x02, 0x5e, 0, 0, byte(i >> 8), byte(i)}
			m, err := dhcpv6.NewSolicit(mac)
			if err != nil {
				return err
			}
			if _, err := c.WriteToUDP(m.ToBytes(), to); err != nil {
				return err
			}
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// At most DHCPv6Entries-1 strangers get an offer; every other
	// Solicit is refused.
	want := float64(n - (DHCPv6Entries - 1))
	deadline := time.Now().Add(10 * time.Second)
	var exhausted, limited float64
	for {
		exhausted, limited = refused("pool_exhausted")-exhaustedBefore, refused("rate_limited")-limitedBefore
		if exhausted+limited >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d Solicits with new DUIDs: %v refused pool_exhausted, %v rate_limited", n, exhausted, limited)
	if exhausted < 1 || exhausted+limited < want {
		t.Errorf("refusals: %v pool_exhausted, %v rate_limited; want ≥ 1 and %v in all", exhausted, limited, want)
	}
	l := e.leases()
	entries := map[int]string{}
	for _, x := range l.DHCPv6 {
		if other, ok := entries[x.Entry]; ok {
			t.Errorf("entry %d held by %s and %s", x.Entry, other, x.DUID)
		}
		entries[x.Entry] = x.DUID
		if x.Entry < DHCPv6FirstEntry || x.Entry >= DHCPv6FirstEntry+DHCPv6Entries {
			t.Errorf("lease of entry %d outside the pool: %+v", x.Entry, x)
		}
	}
	if !slices.ContainsFunc(l.DHCPv6, func(x dhcpLease) bool { return x.Address == leased && x.State == "bound" }) {
		t.Errorf("h1d's binding of %s is gone after the flood: %+v", leased, l.DHCPv6)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	again, err := e.StartDHCPClient(ctx, "h1d-dhclient6-after-flood.leases")
	if err != nil {
		t.Fatal(err)
	}
	if again != leased {
		t.Errorf("after the flood h1d got %s, had %s", again, leased)
	}
	checkAttached(t, e.Lab, fp, "after the flood", GW1)
}

// checkSLAACULIDCrossesTranslator: packets to the ULID a SLAAC host is
// mapped to must cross the translator (the TUN path), never the kernel
// fast path, which cannot translate them back. Even with a neighbour
// entry for the ULID (any LAN host may answer for it) and the context
// on its ULID pair, a TCP stream from h1s to h2 goes on.
func (e *e2e) checkSLAACULIDCrossesTranslator(ctx context.Context, h1s netip.Addr) {
	t := e.t
	t.Helper()
	if n, err := e.UDPProbe(ctx, H1S, h1s, H2, e.b2[0], 5672, 3, time.Second); err != nil || n == 0 {
		t.Fatalf("h1s reaches h2 in %d of 3 probes (%v)", n, err)
	}
	var ulid netip.Addr
	for _, m := range e.leases().SLAAC {
		if m.Host == h1s {
			ulid = m.ULID
		}
	}
	if !ulid.IsValid() {
		t.Fatalf("gw1 has no mapping for h1s's %s", h1s)
	}
	e.waitContexts("h1s's probe", GW1, [][2]netip.Addr{{ulid, e.b2[0]}}, established)
	st := e.stream(StreamConfig{Name: "h1s->h2 ulid check", From: H1S, Src: h1s, To: H2, Dst: e.b2[0], Port: 5673})
	waitMore(t, st, 0)
	// h1s's MAC, and the device gw1 reaches it by.
	field := func(node Node, key string, args ...string) string {
		t.Helper()
		out, err := e.Exec(ctx, node, append([]string{"ip"}, args...)...)
		f := strings.Fields(string(out))
		if i := slices.Index(f, key); err == nil && i >= 0 && i+1 < len(f) {
			return f[i+1]
		}
		t.Fatalf("ip %v in %s: no %q in %q (%v)", args, node, key, out, err)
		return ""
	}
	hostIf := field(H1S, "dev", "-6", "route", "get", e.b2[0].String(), "from", h1s.String())
	lladdr := field(H1S, "link/ether", "-o", "link", "show", "dev", hostIf)
	dev := field(GW1, "dev", "-6", "route", "get", h1s.String())
	if _, err := e.Exec(ctx, GW1, "ip", "-6", "neigh", "replace", ulid.String(), "lladdr", lladdr, "dev", dev, "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	defer e.Exec(ctx, GW1, "ip", "-6", "neigh", "del", ulid.String(), "dev", dev)
	// h2's acknowledgements go to the ULID: the stream goes on only if
	// they are translated.
	waitBytes(t, st, st.Tracker.Bytes()+2<<20)
	st.Stop()
}

package lab

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/gateway/metrics"
)

func TestAddressingPlan(t *testing.T) {
	got := map[string]string{}
	for _, s := range []Site{Site1, Site2} {
		for _, u := range s.Uplinks() {
			k := string(u.ISP)
			got[k+" prefix"] = u.Prefix.String()
			got[k+" lan"] = u.LAN.String()
			got[k+" host"] = u.HostAddr().String()
			got[k+" gw lan"] = u.GatewayLAN.String()
			got[k+" isp"] = u.ISPAddr.String()
			got[k+" gw"] = u.GWAddr.String()
			got[k+" core"] = u.CoreNet.String()
		}
	}
	want := map[string]string{
		"ispa1 prefix": "2001:db8:a1::/48", "ispa1 lan": "2001:db8:a1:1::/64", "ispa1 host": "2001:db8:a1:1::100",
		"ispa1 gw lan": "2001:db8:a1:1::1", "ispa1 isp": "2001:db8:a1:ffff::1", "ispa1 gw": "2001:db8:a1:ffff::2",
		"ispa1 core":   "2001:db8:ff00:a1::/64",
		"ispb1 prefix": "2001:db8:b1::/48", "ispb1 lan": "2001:db8:b1:1::/64", "ispb1 host": "2001:db8:b1:1::100",
		"ispb1 gw lan": "2001:db8:b1:1::1", "ispb1 isp": "2001:db8:b1:ffff::1", "ispb1 gw": "2001:db8:b1:ffff::2",
		"ispb1 core":   "2001:db8:ff00:b1::/64",
		"ispa2 prefix": "2001:db8:a2::/48", "ispa2 lan": "2001:db8:a2:1::/64", "ispa2 host": "2001:db8:a2:1::100",
		"ispa2 gw lan": "2001:db8:a2:1::1", "ispa2 isp": "2001:db8:a2:ffff::1", "ispa2 gw": "2001:db8:a2:ffff::2",
		"ispa2 core":   "2001:db8:ff00:a2::/64",
		"ispb2 prefix": "2001:db8:b2::/48", "ispb2 lan": "2001:db8:b2:1::/64", "ispb2 host": "2001:db8:b2:1::100",
		"ispb2 gw lan": "2001:db8:b2:1::1", "ispb2 isp": "2001:db8:b2:ffff::1", "ispb2 gw": "2001:db8:b2:ffff::2",
		"ispb2 core": "2001:db8:ff00:b2::/64",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("addressing plan (-want +got):\n%s", d)
	}
	for _, s := range []Site{Site1, Site2} {
		for _, u := range s.Uplinks() {
			for _, a := range []netip.Addr{u.HostAddr(), u.GatewayLAN, u.ISPAddr, u.GWAddr} {
				if !u.Prefix.Contains(a) {
					t.Errorf("%s: %s outside the customer prefix %s (would fail the ingress filter)", u.ISP, a, u.Prefix)
				}
			}
		}
	}
}

// linkCounts counts the links per node and checks that no interface
// name is used twice in a namespace.
func linkCounts(t *testing.T, ls []link) map[Node]int {
	t.Helper()
	seen := map[Node]int{}
	names := map[string]bool{}
	for _, k := range ls {
		seen[k.a]++
		seen[k.b]++
		for _, e := range []string{string(k.a) + "/" + k.aName, string(k.b) + "/" + k.bName} {
			if names[e] {
				t.Errorf("interface %s used twice", e)
			}
			names[e] = true
		}
	}
	return seen
}

func TestLinksConnectEveryNode(t *testing.T) {
	seen := linkCounts(t, links())
	want := map[Node]int{H1: 1, GW1: 3, ISPA1: 2, ISPB1: 2, Core: 5, ISPA2: 2, ISPB2: 2, GW2: 3, H2: 1, Legacy: 1}
	if d := cmp.Diff(want, seen); d != "" {
		t.Errorf("links per node (-want +got):\n%s", d)
	}
}

func TestIPConfig(t *testing.T) {
	hosts := map[Node][]netip.Addr{H1: {netip.MustParseAddr("2001:db8:a1:1::1234")}}
	kernel := ipConfig(GW1, KernelForwarding, hosts)
	daemon := ipConfig(GW1, Daemon, hosts)
	for _, line := range []string{
		"rule add pref 100 lookup main suppress_prefixlength 0",
		"route replace default via 2001:db8:a1:ffff::1 dev upA table 100",
		"rule add pref 110 from 2001:db8:a1::/48 lookup 100",
		"route replace default via 2001:db8:b1:ffff::1 dev upB table 101",
		"rule add pref 111 from 2001:db8:b1::/48 lookup 101",
	} {
		if !slices.Contains(kernel, line) {
			t.Errorf("kernel mode gw1 lacks %q", line)
		}
		if slices.Contains(daemon, line) {
			t.Errorf("daemon mode gw1 has %q (the daemon owns routing)", line)
		}
	}
	for _, line := range []string{"addr add 2001:db8:a1:1::1/64 dev lan0 nodad", "addr add 2001:db8:b1:ffff::2/64 dev upB nodad"} {
		if !slices.Contains(daemon, line) {
			t.Errorf("daemon mode gw1 lacks %q", line)
		}
	}
	h1 := ipConfig(H1, KernelForwarding, hosts)
	for _, line := range []string{"addr add 2001:db8:a1:1::1234/64 dev eth0 nodad", "route replace default via 2001:db8:a1:1::1 dev eth0"} {
		if !slices.Contains(h1, line) {
			t.Errorf("h1 lacks %q in %q", line, h1)
		}
	}
	isp := ipConfig(ISPB2, KernelForwarding, hosts)
	for _, line := range []string{"route replace 2001:db8:b2::/48 via 2001:db8:b2:ffff::2 dev cust",
		"route replace default via 2001:db8:ff00:b2::1 dev core"} {
		if !slices.Contains(isp, line) {
			t.Errorf("ispb2 lacks %q", line)
		}
	}
	if !forwards(GW1, KernelForwarding) || forwards(GW1, Daemon) || forwards(H1, KernelForwarding) || !forwards(Core, Daemon) {
		t.Error("forwarding per node and mode is wrong")
	}
}

func TestIngressFilterScript(t *testing.T) {
	s := ingressFilter(ISPB1, "s6labx")
	for _, want := range []string{
		"table inet s6labx {",
		`iifname "cust" ip6 saddr != 2001:db8:b1::/48 counter name ingress_drops drop`,
		"type filter hook forward priority 0",
		"chain bh_in", "chain bh_out", "chain bh_fwd",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
}

func TestNewOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
		want error
	}{
		{"default", Options{}, nil},
		{"other s6lab prefix", Options{Prefix: "s6labe2e"}, nil},
		{"foreign prefix", Options{Prefix: "s6gw"}, ErrBadPrefix},
		{"slash", Options{Prefix: "s6lab/x"}, ErrBadPrefix},
		{"daemon without hook", Options{Mode: Daemon}, errAny},
		{"ipv4 host", Options{H1Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}, errAny},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := New(c.opts)
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("New: %v", err)
			case c.want == errAny && err == nil, c.want != nil && c.want != errAny && !errors.Is(err, c.want):
				t.Fatalf("New: %v, want %v", err, c.want)
			}
			if err == nil && c.name == "default" {
				if l.NS(GW1) != "s6lab-gw1" || l.HostAddrs(H1)[0] != Site1.A.HostAddr() || l.HostAddrs(H2)[1] != Site2.B.HostAddr() {
					t.Errorf("defaults: %s %v %v", l.NS(GW1), l.HostAddrs(H1), l.HostAddrs(H2))
				}
			}
		})
	}
}

var errAny = errors.New("any error")

func TestParseFailMode(t *testing.T) {
	for in, want := range map[string]FailMode{"link": FailLink, "blackhole": FailBlackhole, "none": FailNone} {
		if got, err := ParseFailMode(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseFailMode("netem"); err == nil {
		t.Error("netem accepted")
	}
}

func TestFailRejectsNonISP(t *testing.T) {
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, err := range []error{l.FailLink(ctx, GW1), l.FailBlackhole(ctx, Core), l.Restore(ctx, H1)} {
		if !errors.Is(err, ErrNotISP) {
			t.Errorf("got %v, want ErrNotISP", err)
		}
	}
}

func TestGapTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, c := range []struct {
		name      string
		recv      []int // ms of each arrival (1 byte each)
		since     int   // ms; -1: zero time
		now       int
		wantGap   time.Duration
		wantFrom  int
		wantBytes int64
	}{
		{"no data", nil, -1, 1000, 0, -1, 0},
		{"steady pacing is no gap", []int{0, 10, 20, 30}, -1, 30, 0, -1, 4},
		{"one gap", []int{0, 10, 500, 510}, -1, 510, 490 * time.Millisecond, 10, 4},
		{"open gap at the end", []int{0, 10, 20}, -1, 1020, time.Second, 20, 3},
		{"gap before failure ignored", []int{0, 800, 810, 1000, 1010}, 805, 1010, 190 * time.Millisecond, 810, 5},
		{"gap spanning failure", []int{0, 100, 1700, 1710}, 500, 1710, 1600 * time.Millisecond, 100, 4},
		{"largest of several", []int{0, 100, 300, 1000, 1100}, -1, 1100, 700 * time.Millisecond, 300, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			var g GapTracker
			for _, ms := range c.recv {
				g.Observe(at(ms), 1)
			}
			g.Observe(at(5), 0) // no data: ignored
			var since time.Time
			if c.since >= 0 {
				since = at(c.since)
			}
			gap := g.MaxGapAfter(since, at(c.now))
			if gap.Len() != c.wantGap {
				t.Errorf("gap %v, want %v", gap.Len(), c.wantGap)
			}
			if c.wantFrom >= 0 && !gap.From.Equal(at(c.wantFrom)) {
				t.Errorf("gap from %v, want %d ms", gap.From.Sub(t0), c.wantFrom)
			}
			if g.Bytes() != c.wantBytes {
				t.Errorf("bytes %d, want %d", g.Bytes(), c.wantBytes)
			}
		})
	}
}

func TestGapTrackerKeepsNewest(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var g GapTracker
	now := t0
	for i := 0; i < maxGaps+10; i++ {
		g.Observe(now, 1)
		now = now.Add(30 * time.Millisecond)
	}
	failAt := now
	g.Observe(now.Add(2*time.Second), 1) // the outage, after the list filled
	got := g.MaxGapAfter(failAt, now.Add(2*time.Second))
	if got.Len() != 2*time.Second+30*time.Millisecond { // from the last 30 ms tick
		t.Errorf("gap after a full list: %v", got.Len())
	}
	if len(g.gaps) != maxGaps {
		t.Errorf("kept %d gaps, want %d", len(g.gaps), maxGaps)
	}
}

func TestParseCounter(t *testing.T) {
	out := []byte(`{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, {"counter": {"family": "inet", "name": "ingress_drops", "table": "s6lab", "handle": 1, "packets": 7, "bytes": 588}}]}`)
	c, err := parseCounter(out, "ingress_drops")
	if err != nil || c != (Counter{Packets: 7, Bytes: 588}) {
		t.Errorf("got %+v %v", c, err)
	}
	if _, err := parseCounter(out, "blackhole_drops"); err == nil {
		t.Error("missing counter not reported")
	}
	if _, err := parseCounter([]byte("Error: No such file"), "x"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestParseIperf3(t *testing.T) {
	out := []byte(`{"start":{},"end":{"sum_sent":{"seconds":2.0,"bytes":100,"bits_per_second":400,"retransmits":3},
		"sum_received":{"seconds":2.0,"bytes":96,"bits_per_second":384.5}}}`)
	tp, err := parseIperf3(out)
	if err != nil {
		t.Fatal(err)
	}
	want := Throughput{Duration: 2 * time.Second, BitsPerSecond: 384.5, Retransmits: 3, BytesReceived: 96}
	if tp != want {
		t.Errorf("got %+v, want %+v", tp, want)
	}
	if _, err := parseIperf3([]byte(`{"error":"unable to connect to server"}`)); err == nil || !strings.Contains(err.Error(), "unable to connect") {
		t.Errorf("error report: %v", err)
	}
	if _, err := parseIperf3([]byte(`{"end":{}}`)); err == nil {
		t.Error("empty summary accepted")
	}
}

// FuzzToolOutput: the parsers of ip/nft/iperf3 output never panic.
func FuzzToolOutput(f *testing.F) {
	f.Add([]byte(`{"nftables":[{"counter":{"name":"ingress_drops","packets":1,"bytes":2}}]}`))
	f.Add([]byte(`{"end":{"sum_received":{"seconds":1,"bits_per_second":5}}}`))
	f.Add([]byte(`{"nftables":[{"counter":null}]}`))
	f.Add([]byte("shim6gw_fastpath_packets_total{path=\"fast\",verdict=\"fast_out_pass\"} 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseCounter(b, "ingress_drops")
		_, _ = parseIperf3(b)
		_, _ = parseFastpathCounts(b)
	})
}

func TestReportSummary(t *testing.T) {
	r := &Report{Mode: "kernel", Established: true, Survived: false, GapMS: 2000, FailMode: FailBlackhole,
		FailedISP: ISPA1, FailAtMS: 1000, DurationMS: 3000, PairBefore: "a <-> b", PairAfter: "a <-> b",
		Streams: []StreamStats{{Name: "h1->h2", Bytes: 10, Err: "connection reset"}}}
	var b strings.Builder
	if err := r.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DID NOT SURVIVE", "2000 ms", "failure blackhole at ispa1", "connection reset"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

// TestLabTimersMatchExample keeps LabTimers and the documented lab
// example (deploy/examples/lab-gateway.yaml) in step.
func TestLabTimersMatchExample(t *testing.T) {
	b, err := os.ReadFile("../deploy/examples/lab-gateway.yaml")
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	example := map[string]string{}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "timers:":
			in = true
		case in && strings.HasPrefix(line, "  "):
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			example[k] = strings.TrimSpace(v)
		default:
			in = false
		}
	}
	ours := map[string]string{}
	for _, tm := range LabTimers {
		ours[tm.Key] = tm.Value
	}
	if d := cmp.Diff(example, ours); d != "" {
		t.Errorf("LabTimers differ from deploy/examples/lab-gateway.yaml (-example +lab):\n%s", d)
	}
}

func TestParseFastpathCounts(t *testing.T) {
	body := []byte(`# HELP shim6gw_fastpath_packets_total Packets the kernel fast path saw.
# TYPE shim6gw_fastpath_packets_total counter
shim6gw_fastpath_packets_total{path="fast",verdict="fast_out_pass"} 100
shim6gw_fastpath_packets_total{path="fast",verdict="fast_in_strip"} 20
shim6gw_fastpath_packets_total{path="tun",verdict="tun_gso"} 7
shim6gw_fastpath_packets_total{path="drop",verdict="drop_helper"} 1
# HELP shim6gw_fastpath_bytes_total Bytes.
# TYPE shim6gw_fastpath_bytes_total counter
shim6gw_fastpath_bytes_total{path="fast",verdict="fast_out_pass"} 1.5e+06
shim6gw_fastpath_bytes_total{path="tun",verdict="tun_gso"} 450000
# HELP shim6gw_fastpath_packets_total_extra Not ours.
# TYPE shim6gw_fastpath_packets_total_extra counter
shim6gw_fastpath_packets_total_extra{path="fast"} 99
# TYPE shim6gw_contexts gauge
shim6gw_contexts 2
`)
	got, err := parseFastpathCounts(body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]PathCount{"fast": {120, 1.5e6}, "tun": {7, 450000}, "drop": {1, 0}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("counts (-want +got):\n%s", d)
	}
	// Without the fast path the metrics are absent: no paths.
	if got, err := parseFastpathCounts([]byte("# TYPE shim6gw_contexts gauge\nshim6gw_contexts 2\n")); err != nil || len(got) != 0 {
		t.Errorf("without fast-path metrics: %v, %v", got, err)
	}
	if _, err := parseFastpathCounts([]byte("shim6gw_fastpath_packets_total{path=\"fast\" 3\n")); err == nil {
		t.Error("malformed exposition accepted")
	}
}

func TestContextConditions(t *testing.T) {
	h1, h2 := netip.MustParseAddr("2001:db8:a1:1::100"), netip.MustParseAddr("2001:db8:a2:1::100")
	h1b, h2b := netip.MustParseAddr("2001:db8:b1:1::100"), netip.MustParseAddr("2001:db8:b2:1::100")
	ctx := func(state string, ll, pl netip.Addr) metrics.ContextInfo {
		return metrics.ContextInfo{LocalULID: h1, PeerULID: h2, State: state, LocalLocator: ll, PeerLocator: pl}
	}
	pb := Site1.B.Prefix
	for _, tc := range []struct {
		c                          metrics.ContextInfo
		ulids, localInPB, peerInPB bool
	}{
		{ctx("established", h1, h2), true, false, false},
		{ctx("i1_sent", h1, h2), false, false, false},
		{ctx("established", h1b, h2), false, true, false},
		{ctx("established", h1, h2b), false, false, false},
		{ctx("established", h1b, h2b), false, true, false},
		{metrics.ContextInfo{LocalULID: h2, PeerULID: h1, State: "established", LocalLocator: h2, PeerLocator: h1b}, false, false, true},
		{ctx("exploring", h1b, h2), false, false, false},
	} {
		if got := OnULIDPair(tc.c); got != tc.ulids {
			t.Errorf("OnULIDPair(%+v) = %v", tc.c, got)
		}
		if got := LocatorIn(pb, false)(tc.c); got != tc.localInPB {
			t.Errorf("LocatorIn(P_B, local)(%+v) = %v", tc.c, got)
		}
		if got := LocatorIn(pb, true)(tc.c); got != tc.peerInPB {
			t.Errorf("LocatorIn(P_B, peer)(%+v) = %v", tc.c, got)
		}
	}
}

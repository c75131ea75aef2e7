package lab

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func haTestLab(t *testing.T) *Lab {
	t.Helper()
	l, err := New(Options{Mode: Daemon, HA: true, StartGateway: ExecGateway(nil, nil, "true")})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestHATopology: gw1a and gw1b replace gw1, each with a LAN and two
// uplinks, all bridged at h1 and the providers of site 1; every interface
// name is used once per namespace.
func TestHATopology(t *testing.T) {
	l := haTestLab(t)
	if slices.Contains(l.nodes(), GW1) || !slices.Contains(l.nodes(), GW1A) || !slices.Contains(l.nodes(), GW1B) {
		t.Fatalf("nodes %v", l.nodes())
	}
	seen := linkCounts(t, l.topoLinks())
	want := map[Node]int{H1: 2, GW1A: 3, GW1B: 3, ISPA1: 3, ISPB1: 3, Core: 5, ISPA2: 2, ISPB2: 2, GW2: 3, H2: 1, Legacy: 1}
	if d := cmp.Diff(want, seen); d != "" {
		t.Errorf("links per node (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]Node{GW1A, GW1B, GW2}, l.Gateways()); d != "" {
		t.Errorf("gateways (-want +got):\n%s", d)
	}
	h1 := strings.Join(l.nodeConfig(H1), "\n")
	for _, want := range []string{"link add eth0 type bridge", "link set lan-gw1a master eth0", "link set lan-gw1b master eth0",
		"addr add 2001:db8:a1:1::100/64 dev eth0", "route replace default via 2001:db8:a1:1::1 dev eth0"} {
		if !strings.Contains(h1, want) {
			t.Errorf("h1 config lacks %q:\n%s", want, h1)
		}
	}
	gw := strings.Join(l.nodeConfig(GW1B), "\n")
	for _, want := range []string{"addr add 2001:db8:a1:1::3/64 dev lan0", "addr add 2001:db8:b1:1::3/64 dev lan0",
		"addr add 2001:db8:a1:ffff::4/64 dev upA", "addr add 2001:db8:b1:ffff::4/64 dev upB"} {
		if !strings.Contains(gw, want) {
			t.Errorf("gw1b config lacks %q:\n%s", want, gw)
		}
	}
	// The virtual addresses are keepalived's alone.
	if strings.Contains(gw, "2001:db8:a1:1::1/") || strings.Contains(gw, "2001:db8:a1:ffff::2/") {
		t.Errorf("gw1b configures a virtual address itself:\n%s", gw)
	}
	if d := cmp.Diff([]string{"cust-gw1a", "cust-gw1b"}, l.custPorts(ISPB1)); d != "" {
		t.Errorf("ISP B1's customer ports (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{CustIf}, l.custPorts(ISPA2)); d != "" {
		t.Errorf("ISP A2's customer ports (-want +got):\n%s", d)
	}
}

func TestHANeedsDaemonMode(t *testing.T) {
	if _, err := New(Options{Mode: KernelForwarding, HA: true}); err == nil {
		t.Error("an HA lab in kernel mode was accepted")
	}
}

func TestClassifyLogLines(t *testing.T) {
	for _, tc := range []struct{ source, line, want string }{
		{SourceGateway, `time=2026-12-04T18:50:57Z level=INFO msg=failover component=control local_ulid=2001:db8::1 duration_seconds=0.3`, "failover"},
		{SourceGateway, `time=x level=INFO msg="context recovered" component=control`, "context recovered"},
		{SourceGateway, `time=x level=INFO msg="uplink down" component=control uplink=a reason=carrier`, "uplink down a"},
		{SourceGateway, `time=x level=INFO msg="path exploration started" reason=send`, "exploring"},
		{SourceGateway, `time=x level=INFO msg="context up" component=control`, ""},
		{SourceGateway, `time=x level=INFO msg="failover soon"`, ""},
		{SourceVRRP, `Fri Dec  4 18:47:04 2026: (lan) Entering MASTER STATE`, "MASTER"},
		{SourceVRRP, `Fri Dec  4 18:47:04 2026: (uplink_a) Entering MASTER STATE`, ""},
		{SourceVRRP, `Fri Dec  4 18:47:05 2026: (lan) Entering FAULT STATE`, "FAULT"},
	} {
		if got := classify(tc.source, []byte(tc.line)); got != tc.want {
			t.Errorf("classify(%s, %q) = %q, want %q", tc.source, tc.line, got, tc.want)
		}
	}
}

// TestEventWriterSplitsLines: lines split over writes are classified once
// whole; a nil log discards.
func TestEventWriterSplitsLines(t *testing.T) {
	e := NewEventLog()
	w := e.Writer(GW2, SourceGateway)
	for _, part := range []string{"level=INFO msg=fail", "over x=1\nlevel=INFO msg=\"context ", "recovered\"\npartial msg=failover"} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, ev := range e.Events() {
		got = append(got, string(ev.Node)+" "+ev.What)
	}
	if d := cmp.Diff([]string{"gw2 failover", "gw2 context recovered"}, got); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	var nilLog *EventLog
	nilLog.Add(GW1, SourceLab, "x")
	if _, err := nilLog.Writer(GW1, SourceVRRP).Write([]byte("(lan) Entering MASTER STATE\n")); err != nil || nilLog.Events() != nil {
		t.Error("a nil EventLog kept something")
	}
}

func TestEventLogBounded(t *testing.T) {
	e := NewEventLog()
	for range maxEvents + 10 {
		e.Add(GW1, SourceLab, "x")
	}
	if n := len(e.Events()); n != maxEvents {
		t.Errorf("%d events kept, want %d", n, maxEvents)
	}
}

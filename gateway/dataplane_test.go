package gateway

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shim6gw/shim6gw/internal/ip6"

	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
	"github.com/shim6gw/shim6gw/tunnel"
	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

var (
	dpHost     = netip.MustParseAddr("2001:db8:a:1::10")
	dpHostLoc  = netip.MustParseAddr("2001:db8:b:1::10")
	dpPeer     = netip.MustParseAddr("2001:db8:c:1::20")
	dpPeerLoc  = netip.MustParseAddr("2001:db8:d:1::20")
	dpStranger = netip.MustParseAddr("2001:db8:e::1")
)

const (
	dpTagLocal shim6.ContextTag = 0x0123456789ab
	dpTagPeer  shim6.ContextTag = 0x2a5b3c4d5e6f
)

// dpTable has one context whose current pair is shimmed (B locator of the
// host, D locator of the peer).
func dpTable(t testing.TB) *rewrite.Table {
	t.Helper()
	tbl, err := rewrite.NewTable(rewrite.Config{
		SitePrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")},
		Uplinks: []rewrite.Uplink{{Prefix: netip.MustParsePrefix("2001:db8:a::/48"), MTU: 1500},
			{Prefix: netip.MustParsePrefix("2001:db8:b::/48"), MTU: 1500}},
		Contexts: []rewrite.ContextConfig{{
			LocalULID: dpHost, PeerULID: dpPeer, LocalTag: dpTagLocal, PeerTag: dpTagPeer,
			LocalLocator: dpHostLoc, PeerLocator: dpPeerLoc,
			LocalLocators: []netip.Addr{dpHost, dpHostLoc}, PeerLocators: []netip.Addr{dpPeer, dpPeerLoc},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// dpRig runs a Dataplane in a pipeline over a fake TUN.
type dpRig struct {
	dp     *Dataplane
	dev    *tuntest.Device
	divert *tunnel.DivertQueue
	pipe   *tunnel.Pipeline
	stop   func()
}

func newDPRig(t testing.TB, notices int, discard bool) *dpRig {
	t.Helper()
	rw := rewrite.NewRewriter(rewrite.RewriterConfig{})
	rw.Publish(dpTable(t))
	r := &dpRig{dp: NewDataplane(rw, notices), divert: tunnel.NewDivertQueue(4, 2048),
		dev: tuntest.New(tuntest.Config{BatchSize: 4, Buffer: 64, Discard: discard})}
	r.dev.Writes = make(chan int, 64)
	var err error
	r.pipe, err = tunnel.NewPipeline(r.dev, tunnel.Config{Processor: r.dp, Divert: r.divert, BufSize: tunnel.Offset + 4096})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.pipe.Run(ctx) }()
	r.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	}
	t.Cleanup(r.stop)
	return r
}

func (r *dpRig) out(t *testing.T) []byte {
	t.Helper()
	select {
	case p := <-r.dev.Outbound:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet written")
		return nil
	}
}

func TestDataplaneOutboundInbound(t *testing.T) {
	r := newDPRig(t, 8, false)
	r.dp.setUplinkNames([]string{"a", "b"})
	// Outbound: ULIDs become locators and the payload header carries
	// CT(peer); the payload is untouched (RFC 5533 §5.2, §11).
	pkt := udpPacket(dpHost, dpPeer, "hello")
	r.dev.Inbound <- pkt
	got := r.out(t)
	src, dst, ok := isShimmed(got)
	if !ok || src != dpHostLoc || dst != dpPeerLoc {
		t.Fatalf("outbound not shimmed %v→%v: %x", src, dst, got)
	}
	if tag := shim6.PayloadHeader(got[40:48]).Tag(); tag != dpTagPeer || got[40] != 17 || !bytes.Equal(got[48:], pkt[40:]) {
		t.Fatalf("payload header %x, payload %x", got[40:48], got[48:])
	}
	// Inbound: the mirror image comes back with the ULIDs restored.
	in := append([]byte(nil), got...)
	copy(in[8:24], dpPeerLoc.AsSlice())
	copy(in[24:40], dpHostLoc.AsSlice())
	shim6.PutPayloadHeader(in[40:48], 17, dpTagLocal)
	r.dev.Inbound <- in
	back := r.out(t)
	want := udpPacket(dpPeer, dpHost, "hello")
	if !bytes.Equal(back, want) {
		t.Fatalf("inbound\n%x\nwant\n%x", back, want)
	}
	ds := r.dp.DataplaneStats()
	// Both went by uplink b: out from the B locator, in to it.
	wantUp := map[metrics.UplinkKey]uint64{{Uplink: "a", Direction: "outbound"}: 0, {Uplink: "a", Direction: "inbound"}: 0,
		{Uplink: "b", Direction: "outbound"}: 1, {Uplink: "b", Direction: "inbound"}: 1}
	if diff := cmp.Diff(wantUp, ds.UplinkPackets); diff != "" {
		t.Errorf("uplink packets (-want +got):\n%s", diff)
	}
	if got, want := ds.UplinkBytes[metrics.UplinkKey{Uplink: "b", Direction: "inbound"}], uint64(len(in)); got != want {
		t.Errorf("uplink b inbound bytes %d, want %d (as received, with the payload header)", got, want)
	}
	for _, k := range []metrics.PathKey{{Direction: "outbound", Path: "outbound_shim"}, {Direction: "inbound", Path: "inbound_shim"}} {
		if ds.Packets[k] != 1 {
			t.Errorf("packets[%v] = %d, want 1", k, ds.Packets[k])
		}
	}
	if got, want := ds.Bytes[metrics.PathKey{Direction: "outbound", Path: "outbound_shim"}], uint64(len(pkt)+8); got != want {
		t.Errorf("outbound bytes %d, want %d", got, want)
	}
	if got, want := ds.Bytes[metrics.PathKey{Direction: "inbound", Path: "inbound_shim"}], uint64(len(pkt)); got != want {
		t.Errorf("inbound bytes %d, want %d", got, want)
	}
}

func TestDataplaneDivertDropNotice(t *testing.T) {
	r := newDPRig(t, 1, false)
	// A control message (P = 0) is diverted whole.
	ka := shim6.AppendKeepalive(nil, dpTagLocal)
	if err := shim6.FinishMessage(ka); err != nil {
		t.Fatal(err)
	}
	ctl := shim6.AppendIPv6Control(nil, dpPeerLoc, dpHostLoc, ka)
	r.dev.Inbound <- ctl
	select {
	case d := <-r.divert.C():
		if !bytes.Equal(d.Bytes(), ctl) {
			t.Errorf("diverted %x, want %x", d.Bytes(), ctl)
		}
		d.Release()
	case <-time.After(5 * time.Second):
		t.Fatal("control message not diverted")
	}
	// An unknown tag is dropped with a notice for the engine (RFC 5533
	// §12.2); a second notice finds the queue (1) full and is counted.
	bad := udpPacket(dpPeerLoc, dpHostLoc, "x")
	bad = append(bad[:40], append(make([]byte, 8), bad[40:]...)...)
	bad[6] = shim6.ProtocolNumber
	shim6.PutPayloadHeader(bad[40:48], 17, 0x777)
	bad[4], bad[5] = 0, byte(len(bad)-40)
	r.dev.Inbound <- bad
	var n rewrite.Notice
	select {
	case n = <-r.dp.Notices():
	case <-time.After(5 * time.Second):
		t.Fatal("no notice")
	}
	if n.Kind != rewrite.NoticeUnknownTag || n.Tag != 0x777 || n.Peer != dpPeerLoc || n.Local != dpHostLoc {
		t.Errorf("notice %+v", n)
	}
	// Traffic-seen notices for eight distinct pairs: the first fills the
	// queue, the others are dropped and counted (or, when their key
	// shares a limiter slot with an earlier one, suppressed by rewrite).
	suppressed := r.dp.Rewriter().Stats().Suppressed.Load()
	for i := range 8 {
		r.dev.Inbound <- udpPacket(dpHost, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0xe, 15: byte(i + 1)}), "a")
		r.out(t)
	}
	drops, supp := r.dp.NoticeDrops.Load(), r.dp.Rewriter().Stats().Suppressed.Load()-suppressed
	if drops == 0 || drops+supp != 7 || len(r.dp.Notices()) != 1 {
		t.Errorf("notice drops %d, suppressed %d, queued %d; want 7 lost, 1 queued", drops, supp, len(r.dp.Notices()))
	}
	if ds := r.dp.DataplaneStats(); ds.Drops[metrics.DropKey{Direction: "inbound", Reason: "unknown_tag"}] != 1 || ds.Packets[metrics.PathKey{Direction: "inbound", Path: "control"}] != 1 {
		t.Errorf("stats: drops %v packets %v", ds.Drops, ds.Packets)
	}
}

// TestDataplaneParamProblem: an ICMPv6 Parameter Problem about our I1
// goes to the control loop (the peer has no Shim6, RFC 5533 §7.8), not
// to the LAN host.
func TestDataplaneParamProblem(t *testing.T) {
	r := newDPRig(t, 8, false)
	i1 := shim6.AppendI1(nil, 0x42, 7)
	if err := shim6.FinishMessage(i1); err != nil {
		t.Fatal(err)
	}
	quoted := shim6.AppendIPv6Control(nil, dpHost, dpStranger, i1)
	icmp := append([]byte{icmpParamProblem, icmpUnrecognizedNext, 0, 0, 0, 0, 0, 6}, quoted...)
	pkt := make([]byte, 40, 40+len(icmp))
	shim6.PutIPv6Header(pkt, dpStranger, dpHost, ip6.ProtoICMPv6, len(icmp))
	pkt = append(pkt, icmp...)
	if !isShim6ParamProblem(pkt) {
		t.Fatal("not recognised")
	}
	r.dev.Inbound <- pkt
	select {
	case d := <-r.divert.C():
		if !bytes.Equal(d.Bytes(), pkt) {
			t.Errorf("diverted %x", d.Bytes())
		}
		d.Release()
	case <-time.After(5 * time.Second):
		t.Fatal("parameter problem not diverted")
	}
	// The same error about a payload packet (P = 1) is the host's.
	pkt[40+8+40+2] |= 0x80
	if isShim6ParamProblem(pkt) {
		t.Error("payload header quote taken for a control message")
	}
}

func TestDataplaneZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	r := newDPRig(t, 8, true)
	pkt := udpPacket(dpHost, dpPeer, "steady state")
	in := udpPacket(dpPeerLoc, dpHostLoc, "steady state")
	in = append(in[:40], append(make([]byte, 8), in[40:]...)...)
	in[6] = shim6.ProtocolNumber
	shim6.PutPayloadHeader(in[40:48], 17, dpTagLocal)
	in[5] += 8
	// Warm up (first batch, pools).
	r.dev.Inbound <- pkt
	<-r.dev.Writes
	allocs := testing.AllocsPerRun(200, func() {
		r.dev.Inbound <- pkt
		<-r.dev.Writes
		r.dev.Inbound <- in
		<-r.dev.Writes
	})
	if allocs != 0 {
		t.Errorf("%v allocs per packet pair, want 0", allocs)
	}
	if got := r.dp.DataplaneStats().Packets[metrics.PathKey{Direction: "inbound", Path: "inbound_shim"}]; got == 0 {
		t.Error("inbound payload was not stripped")
	}
}

func BenchmarkDataplane(b *testing.B) {
	r := newDPRig(b, 8, true)
	pkt := udpPacket(dpHost, dpPeer, string(make([]byte, 1200)))
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		r.dev.Inbound <- pkt
		<-r.dev.Writes
	}
}

func TestDataplaneKeepWhole(t *testing.T) {
	rw := rewrite.NewRewriter(rewrite.RewriterConfig{})
	rw.Publish(dpTable(t))
	var f tunnel.GSOFilter = NewDataplane(rw, 1)
	for _, tc := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		// No context on the pair: the kernel may segment it.
		{"passthrough", udpPacket(dpHost, dpStranger, "x"), true},
		// The context's pair is shimmed: must be split and rewritten.
		{"shimmed context", udpPacket(dpHost, dpPeer, "x"), false},
		{"truncated", udpPacket(dpHost, dpStranger, "x")[:20], false},
	} {
		if got := f.KeepWhole(tc.pkt, tunnel.GSOInfo{}); got != tc.want {
			t.Errorf("%s: KeepWhole = %v, want %v", tc.name, got, tc.want)
		}
	}
}

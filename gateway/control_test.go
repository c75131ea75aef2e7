package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shim6gw/shim6gw/internal/ip6"

	"github.com/shim6gw/shim6gw/internal/checksum"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/internal/pcap"
	"github.com/shim6gw/shim6gw/shim6"
	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

// Two gateways back to back over a fake network, driven in a synctest
// bubble: time is virtual (the lab timers run in microseconds of real
// time), and synctest.Test fails if any goroutine the controllers,
// pipelines or the network started is still alive at the end (the
// goroutine-leak check).

// siteYAML is a gateway configuration for site n (1 or 2) with the lab's
// fast timers (lab.LabTimers).
func siteYAML(n int) string {
	x, y := "a", "b"
	if n == 2 {
		x, y = "c", "d"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lan:\n  interface: lan0\nuplinks:\n")
	for _, u := range []string{x, y} {
		fmt.Fprintf(&b, "  - name: %s\n    interface: up%s\n    prefix: 2001:db8:%s::/48\n    lan_prefix: 2001:db8:%s:1::/64\n",
			u, strings.ToUpper(u), u, u)
	}
	b.WriteString("hba:\n  secret_file: secret\n  hosts: 4\ntimers:\n")
	for _, kv := range [][2]string{{"i1_timeout", "500ms"}, {"i2_timeout", "500ms"}, {"i2bis_timeout", "500ms"},
		{"update_timeout", "500ms"}, {"max_update_timeout", "4s"}, {"send_timeout", "3s"}, {"keepalive_timeout", "1s"},
		{"initial_probe_timeout", "200ms"}, {"max_probe_timeout", "2s"}, {"idle_timeout", "1m"}} {
		fmt.Fprintf(&b, "  %s: %s\n", kv[0], kv[1])
	}
	return b.String()
}

func siteConfig(t *testing.T, n int) *config.Config {
	t.Helper()
	dir := t.TempDir()
	secret := fmt.Sprintf("site-%d-secret-0123456789abcdef", n)
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(siteYAML(n)), dir, "site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testGW is one gateway of the fake network.
type testGW struct {
	name    string
	cfg     *config.Config
	book    *hba.Book
	dev     *tuntest.Device
	ctrl    *Controller
	metrics *metrics.Metrics
	uplinks chan plumbing.UplinkEvent
	reloads chan Reload
	lan     chan []byte // packets the gateway wrote towards its LAN
	done    chan error
	cancel  context.CancelFunc
	fwdDone chan struct{}
}

// fakeNet forwards what one gateway writes into its TUN to the other
// gateway's TUN when the destination is in the other site (the kernel's
// policy routing and the Internet), or to the gateway's LAN channel when
// it is in its own site. Packets with a source or destination inside a
// broken prefix are lost.
type fakeNet struct {
	log *slog.Logger

	mu     sync.Mutex
	gws    [2]*testGW
	broken []netip.Prefix
	wire   [][]byte // every packet that crossed between the sites
}

func (n *fakeNet) setBroken(ps ...netip.Prefix) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.broken = ps
}

func (n *fakeNet) wireCopy() [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.wire)
}

func inSite(cfg *config.Config, a netip.Addr) bool {
	for _, u := range cfg.Uplinks {
		if u.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

// other returns the gateway that is not i (it may be replaced by a
// restart).
func (n *fakeNet) other(i int) *testGW {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gws[1-i]
}

// oneWayDelay is the fake Internet's latency between the sites.
const oneWayDelay = 5 * time.Millisecond

// forward runs gw's side of the network until ctx ends.
func (n *fakeNet) forward(ctx context.Context, i int, me *testGW) {
	for {
		var pkt []byte
		select {
		case <-ctx.Done():
			return
		case pkt = <-me.dev.Outbound:
		}
		if len(pkt) < 40 {
			continue
		}
		src := netip.AddrFrom16([16]byte(pkt[8:24]))
		dst := netip.AddrFrom16([16]byte(pkt[24:40]))
		other := n.other(i)
		switch {
		case inSite(me.cfg, dst):
			select {
			case me.lan <- pkt:
			default: // nobody listens: the host drops it
			}
		case inSite(other.cfg, dst):
			n.mu.Lock()
			lost := slices.ContainsFunc(n.broken, func(p netip.Prefix) bool { return p.Contains(src) || p.Contains(dst) })
			if !lost {
				n.wire = append(n.wire, pkt)
			}
			n.mu.Unlock()
			if !lost {
				// One-way latency, so REAP measures a round trip (the
				// link is a FIFO: packets queue behind each other).
				select {
				case <-time.After(oneWayDelay):
				case <-ctx.Done():
					return
				}
				select {
				case other.dev.Inbound <- pkt:
				case <-ctx.Done():
					return
				case <-other.dev.Closed():
				}
			}
		}
	}
}

// startGW builds gateway i of site i+1 and runs it with its forwarder,
// replacing a previous gateway i (which must be stopped).
func (n *fakeNet) startGW(t *testing.T, i int, cfg *config.Config, seed byte, capture *pcap.Capture) *testGW {
	t.Helper()
	book, err := hba.NewBook(cfg.HBA.Secret, cfg.LANPrefixes(), cfg.HBA.Hosts)
	if err != nil {
		t.Fatal(err)
	}
	gw := &testGW{name: fmt.Sprintf("gw%d", i+1), cfg: cfg, book: book,
		dev:     tuntest.New(tuntest.Config{BatchSize: 8, Buffer: 1024, Name: fmt.Sprintf("gw%d", i+1)}),
		uplinks: make(chan plumbing.UplinkEvent, 8), reloads: make(chan Reload, 1), lan: make(chan []byte, 1024), done: make(chan error, 1)}
	// The gateway's own address: the first of its first LAN /64.
	icmpSrc := cfg.Uplinks[0].LANPrefix.Addr().Next()
	gw.ctrl = NewController(ControllerOptions{Seed: [32]byte{seed}, Capture: capture, ICMPSource: icmpSrc})
	gw.ctrl.Attach(gw.dev)
	gw.metrics = metrics.NewMetrics(metrics.MetricsOptions{Control: gw.ctrl, Dataplane: gw.ctrl})
	var ctx context.Context
	ctx, gw.cancel = context.WithCancel(context.Background())
	n.mu.Lock()
	n.gws[i] = gw
	n.mu.Unlock()
	gw.fwdDone = make(chan struct{})
	go func() {
		defer close(gw.fwdDone)
		n.forward(ctx, i, gw)
	}()
	go func() {
		gw.done <- gw.ctrl.Run(ctx, ControlInputs{Config: gw.cfg, Uplinks: gw.uplinks, Reloads: gw.reloads,
			Metrics: gw.metrics, Log: n.log.With("gw", gw.name)})
	}()
	return gw
}

// stopGW stops a gateway and checks that Run ended cleanly.
func stopGW(t *testing.T, gw *testGW) {
	t.Helper()
	gw.cancel()
	if err := <-gw.done; err != nil {
		t.Errorf("%s: Run: %v", gw.name, err)
	}
	<-gw.fwdDone
}

// startNet builds and starts both gateways; stop cancels them and waits.
func startNet(t *testing.T, capture *pcap.Capture) (n *fakeNet, stop func()) {
	t.Helper()
	n = &fakeNet{log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	n.startGW(t, 0, siteConfig(t, 1), 1, capture)
	n.startGW(t, 1, siteConfig(t, 2), 2, nil)
	return n, func() {
		for i := range 2 {
			stopGW(t, n.other(1-i))
		}
	}
}

// udpPacket builds a UDP datagram with a correct checksum.
func udpPacket(src, dst netip.Addr, payload string) []byte {
	ulen := 8 + len(payload)
	p := make([]byte, 40+ulen)
	shim6.PutIPv6Header(p, src, dst, 17, ulen)
	binary.BigEndian.PutUint16(p[40:], 40000)
	binary.BigEndian.PutUint16(p[42:], 9)
	binary.BigEndian.PutUint16(p[44:], uint16(ulen))
	copy(p[48:], payload)
	ck := checksum.Checksum(p[40:], checksum.PseudoHeader(src, dst, uint32(ulen), 17))
	if ck == 0 {
		ck = 0xffff
	}
	binary.BigEndian.PutUint16(p[46:], ck)
	return p
}

// waitFor polls cond every 10 ms of virtual time for at most limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v (virtual) waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// contextOf returns gw's /debug/contexts record of a ULID pair.
func contextOf(gw *testGW, local, peer netip.Addr) (metrics.ContextInfo, bool) {
	for _, c := range gw.ctrl.Contexts() {
		if c.LocalULID == local && c.PeerULID == peer {
			return c, true
		}
	}
	return metrics.ContextInfo{}, false
}

// expectDelivered waits for want on gw's LAN and fails on any other
// packet from the same source.
func expectDelivered(t *testing.T, gw *testGW, want []byte) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-gw.lan:
			if bytes.Equal(got, want) {
				return
			}
			if bytes.Equal(got[8:24], want[8:24]) && !bytes.Equal(got[40:], want[40:]) {
				t.Fatalf("%s delivered\n%x\nwant\n%x", gw.name, got, want)
			}
		case <-timeout:
			t.Fatalf("%s: packet not delivered: %x", gw.name, want)
		}
	}
}

// isShimmed reports whether pkt carries a payload header (Next Header 140,
// P = 1) and returns its locators.
func isShimmed(pkt []byte) (src, dst netip.Addr, ok bool) {
	if len(pkt) < 48 || pkt[6] != shim6.ProtocolNumber || pkt[42]&0x80 == 0 {
		return src, dst, false
	}
	return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), true
}

func TestControllerHandshakeFailover(t *testing.T) {
	capPath := filepath.Join(t.TempDir(), "control.pcap")
	synctest.Test(t, func(t *testing.T) {
		capture, err := pcap.OpenCapture(capPath)
		if err != nil {
			t.Fatal(err)
		}
		n, stop := startNet(t, capture)
		defer func() { stop() }()
		gw1, gw2 := n.gws[0], n.gws[1]
		h1, h2 := gw1.book.Entry(0), gw2.book.Entry(1)

		// First packet: no context yet, it goes out unchanged and its
		// notice makes gw1 initiate (policy: first packet).
		first := udpPacket(h1.ULID(), h2.ULID(), "first")
		gw1.dev.Inbound <- first
		expectDelivered(t, gw2, first)
		waitFor(t, 5*time.Second, "context established on both sides", func() bool {
			c1, ok1 := contextOf(gw1, h1.ULID(), h2.ULID())
			c2, ok2 := contextOf(gw2, h2.ULID(), h1.ULID())
			return ok1 && ok2 && c1.State == "established" && c2.State == "established"
		})
		c1, _ := contextOf(gw1, h1.ULID(), h2.ULID())
		c2, _ := contextOf(gw2, h2.ULID(), h1.ULID())
		if c1.LocalTag != c2.PeerTag || c1.PeerTag != c2.LocalTag {
			t.Errorf("tags disagree: gw1 %x/%x, gw2 %x/%x", c1.LocalTag, c1.PeerTag, c2.LocalTag, c2.PeerTag)
		}
		if c1.LocalLocator != h1.ULID() || c1.PeerLocator != h2.ULID() {
			t.Errorf("initial pair %v→%v, want the ULIDs", c1.LocalLocator, c1.PeerLocator)
		}

		// Data on the ULID pair: unchanged on the wire and at delivery.
		data := udpPacket(h1.ULID(), h2.ULID(), "on the ulid pair")
		gw1.dev.Inbound <- data
		expectDelivered(t, gw2, data)
		fast := gw1.ctrl.rw.Table().LookupPair(h1.ULID(), h2.ULID())
		if fast == nil || fast.Shimmed() || fast.Stamps().SentPackets.Load() == 0 {
			t.Fatalf("fast table entry %+v", fast)
		}
		stamps, sentBefore := fast.Stamps(), fast.Stamps().SentPackets.Load()

		// Site 1's provider A fails: REAP (RFC 5534) must move the
		// context to a pair that avoids P_A while h1 keeps sending.
		n.setBroken(gw1.cfg.Uplinks[0].Prefix)
		sent := 0
		waitFor(t, 30*time.Second, "failover off P_A", func() bool {
			gw1.dev.Inbound <- udpPacket(h1.ULID(), h2.ULID(), fmt.Sprintf("during outage %d", sent))
			sent++
			time.Sleep(90 * time.Millisecond)
			c, _ := contextOf(gw1, h1.ULID(), h2.ULID())
			return c.State == "established" && c.LocalLocator == h1.Addresses[1]
		})
		c1, _ = contextOf(gw1, h1.ULID(), h2.ULID())
		// The republished entry keeps the context's traffic stamps.
		if fast = gw1.ctrl.rw.Table().LookupPair(h1.ULID(), h2.ULID()); fast == nil || !fast.Shimmed() ||
			fast.Stamps() != stamps || stamps.SentPackets.Load() <= sentBefore {
			t.Errorf("after failover: entry %+v, same stamps %v", fast, fast != nil && fast.Stamps() == stamps)
		}
		if c1.LastFailover.IsZero() {
			t.Error("no last failover recorded")
		}
		mark := len(n.wireCopy())
		after := udpPacket(h1.ULID(), h2.ULID(), "after failover")
		gw1.dev.Inbound <- after
		expectDelivered(t, gw2, after)
		shimmed := false
		for _, p := range n.wireCopy()[mark:] {
			if src, dst, ok := isShimmed(p); ok && src == h1.Addresses[1] && dst == c1.PeerLocator &&
				bytes.Equal(p[48:], after[40:]) {
				shimmed = true
			}
		}
		if !shimmed {
			t.Errorf("no shimmed packet %v→%v carrying the payload on the wire", h1.Addresses[1], c1.PeerLocator)
		}
		// The reverse direction moved too: h2's answer reaches h1 by
		// h1's B locator, shimmed, and is delivered on the ULIDs.
		mark = len(n.wireCopy())
		reply := udpPacket(h2.ULID(), h1.ULID(), "reply after failover")
		gw2.dev.Inbound <- reply
		expectDelivered(t, gw1, reply)
		shimmed = false
		for _, p := range n.wireCopy()[mark:] {
			if _, dst, ok := isShimmed(p); ok && dst == h1.Addresses[1] && bytes.Equal(p[48:], reply[40:]) {
				shimmed = true
			}
		}
		if !shimmed {
			t.Errorf("reply not shimmed towards %v", h1.Addresses[1])
		}
		// A packet that fits the uplink MTU only without the payload
		// header is answered with a Packet Too Big (docs/architecture.md §8).
		big := udpPacket(h1.ULID(), h2.ULID(), string(make([]byte, 1500-48)))
		gw1.dev.Inbound <- big
		select {
		case ptb := <-gw1.lan:
			if ptb[6] != ip6.ProtoICMPv6 || ptb[40] != 2 || binary.BigEndian.Uint32(ptb[44:]) != 1492 ||
				netip.AddrFrom16([16]byte(ptb[24:40])) != h1.ULID() || !bytes.Equal(ptb[48:88], big[:40]) {
				t.Errorf("not a packet too big for h1 (mtu 1492): %x", ptb[:min(len(ptb), 96)])
			}
		case <-time.After(5 * time.Second):
			t.Error("no packet too big")
		}
		if cs := gw1.ctrl.ControlStats(); cs.Failovers == 0 || cs.Explorations == 0 {
			t.Errorf("control stats: %d explorations, %d failovers", cs.Explorations, cs.Failovers)
		}
		ds := gw1.ctrl.DataplaneStats()
		if ds.Packets[metrics.PathKey{Direction: "outbound", Path: "outbound_shim"}] == 0 || ds.Bytes[metrics.PathKey{Direction: "outbound", Path: "outbound_shim"}] == 0 {
			t.Errorf("dataplane stats lack shimmed packets: %v", ds.Packets)
		}
		if ds2 := gw2.ctrl.DataplaneStats(); ds2.Packets[metrics.PathKey{Direction: "inbound", Path: "inbound_shim"}] == 0 {
			t.Errorf("gw2 stripped no payload header: %v", ds2.Packets)
		}
		if count := histogramCount(t, gw1.metrics.FailoverDuration); count == 0 {
			t.Error("failover duration not observed")
		}
		// REAP measured the round trip of its probes.
		if count := histogramCount(t, gw1.metrics.PathRTT); count == 0 || c1.RTT < 2*oneWayDelay {
			t.Errorf("path rtt: %d observations, context rtt %v", count, c1.RTT)
		}
		stop()
		stop = func() {}
		if err := capture.Close(); err != nil {
			t.Fatal(err)
		}
		checkCapture(t, capPath, capture.Packets.Load())
	})
}

// checkCapture parses the pcap file back: every record is a whole IPv6
// packet with a Shim6 control message, and the handshake and REAP
// messages are all there.
func checkCapture(t *testing.T, path string, want uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 229 {
		t.Fatalf("bad pcap header % x", b[:min(len(b), 24)])
	}
	types := map[shim6.Type]int{}
	var n uint64
	for off := 24; off < len(b); n++ {
		if off+16 > len(b) {
			t.Fatalf("truncated record header at %d", off)
		}
		incl := int(binary.LittleEndian.Uint32(b[off+8:]))
		pkt := b[off+16 : off+16+incl]
		off += 16 + incl
		_, _, msg, err := shim6.ParseIPv6Control(pkt)
		if err != nil {
			t.Fatalf("record %d: %v", n, err)
		}
		types[msg.Type()]++
	}
	if n != want || n == 0 {
		t.Errorf("%d records, capture counted %d", n, want)
	}
	for _, ty := range []shim6.Type{shim6.TypeI1, shim6.TypeR1, shim6.TypeI2, shim6.TypeR2, shim6.TypeProbe} {
		if types[ty] == 0 {
			t.Errorf("capture has no %v (types %v)", ty, types)
		}
	}
}

// histogramCount returns how many values h observed.
func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

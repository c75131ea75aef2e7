package gateway

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/gateway/plumbing/plumbtest"
	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/internal/nstest"
	"github.com/shim6gw/shim6gw/internal/pcap"
	"github.com/shim6gw/shim6gw/shim6"
	"github.com/shim6gw/shim6gw/tunnel"
	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

// TestControllerInDaemon runs RunDaemon with the Controller's hooks over
// fake netlink, a fake monitor and a fake TUN: a LAN host's packet makes
// the engine send an I1 into the TUN, and /debug/contexts, /metrics and
// /readyz show it. Real time, bounded waits.
func TestControllerInDaemon(t *testing.T) {
	nstest.CheckNoLeaks(t)
	path := writeConfig(t, goodConfig)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	capPath := filepath.Join(t.TempDir(), "c.pcap")
	capture, err := pcap.OpenCapture(capPath)
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	ops := &plumbtest.Locked{F: plumbtest.New("lan0", "upA", "upB")}
	watcher := &fakeWatcher{events: make(chan plumbing.UplinkEvent, 8), tunUp: true}
	dev := tuntest.New(tuntest.Config{Buffer: 64})
	ctrl := NewController(ControllerOptions{Capture: capture})
	hooks := ctrl.Hooks(func(c config.TUNConfig) ([]tunnel.Device, error) {
		ops.Do(func() { ops.F.Links[c.Name] = &plumbtest.Link{MTU: 1500} })
		return []tunnel.Device{dev}, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	signals := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() {
		done <- RunDaemon(context.Background(), DaemonOptions{ConfigPath: path, Config: cfg, Ops: ops,
			Monitor: watcher, StateFile: filepath.Join(t.TempDir(), "sysctl.json"), Signals: signals,
			AdminListener: ln, Hooks: hooks})
	}()
	stopped := false
	defer func() {
		if !stopped {
			signals <- syscall.SIGTERM
			<-done
		}
	}()

	book, err := hba.NewBook(cfg.HBA.Secret, cfg.LANPrefixes(), cfg.HBA.Hosts)
	if err != nil {
		t.Fatal(err)
	}
	host, peer := book.Entry(3).ULID(), netip.MustParseAddr("2001:db8:99::7")
	pkt := udpPacket(host, peer, "hi")
	deadline := time.After(10 * time.Second)
	var i1 []byte
	// The control loop may still be starting: repeat the packet (the
	// notice limiter lets one through per second) until the I1 shows.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	dev.Inbound <- pkt
	for i1 == nil {
		select {
		case p := <-dev.Outbound:
			if p[6] == shim6.ProtocolNumber {
				i1 = p
			}
		case <-tick.C:
			dev.Inbound <- pkt
		case <-deadline:
			t.Fatal("no I1 in the tun")
		}
	}
	if src, dst, m, err := shim6.ParseIPv6Control(i1); err != nil || m.Type() != shim6.TypeI1 || dst != peer || src != host {
		t.Fatalf("I1 %v→%v %v", src, dst, err)
	}
	var cs []metrics.ContextInfo
	for end := time.Now().Add(5 * time.Second); ; {
		if cs, err = metrics.FetchContexts(context.Background(), http.DefaultClient, base); err != nil {
			t.Fatal(err)
		}
		if len(cs) > 0 || time.Now().After(end) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(cs) != 1 || cs[0].LocalULID != host || cs[0].PeerULID != peer || cs[0].State != "i1_sent" || cs[0].LocalTag == 0 {
		t.Errorf("/debug/contexts = %+v", cs)
	}
	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`shim6gw_contexts{state="i1_sent"} 1`,
		`shim6gw_dataplane_packets_total{direction="outbound",path="passthrough"}`,
		`shim6gw_tunnel_batch_size_count`,
		`shim6gw_control_messages_total{direction="tx",type="i1"} `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, zero := range []string{
		`shim6gw_dataplane_packets_total{direction="outbound",path="passthrough"} 0`,
		`shim6gw_control_messages_total{direction="tx",type="i1"} 0`,
	} {
		if strings.Contains(metrics, zero) {
			t.Errorf("/metrics has %s", zero)
		}
	}
	if code, body := httpGet(t, base+"/readyz"); !strings.Contains(body, "ok locators") {
		t.Errorf("/readyz = %d %q", code, body)
	}
	signals <- syscall.SIGTERM
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunDaemon: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunDaemon did not stop")
	}
	select {
	case <-dev.Closed():
	default:
		t.Error("tun not closed")
	}
	if capture.Packets.Load() == 0 {
		t.Error("I1 not captured")
	}
}

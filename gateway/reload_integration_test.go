package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/internal/nsrun"
	"github.com/shim6gw/shim6gw/internal/nstest"
	"github.com/shim6gw/shim6gw/tunnel"
)

// Two real gateways (RunDaemon with the real Controller, the offload TUN
// backend, netlink plumbing and monitor) back to back in namespaces, each
// with a LAN host:
//
//	s6d-h1 ──s6dlan── s6d-gw1 ══s6dupa/s6dupb══ s6d-gw2 ──s6dlan── s6d-h2
//
// The uplinks of both gateways are cross-connected veth pairs (a to a, b to
// b), the "ISP router" of each side is the other gateway's link-local
// address.

// reloadSiteYAML is site n's configuration; sendTimeout is timers.send_timeout
// (and keepalive_timeout), after the notices of the policy.
func reloadSiteYAML(n int, sendTimeout string, notices int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "lan:\n  interface: s6dlan\nuplinks:\n")
	for _, u := range []string{"a", "b"} {
		fmt.Fprintf(&b, "  - name: %s\n    interface: s6dup%s\n    prefix: 2001:db8:%d%s::/48\n"+
			"    lan_prefix: 2001:db8:%d%s:1::/64\n    gateway: fe80::%d\n", u, u, n, u, n, u, 3-n)
	}
	fmt.Fprintf(&b, "hba:\n  secret_file: secret\n  hosts: 2\n")
	fmt.Fprintf(&b, "tun:\n  name: s6dtun\n  backend: offload\n  mtu: 1400\n")
	fmt.Fprintf(&b, "timers:\n  i1_timeout: 500ms\n  i2_timeout: 500ms\n  send_timeout: %s\n  keepalive_timeout: %s\n"+
		"  initial_probe_timeout: 200ms\n  max_probe_timeout: 1s\n", sendTimeout, sendTimeout)
	fmt.Fprintf(&b, "policy:\n  initiate_after_notices: %d\n", notices)
	return b.String()
}

// reloadGW is one running gateway of the test.
type reloadGW struct {
	cfgPath string
	cfg     *config.Config
	base    string // admin URL
	sigs    chan os.Signal
	done    chan error
	host    netip.Addr // its LAN host's address (HBA book entry 0, the ULID)
}

// crossVeth creates the veth name in a and its peer (same name) in b, both
// up, with the link-local address fe80::<ia> and fe80::<ib>.
func crossVeth(t *testing.T, ha *netlink.Handle, b netns.NsHandle, hb *netlink.Handle, name, peer string, ia, ib int) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer, PeerNamespace: netlink.NsFd(int(b))}
	if err := ha.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	for _, x := range []struct {
		h    *netlink.Handle
		name string
		ll   int
	}{{ha, name, ia}, {hb, peer, ib}} {
		l, err := x.h.LinkByName(x.name)
		if err != nil {
			t.Fatal(err)
		}
		if x.ll > 0 {
			if err := x.h.AddrAdd(l, &netlink.Addr{IPNet: nstest.MustCIDR(fmt.Sprintf("fe80::%d/64", x.ll)), Flags: unix.IFA_F_NODAD}); err != nil {
				t.Fatal(err)
			}
		}
		if err := x.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

func addAddr(t *testing.T, h *netlink.Handle, link, cidr string) {
	t.Helper()
	l, err := h.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: nstest.MustCIDR(cidr), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatalf("addr %s on %s: %v", cidr, link, err)
	}
}

// openTUNIn opens the configured backend inside ns.
func openTUNIn(ns netns.NsHandle) OpenFunc {
	return func(c config.TUNConfig) ([]tunnel.Device, error) {
		var devs []tunnel.Device
		err := nsrun.In(ns, func() error {
			switch c.Backend {
			case "offload":
				d, err := tunnel.OpenOffload(c.Name, c.MTU)
				if err != nil {
					return err
				}
				devs = append(devs, d)
			case "wireguard":
				d, err := tunnel.OpenWireGuard(c.Name, c.MTU)
				if err != nil {
					return err
				}
				devs = append(devs, d)
			default:
				return fmt.Errorf("backend %q not in this test", c.Backend)
			}
			return nil
		})
		return devs, err
	}
}

// startReloadGW builds site n (gateway and host namespaces, wired to the
// other side's uplinks by the caller) and starts its daemon.
func startReloadGW(t *testing.T, n int, gwNS netns.NsHandle, gw *netlink.Handle, hNS netns.NsHandle, h *netlink.Handle, log *slog.Logger) *reloadGW {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(fmt.Sprintf("s6d-site-%d-secret-0123456789abcdef", n)), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &reloadGW{cfgPath: filepath.Join(dir, "shim6gw.yaml"), sigs: make(chan os.Signal, 1), done: make(chan error, 1)}
	if err := os.WriteFile(g.cfgPath, []byte(reloadSiteYAML(n, "20s", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(g.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	g.cfg = cfg
	s, err := newSite(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.host = s.hosts[0].ULID
	// The LAN: gateway fe80::1, host with its ULID and a default route.
	crossVeth(t, gw, hNS, h, "s6dlan", "s6dh", 1, 0)
	addAddr(t, h, "s6dh", g.host.String()+"/64")
	hl, err := h.LinkByName("s6dh")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: hl.Attrs().Index, Dst: nstest.MustCIDR("::/0"), Gw: net.ParseIP("fe80::1")}); err != nil {
		t.Fatal(err)
	}
	// An address of its own on every uplink, so the monitor calls it up.
	for _, u := range cfg.Uplinks {
		addAddr(t, gw, u.Interface, netip.PrefixFrom(u.Prefix.Addr().Next(), 64).String())
	}
	ops, err := plumbing.NewNetlinkOps(&gwNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.base = "http://" + ln.Addr().String()
	ctrl := NewController(ControllerOptions{})
	go func() {
		g.done <- RunDaemon(context.Background(), DaemonOptions{
			ConfigPath: g.cfgPath, Config: cfg, Ops: ops, StateFile: filepath.Join(dir, "sysctl.json"),
			Monitor: plumbing.NewMonitor(plumbing.UplinkSpecsFrom(cfg), plumbing.MonitorOptions{Namespace: &gwNS}),
			Signals: g.sigs, AdminListener: ln, Log: log.With("gw", n),
			Hooks: ctrl.Hooks(openTUNIn(gwNS)),
		})
	}()
	return g
}

func (g *reloadGW) stop(t *testing.T) {
	t.Helper()
	select {
	case g.sigs <- syscall.SIGTERM:
	default:
	}
	select {
	case err := <-g.done:
		if err != nil {
			t.Errorf("RunDaemon: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("daemon did not stop within 20s")
	}
}

func (g *reloadGW) context(t *testing.T, peer netip.Addr) (metrics.ContextInfo, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cs, err := metrics.FetchContexts(ctx, http.DefaultClient, g.base)
	if err != nil {
		return metrics.ContextInfo{}, false
	}
	for _, c := range cs {
		if c.LocalULID == g.host && c.PeerULID == peer {
			return c, true
		}
	}
	return metrics.ContextInfo{}, false
}

// TestIntegrationReloadKeepsContexts: two gateways establish a context for
// their hosts' UDP flow; SIGHUP with a shorter Send Timeout (20 s → 2 s)
// and a new policy keeps the context (same tags on both sides), and a path
// broken afterwards is detected by the new Send Timeout: the failover
// comes well before the old 20 s.
func TestIntegrationReloadKeepsContexts(t *testing.T) {
	nstest.CheckNoLeaks(t)
	ns1, gw1h := nstest.NewNS(t, "s6d-gw1")
	ns2, gw2h := nstest.NewNS(t, "s6d-gw2")
	h1ns, h1h := nstest.NewNS(t, "s6d-h1")
	h2ns, h2h := nstest.NewNS(t, "s6d-h2")
	crossVeth(t, gw1h, ns2, gw2h, "s6dupa", "s6dupa", 1, 2)
	crossVeth(t, gw1h, ns2, gw2h, "s6dupb", "s6dupb", 1, 2)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	g1 := startReloadGW(t, 1, ns1, gw1h, h1ns, h1h, log)
	g2 := startReloadGW(t, 2, ns2, gw2h, h2ns, h2h, log)
	defer g2.stop(t)
	defer g1.stop(t)

	// h2 echoes UDP; h1 sends a datagram every 50 ms until the test ends.
	var echo, sender *net.UDPConn
	if err := nsrun.In(h2ns, func() (err error) {
		echo, err = net.ListenUDP("udp6", &net.UDPAddr{IP: g2.host.AsSlice(), Port: 7})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	if err := nsrun.In(h1ns, func() (err error) {
		sender, err = net.DialUDP("udp6", &net.UDPAddr{IP: g1.host.AsSlice()}, &net.UDPAddr{IP: g2.host.AsSlice(), Port: 7})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteToUDP(buf[:n], from)
		}
	}()
	echoed := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, err := sender.Read(buf); err != nil {
				return
			}
			select {
			case echoed <- struct{}{}:
			default:
			}
		}
	}()
	stopSend := make(chan struct{})
	defer close(stopSend)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSend:
				return
			case <-tick.C:
				_, _ = sender.Write([]byte("shim6gw reload test"))
			}
		}
	}()

	var c1, c2 metrics.ContextInfo
	waitReal(t, 15*time.Second, "context established on both gateways", func() bool {
		var ok1, ok2 bool
		c1, ok1 = g1.context(t, g2.host)
		c2, ok2 = g2.context(t, g1.host)
		return ok1 && ok2 && c1.State == "established" && c2.State == "established"
	})
	if c1.LocalTag != c2.PeerTag || c2.LocalTag != c1.PeerTag {
		t.Fatalf("tags do not match: gw1 %+v gw2 %+v", c1, c2)
	}
	select {
	case <-echoed:
	case <-time.After(5 * time.Second):
		t.Fatal("no echo through the gateways")
	}

	// The counters outside the rewrite path are exported by the real daemon.
	if _, body := httpGet(t, g1.base+"/metrics"); !strings.Contains(body, "\nshim6gw_control_inject_errors_total 0\n") ||
		!strings.Contains(body, "\nshim6gw_dataplane_dropped_notices_total ") ||
		!strings.Contains(body, "\nshim6gw_tunnel_dropped_packets_total ") {
		t.Errorf("metrics lack inject errors, lost notices or tun drops")
	}

	// SIGHUP both with send_timeout 2s and a new policy.
	for i, g := range []*reloadGW{g1, g2} {
		if err := os.WriteFile(g.cfgPath, []byte(reloadSiteYAML(i+1, "2s", 2)), 0o644); err != nil {
			t.Fatal(err)
		}
		g.sigs <- syscall.SIGHUP
		waitReal(t, 5*time.Second, "reload counted", func() bool {
			_, body := httpGet(t, g.base+"/metrics")
			return strings.Contains(body, `shim6gw_config_reloads_total{result="success"} 1`)
		})
	}
	time.Sleep(200 * time.Millisecond) // the control loops take the reload
	a1, ok1 := g1.context(t, g2.host)
	a2, ok2 := g2.context(t, g1.host)
	if !ok1 || !ok2 || a1.State != "established" || a2.State != "established" ||
		a1.LocalTag != c1.LocalTag || a1.PeerTag != c1.PeerTag || a2.LocalTag != c2.LocalTag {
		t.Fatalf("after SIGHUP: gw1 %+v (was %+v), gw2 %+v (was %+v)", a1, c1, a2, c2)
	}

	// gw2 now drops everything from gw1's locators under P_1a: only REAP's
	// Send timer at gw1 (h1 sends, nothing comes back) can notice.
	rule := netlink.NewRule()
	rule.Family = unix.AF_INET6
	rule.Priority = 100
	rule.Src = nstest.MustCIDR(g1.cfg.Uplinks[0].Prefix.String())
	rule.Type = unix.FR_ACT_BLACKHOLE
	if err := gw2h.RuleAdd(rule); err != nil {
		t.Fatal(err)
	}
	defer gw2h.RuleDel(rule)
	start := time.Now()
	var moved metrics.ContextInfo
	waitReal(t, 12*time.Second, "failover at gw1 within the new Send Timeout", func() bool {
		c, ok := g1.context(t, g2.host)
		moved = c
		return ok && c.LocalLocator != c1.LocalLocator
	})
	if d := time.Since(start); d >= 12*time.Second {
		t.Errorf("failover after %v", d)
	} else {
		t.Logf("failover %v after the break (Send Timeout 2 s, was 20 s)", d.Round(time.Millisecond))
	}
	if moved.LocalTag != c1.LocalTag || moved.PeerTag != c1.PeerTag {
		t.Errorf("tags changed by the failover: %+v, was %+v", moved, c1)
	}
}

// waitReal polls cond every 50 ms of wall-clock time until it holds or
// limit passed.
func waitReal(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIntegrationDefaultStateFile: the default state file names the TUN
// and the network namespace, so two gateways with the same TUN name in two
// namespaces (as in the lab) never share one.
func TestIntegrationDefaultStateFile(t *testing.T) {
	here := DefaultStateFile("shim6gw0")
	if !strings.HasPrefix(here, StateDir+"/shim6gw0-") || !strings.HasSuffix(here, ".sysctl.json") {
		t.Fatalf("DefaultStateFile = %q", here)
	}
	ns, _ := nstest.NewNS(t, "s6d-state")
	var there string
	if err := nsrun.In(ns, func() error { there = DefaultStateFile("shim6gw0"); return nil }); err != nil {
		t.Fatal(err)
	}
	if there == here || !strings.HasPrefix(there, StateDir+"/shim6gw0-") {
		t.Errorf("state files: here %q, in s6d-state %q", here, there)
	}
	if again := DefaultStateFile("shim6gw0"); again != here {
		t.Errorf("not stable: %q then %q", here, again)
	}
}

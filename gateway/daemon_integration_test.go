package gateway

import (
	"context"
	"io"
	"net"
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
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/gateway/plumbing/plumbtest"
	"github.com/shim6gw/shim6gw/internal/nstest"
)

const integrationConfig = `lan:
  interface: s6gwlan
uplinks:
  - name: a
    interface: s6gwupa
    prefix: 2001:db8:a::/48
    lan_prefix: 2001:db8:a:1::/64
    gateway: fe80::1
  - name: b
    interface: s6gwupb
    prefix: 2001:db8:b::/48
    lan_prefix: 2001:db8:b:1::/64
    gateway: fe80::1
hba:
  secret_file: secret
tun:
  name: s6gwtun
  mtu: 1400
  txqueuelen: 777
`

// nsDaemon is RunDaemon inside a test namespace with the real netlink
// ops, monitor and plumbing watcher; only the TUN's reader and the
// control loop are stand-ins.
type nsDaemon struct {
	ops  plumbing.NetlinkOps
	base string // admin URL
	in   ControlInputs
	sigs chan os.Signal
	done chan error
	stop func(t *testing.T) // SIGTERM, wait, fail on an error
}

func startNSDaemon(t *testing.T, ns netns.NsHandle, h *netlink.Handle, text string) *nsDaemon {
	t.Helper()
	path := writeConfig(t, text)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := plumbing.NewNetlinkOps(&ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &nsDaemon{ops: ops, base: "http://" + ln.Addr().String(), sigs: make(chan os.Signal, 1), done: make(chan error, 1)}
	started := make(chan ControlInputs, 1)
	go func() {
		d.done <- RunDaemon(context.Background(), DaemonOptions{
			ConfigPath: path, Config: cfg, Ops: ops, StateFile: filepath.Join(t.TempDir(), "sysctl.json"),
			Monitor: plumbing.NewMonitor(plumbing.UplinkSpecsFrom(cfg), plumbing.MonitorOptions{Namespace: &ns}),
			Signals: d.sigs, AdminListener: ln,
			Hooks: Hooks{
				OpenTUN: func(c config.TUNConfig) (io.Closer, error) {
					nstest.AddTUN(t, ns, h, c.Name)
					return closerFunc(func() error {
						l, err := h.LinkByName(c.Name)
						if err != nil {
							return err
						}
						return h.LinkDel(l)
					}), nil
				},
				Control: func(ctx context.Context, in ControlInputs) error {
					started <- in
					in.Running()
					<-ctx.Done()
					return nil
				},
			},
		})
	}()
	select {
	case d.in = <-started:
	case err := <-d.done:
		t.Fatalf("RunDaemon: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("daemon did not start within 5s")
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			d.sigs <- syscall.SIGTERM
			<-d.done
		}
	})
	d.stop = func(t *testing.T) {
		t.Helper()
		stopped = true
		d.sigs <- syscall.SIGTERM
		if err := recv(t, d.done, "daemon exit"); err != nil {
			t.Fatalf("RunDaemon: %v", err)
		}
	}
	return d
}

// TestIntegrationDaemon runs RunDaemon against a namespace with a real TUN,
// veth uplinks and the real monitor: rules, tables and the TUN are there
// while it runs, /healthz is 200 with a live uplink, and after SIGTERM
// nothing of it is left.
func TestIntegrationDaemon(t *testing.T) {
	nstest.CheckNoLeaks(t)
	ns, h := nstest.NewNS(t, "s6gw-daemon")
	for _, l := range []string{"s6gwlan", "s6gwupa", "s6gwupb"} {
		nstest.AddVeth(t, h, l, l+"p")
	}
	upa, err := h.LinkByName("s6gwupa")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(upa, &netlink.Addr{IPNet: nstest.MustCIDR("2001:db8:a:ffff::2/64"), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	d := startNSDaemon(t, ns, h, integrationConfig)
	ops, base, in := d.ops, d.base, d.in
	// Uplink a comes up (the veth carrier may follow a moment after the
	// first snapshot); b has no address and stays down.
	for e := recv(t, in.Uplinks, "uplink events"); e.Uplink != "a" || !e.Up; e = recv(t, in.Uplinks, "uplink a up") {
		if e.Uplink == "b" && e.Up {
			t.Errorf("uplink b up without an address: %+v", e)
		}
	}
	rules, routes := plumbtest.Installed(t, ops)
	if len(rules) != 7 || len(routes) != 7 {
		t.Errorf("while running: rules %v routes %v", rules, routes)
	}
	tun, err := h.LinkByName("s6gwtun")
	if err != nil || tun.Attrs().MTU != 1400 || tun.Attrs().Flags&net.FlagUp == 0 || tun.Attrs().TxQLen != 777 {
		t.Errorf("tun = %+v, %v", tun, err)
	}
	if v, _ := ops.ReadSysctl(plumbing.SysctlForwarding); v != "1" {
		t.Errorf("forwarding = %q while running", v)
	}
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if _, body := httpGet(t, base+"/metrics"); !strings.Contains(body, "shim6gw_uplink_up{uplink=\"a\"} 1\n") ||
		!strings.Contains(body, "shim6gw_tunnel_up 1\n") || !strings.Contains(body, "\nshim6gw_tunnel_dropped_packets_total 0\n") {
		t.Errorf("metrics lack uplink/tun state:\n%s", body)
	}

	d.stop(t)
	rules, routes = plumbtest.Installed(t, ops)
	if len(rules)+len(routes) != 0 {
		t.Errorf("after SIGTERM: rules %v routes %v", rules, routes)
	}
	if _, err := h.LinkByName("s6gwtun"); err == nil {
		t.Error("tun still exists after SIGTERM")
	}
	if v, _ := ops.ReadSysctl(plumbing.SysctlForwarding); v != "0" {
		t.Errorf("forwarding = %q after SIGTERM, want 0", v)
	}
}

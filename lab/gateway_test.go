package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
)

// The tests that hold the generated configuration against the gateway
// package's own loader (the schema's owner).

func TestGatewayConfigLoads(t *testing.T) {
	dir := t.TempDir()
	for _, s := range []Site{Site1, Site2} {
		path, err := WriteGatewayConfig(dir, s, "off")
		if err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(path)
		if err != nil {
			t.Fatalf("site %d: generated config rejected: %v\n%s", s.Index, err, GatewayConfig(s, "x", "off"))
		}
		if c.LAN.Interface != LANIf || len(c.Uplinks) != 2 {
			t.Fatalf("site %d: lan %q uplinks %d", s.Index, c.LAN.Interface, len(c.Uplinks))
		}
		for i, u := range s.Uplinks() {
			g := c.Uplinks[i]
			if g.Interface != u.Interface || g.Prefix != u.Prefix || g.LANPrefix != u.LAN || g.Gateway != u.ISPAddr {
				t.Errorf("site %d uplink %d: %+v, want %+v", s.Index, i, g, u)
			}
		}
		if c.Timers.SendTimeout != 300*time.Millisecond || c.Timers.KeepaliveTimeout != 300*time.Millisecond ||
			c.Timers.InitialProbeTimeout != 200*time.Millisecond || c.Timers.I1Timeout != 500*time.Millisecond {
			t.Errorf("lab timers not applied: %+v", c.Timers)
		}
		if len(c.HBA.Secret) < config.MinSecretLen {
			t.Errorf("secret %d bytes", len(c.HBA.Secret))
		}
		if c.Admin.Listen != AdminListen {
			t.Errorf("admin listen %q", c.Admin.Listen)
		}
	}
	// Options.Fastpath reaches the daemon's dataplane.fastpath.
	for _, fp := range []string{config.FastpathAuto, config.FastpathEBPF, config.FastpathOff} {
		path, err := WriteGatewayConfig(dir, Site1, fp)
		if err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(path)
		if err != nil {
			t.Fatalf("fastpath %s: %v", fp, err)
		}
		if c.Dataplane.Fastpath != fp {
			t.Errorf("fastpath %s: loaded %q", fp, c.Dataplane.Fastpath)
		}
	}
	a, _ := os.ReadFile(filepath.Join(dir, "gw1-secret"))
	b, _ := os.ReadFile(filepath.Join(dir, "gw2-secret"))
	if len(a) == 0 || string(a) == string(b) {
		t.Error("the two sites share a secret or have none")
	}
}

// TestIntegrationDaemonSeam runs the lab in Daemon mode with a stand-in
// daemon: it checks the generated configuration with the gateway package's
// own loader, then installs the kernel policy routing from it. Traffic
// flowing proves the hook ran in the right namespace with a usable config.
func TestIntegrationDaemonSeam(t *testing.T) {
	skipUnlessRoot(t)
	started := map[string]string{}
	stopped := 0
	start := func(ctx context.Context, ns, cfgPath string) (func() error, error) {
		c, err := config.Load(cfgPath)
		if err != nil {
			return nil, err
		}
		started[ns] = cfgPath
		script := "rule add pref 100 lookup main suppress_prefixlength 0\n"
		for i, u := range c.Uplinks {
			script += fmt.Sprintf("route replace default via %s dev %s table %d\nrule add pref %d from %s lookup %d\n",
				u.Gateway, u.Interface, 200+i, 110+i, u.Prefix, 200+i)
		}
		if _, err := run(ctx, strings.NewReader(script), "ip", "-6", "-n", ns, "-batch", "-"); err != nil {
			return nil, err
		}
		if _, err := run(ctx, nil, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"); err != nil {
			return nil, err
		}
		return func() error { stopped++; return nil }, nil
	}
	l := upLab(t, Options{Mode: Daemon, StartGateway: start})
	if len(started) != 2 || started[l.NS(GW1)] != l.ConfigPath(Site1) || started[l.NS(GW2)] != l.ConfigPath(Site2) {
		t.Fatalf("gateways started: %v", started)
	}
	if got := probe(t, l, H1, Site1.A.HostAddr(), H2, Site2.B.HostAddr(), 3); got != 3 {
		t.Errorf("through the stand-in daemons: %d of 3 arrived", got)
	}
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	if stopped != 2 {
		t.Errorf("stop called %d times, want 2", stopped)
	}
}

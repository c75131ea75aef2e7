package gateway

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/lan/dhcp6"
)

// TestDaemonStartsLANServicesAndServesThem runs the daemon with
// lan.dhcpv6 on: the LAN hook gets the configuration after the plumbing
// is in, its leases are at /debug/leases and its counters on /metrics.
func TestDaemonStartsLANServicesAndServesThem(t *testing.T) {
	leases := filepath.Join(t.TempDir(), "leases.json")
	text := strings.Replace(goodConfig, "  interface: lan0\n",
		"  interface: lan0\n  dhcpv6:\n    enabled: true\n    lease_file: "+leases+"\n", 1)
	called := make(chan []string, 1)
	hc := make(chan *daemonHarness, 1)
	h := startDaemonWith(t, text, true, daemonSetup{lan: func(cfg *config.Config, _ *slog.Logger) (*LANServices, error) {
		hh := <-hc
		called <- hh.rules(t)
		book, err := hba.NewBook(cfg.HBA.Secret, cfg.LANPrefixes(), cfg.HBA.Hosts)
		if err != nil {
			return nil, err
		}
		srv, err := dhcp6.New(cfg.LAN.DHCPv6, book, dhcp6.Options{HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}})
		if err != nil {
			return nil, err
		}
		return &LANServices{DHCPv6: srv}, nil
	}})
	hc <- h
	if rules := recv(t, called, "LAN hook call"); len(rules) == 0 {
		t.Errorf("LAN services started before the plumbing was in")
	}
	recv(t, h.inputs, "control inputs")
	if code, body := httpGet(t, h.base+"/debug/leases"); code != 200 || !strings.Contains(body, `"dhcpv6"`) {
		t.Errorf("/debug/leases: %d %s", code, body)
	}
	if _, body := httpGet(t, h.base+"/metrics"); !strings.Contains(body, "shim6gw_dhcpv6_pool_size") {
		t.Errorf("/metrics lacks the DHCPv6 pool size")
	}
	h.stop(t)
}

// TestDaemonWithoutLANServicesSkipsTheHook: all LAN services off (the
// default) means no hook call and no /debug/leases.
func TestDaemonWithoutLANServicesSkipsTheHook(t *testing.T) {
	called := make(chan struct{}, 1)
	h := startDaemonWith(t, goodConfig, true, daemonSetup{lan: func(*config.Config, *slog.Logger) (*LANServices, error) {
		called <- struct{}{}
		return &LANServices{}, nil
	}})
	recv(t, h.inputs, "control inputs")
	if code, _ := httpGet(t, h.base+"/debug/leases"); code != 404 {
		t.Errorf("/debug/leases: %d, want 404", code)
	}
	h.stop(t)
	select {
	case <-called:
		t.Error("LAN hook called with every LAN service off")
	default:
	}
}

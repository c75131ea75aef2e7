package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/internal/nsrun"
	"github.com/shim6gw/shim6gw/lan"
)

func TestLANServicesValidateOverlapAndDependencies(t *testing.T) {
	ulid := netip.MustParsePrefix("2001:db8:a:1::/64")
	c := config.DefaultLANConfig()
	if err := c.Validate(256, ulid); err != nil {
		t.Fatalf("defaults (all off): %v", err)
	}
	c.DHCPv6.Enabled, c.DHCPv6.FirstEntry, c.DHCPv6.Entries = true, 16, 100
	c.SLAAC.Prefix, c.SLAAC.FirstEntry = netip.MustParsePrefix("2001:db8:a:5::/64"), 100
	err := c.Validate(256, ulid)
	var fe *lan.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is no *lan.FieldError", err)
	}
	for _, want := range []string{"lan.slaac.first_entry: entries 100..255 overlap the DHCPv6 pool 16..115", "lan.slaac_prefix: needs lan.ra.enabled"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	c.SLAAC.FirstEntry, c.RA.Enabled = 116, true
	if err := c.Validate(256, ulid); err != nil {
		t.Errorf("disjoint pools: %v", err)
	}
}

func TestStartLANServicesUnknownInterface(t *testing.T) {
	book, err := hba.NewBook([]byte("0123456789abcdef"), []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")}, 4)
	if err != nil {
		t.Fatal(err)
	}
	c := config.DefaultLANConfig()
	c.Interface = "s6gw-nolan0"
	c.RA.Enabled = true
	if _, err := StartLANServices(c, book, nil, nil); err == nil || !strings.Contains(err.Error(), "s6gw-nolan0") {
		t.Errorf("error %v, want one naming the interface", err)
	}
}

// TestIntegrationLANServicesAdvertiseAndStop starts the LAN services in a
// gateway namespace (RA and DHCPv6 on a veth) and checks with a host
// namespace's kernel that the gateway becomes its default router, and
// stops being one when Close sends the final RA.
func TestIntegrationLANServicesAdvertiseAndStop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (CI runs as root)")
	}
	gw, host := fmt.Sprintf("s6lan-gwsvc-%d", os.Getpid()), fmt.Sprintf("s6lan-gwhost-%d", os.Getpid())
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, ns := range []string{gw, host} {
		ip("netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	ip("-n", gw, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", host)
	ip("-n", gw, "link", "set", "lan0", "up")
	ip("-n", host, "link", "set", "eth0", "up")

	book, err := hba.NewBook([]byte("0123456789abcdef"), []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")}, 4)
	if err != nil {
		t.Fatal(err)
	}
	c := config.DefaultLANConfig()
	c.Interface = "lan0"
	c.RA.Enabled, c.DHCPv6.Enabled = true, true
	c.DHCPv6.LeaseFile = filepath.Join(t.TempDir(), "leases.json")
	if err := c.Validate(book.Len(), book.Prefixes()[0]); err != nil {
		t.Fatal(err)
	}
	ns, err := netns.GetFromName(gw)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var svc *LANServices
	if err := nsrun.In(ns, func() (err error) { svc, err = StartLANServices(c, book, nil, nil); return err }); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			svc.Close()
		}
	})
	hasDefault := func() bool {
		return strings.Contains(ip("-n", host, "-6", "route", "show", "default"), "via fe80::")
	}
	waitFor := func(want bool) bool {
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if hasDefault() == want {
				return true
			}
		}
		return false
	}
	if !waitFor(true) {
		t.Fatalf("host has no default route via the gateway: %s", ip("-n", host, "-6", "route"))
	}
	if st := svc.RA.Stats(); st.Sent.Load() == 0 {
		t.Error("no RA counted")
	}
	svc.Close()
	closed = true
	if !waitFor(false) {
		t.Error("host kept the default route after Close")
	}
}

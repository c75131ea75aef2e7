package dhcp6_test

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/lab"
	"github.com/shim6gw/shim6gw/lan/dhcp6"
	"github.com/shim6gw/shim6gw/lan/internal/nstest"
)

// runServer starts a server on ifname inside ns and returns a stop
// function that closes its socket (like kill -9: no Close, no final
// write) and waits for Serve to return.
func runServer(t *testing.T, ns *nstest.NS, ifname string, cfg dhcp6.Config, f *fixture) (*dhcp6.Server, func()) {
	t.Helper()
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	srv, err := dhcp6.New(cfg, f.book, dhcp6.Options{HardwareAddr: mac, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var conn net.PacketConn
	if err := ns.Do(func() (err error) { conn, err = dhcp6.Listen(ifname); return err }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(conn) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		conn.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(stop)
	return srv, stop
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// addrsOn returns the global addresses on ifname inside ns.
func addrsOn(t *testing.T, ns *nstest.NS, ifname string) []netip.Addr {
	l, err := ns.Link.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	as, err := ns.Link.AddrList(l, 10) // AF_INET6
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsGlobalUnicast() {
			out = append(out, ip)
		}
	}
	return out
}

// TestIntegrationDHCPClientKeepsAddressAcrossRestartAndKill runs ISC
// dhclient in a host namespace against the server in a gateway namespace:
// the host gets its book ULID, and keeps it while the server restarts
// cleanly and after a crash (the new server starts from the lease file).
func TestIntegrationDHCPClientKeepsAddressAcrossRestartAndKill(t *testing.T) {
	nstest.SkipUnlessRoot(t)
	if _, err := exec.LookPath("dhclient"); err != nil {
		t.Skip("skipping: dhclient (Debian isc-dhcp-client) not installed; .ci/run installs it")
	}
	gw := nstest.New(t, "dh-gw")
	host := nstest.New(t, "dh-host")
	nstest.Veth(t, gw, "lan0", host, "eth0")
	f := newFixture(t, 8, func(c *dhcp6.Config) {
		c.FirstEntry = 3
		// Renew every 2 s so the test sees renewals to each server.
		c.PreferredLifetime, c.ValidLifetime, c.RenewTime, c.RebindTime = time.Minute, 2*time.Minute, 2*time.Second, 50*time.Second
	})
	want := f.book.Entry(3).ULID()
	srv, stop := runServer(t, gw, "lan0", f.cfg, f)
	dir := t.TempDir()
	// Debian's dhclient-script would rewrite the machine's
	// /etc/resolv.conf (a namespace shares /etc): this one only sets the
	// address.
	script := filepath.Join(dir, "dhclient-script")
	if err := os.WriteFile(script, []byte(lab.DHCPClientScript), 0o755); err != nil {
		t.Fatal(err)
	}
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	t.Cleanup(func() {
		if now, _ := os.ReadFile("/etc/resolv.conf"); string(now) != string(resolv) {
			t.Errorf("/etc/resolv.conf changed during the test:\n%s", now)
		}
	})
	host.Start(t, "dhclient", "-6", "-d", "-v", "-lf", filepath.Join(dir, "dhclient6.leases"), "-pf", filepath.Join(dir, "dhclient6.pid"),
		"-sf", script, "eth0")

	hasWant := func() bool {
		for _, a := range addrsOn(t, host, "eth0") {
			if a == want {
				return true
			}
		}
		return false
	}
	if !nstest.Eventually(20*time.Second, hasWant) {
		t.Fatalf("host addresses %v, want the ULID of entry 3 %v; leases %+v", addrsOn(t, host, "eth0"), want, srv.Leases())
	}
	renewedBy := func(s *dhcp6.Server, replies uint64) bool {
		return nstest.Eventually(15*time.Second, func() bool { return s.Stats().Replies >= replies })
	}
	for _, crash := range []bool{false, true} {
		stop()
		if !crash {
			srv.Close()
		}
		srv, stop = runServer(t, gw, "lan0", f.cfg, f)
		// Two renewals answered by the new server.
		if !renewedBy(srv, 2) {
			t.Fatalf("crash=%v: the new server answered %d messages", crash, srv.Stats().Replies)
		}
		l := srv.Leases()
		if len(l) != 1 || l[0].Address != want || l[0].State != "bound" {
			t.Errorf("crash=%v: leases %+v, want one bound to %v", crash, l, want)
		}
		if !hasWant() {
			t.Errorf("crash=%v: host lost its address: %v", crash, addrsOn(t, host, "eth0"))
		}
	}

	// Garbage to the server's multicast group is dropped and counted.
	before := srv.Stats().Dropped[dhcp6.DropMalformed]
	err := host.Do(func() error {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WriteToUDP([]byte{1, 2, 3, 0, 1, 0, 200}, &net.UDPAddr{IP: net.ParseIP("ff02::1:2"), Port: 547, Zone: "eth0"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !nstest.Eventually(5*time.Second, func() bool { return srv.Stats().Dropped[dhcp6.DropMalformed] > before }) {
		t.Error("malformed message over the link not counted")
	}
}

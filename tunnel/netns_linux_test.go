package tunnel_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/tunnel"
)

// Namespace and interface names start with s6tun, this package's prefix.
const tunName = "s6tun0"

func skipUnlessRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and TUN devices; run as root (CI does)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("no /dev/net/tun: %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 (ip) not installed")
	}
}

var nsSeq atomic.Uint32

// newNS creates a named network namespace with lo up and removes it in
// t.Cleanup.
func newNS(t testing.TB, tag string) string {
	t.Helper()
	name := fmt.Sprintf("s6tun-%s-%d-%d", tag, os.Getpid(), nsSeq.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ipn(t, name, "link", "set", "lo", "up")
	return name
}

// inNS returns what fn returns, run in namespace ns; it fails the test
// with msg if fn fails.
func inNS[T any](t testing.TB, ns, msg string, fn func() (T, error)) T {
	t.Helper()
	var v T
	if err := tunnel.InNamespace(ns, func() error {
		var err error
		v, err = fn()
		return err
	}); err != nil {
		t.Fatalf("%s in %s: %v", msg, ns, err)
	}
	return v
}

// run runs a command with a timeout and fails the test if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ipn runs `ip -n ns args...`.
func ipn(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"-n", ns}, args...)...)
}

// nsExec runs a command inside ns.
func nsExec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// veth creates a veth pair, dev1 in ns1 and dev2 in ns2, gives each end
// its address (no DAD) and sets both up.
func veth(t testing.TB, ns1, dev1, addr1, ns2, dev2, addr2 string) {
	t.Helper()
	ipn(t, ns1, "link", "add", dev1, "type", "veth", "peer", "name", dev2, "netns", ns2)
	for _, e := range [][3]string{{ns1, dev1, addr1}, {ns2, dev2, addr2}} {
		ipn(t, e[0], "addr", "add", e[2], "dev", e[1], "nodad")
		ipn(t, e[0], "link", "set", e[1], "up")
	}
}

// routeVia adds IPv6 routes in ns to each of dsts via gw.
func routeVia(t testing.TB, ns, gw string, dsts ...string) {
	t.Helper()
	for _, d := range dsts {
		ipn(t, ns, "-6", "route", "add", d, "via", gw)
	}
}

// gateway is a forwarding namespace and the two interfaces whose traffic
// divert sends into its TUN.
type gateway struct {
	ns       string
	lan, wan string
}

// chain is client — gateways — server, each in its own namespace: the
// part the one- and two-gateway topologies share.
type chain struct {
	c, s string
	gws  []gateway
}

const divertTable = "100"

// newChain turns on IPv6 forwarding in the gateways.
func newChain(t testing.TB, c, s string, gws ...gateway) chain {
	t.Helper()
	for _, g := range gws {
		nsExec(t, g.ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	}
	return chain{c: c, s: s, gws: gws}
}

// divert sends everything arriving on the gateways' interfaces into their
// TUNs (iif → table 100 → default dev tun); what a forwarder writes back
// arrives with iif tun, misses the rules and is routed by main.
func (n *chain) divert(t testing.TB) {
	t.Helper()
	for _, g := range n.gws {
		ipn(t, g.ns, "link", "set", tunName, "up")
		ipn(t, g.ns, "-6", "route", "add", "default", "dev", tunName, "table", divertTable)
	}
	n.rules(t, true)
}

// rules adds or removes the iif rules of divert, switching between the
// TUNs and plain kernel forwarding while the TUNs stay up.
func (n *chain) rules(t testing.TB, on bool) {
	t.Helper()
	for _, g := range n.gws {
		if on {
			ipn(t, g.ns, "-6", "rule", "add", "iif", g.lan, "lookup", divertTable, "pref", "100")
			ipn(t, g.ns, "-6", "rule", "add", "iif", g.wan, "lookup", divertTable, "pref", "101")
		} else {
			ipn(t, g.ns, "-6", "rule", "del", "pref", "100")
			ipn(t, g.ns, "-6", "rule", "del", "pref", "101")
		}
	}
}

// flushDivert removes the TUN routes divert added; the rules must be off
// already (rules(t, false)).
func (n *chain) flushDivert(t testing.TB) {
	t.Helper()
	for _, g := range n.gws {
		ipn(t, g.ns, "-6", "route", "flush", "table", divertTable)
	}
}

// topo is client — gw — server, IPv6 only:
//
//	client c0 fd00:5:a::2 ─ g0 fd00:5:a::1 [gw] g1 fd00:5:b::1 ─ s0 fd00:5:b::2 server
type topo struct {
	chain
	g string
}

var (
	clientAddr = netip.MustParseAddr("fd00:5:a::2")
	serverAddr = netip.MustParseAddr("fd00:5:b::2")
)

func newTopo(t testing.TB, tag string) *topo {
	t.Helper()
	c, g, s := newNS(t, tag+"c"), newNS(t, tag+"g"), newNS(t, tag+"s")
	veth(t, c, "c0", "fd00:5:a::2/64", g, "g0", "fd00:5:a::1/64")
	veth(t, s, "s0", "fd00:5:b::2/64", g, "g1", "fd00:5:b::1/64")
	routeVia(t, c, "fd00:5:a::1", "default")
	routeVia(t, s, "fd00:5:b::1", "default")
	return &topo{chain: newChain(t, c, s, gateway{g, "g0", "g1"}), g: g}
}

// IPv6/UDP helpers for the integration tests.

const (
	ipv6HeaderLen = 40
	udpHeaderLen  = 8
	protoUDP      = 17
	protoTCP      = 6
)

func ipv6Src(p []byte) netip.Addr { return netip.AddrFrom16([16]byte(p[8:24])) }
func ipv6Dst(p []byte) netip.Addr { return netip.AddrFrom16([16]byte(p[24:40])) }

// checksum folds the one's-complement sum of b into sum (RFC 1071).
func checksum(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// setUDPChecksum recomputes the UDP checksum of an IPv6 packet with a UDP
// header right after the fixed header (RFC 8200 §8.1 pseudo-header).
func setUDPChecksum(p []byte) {
	udp := p[ipv6HeaderLen:]
	udp[6], udp[7] = 0, 0
	sum := checksum(p[8:40], 0)
	sum += uint32(len(udp)) + protoUDP
	sum = checksum(udp, sum)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
}

// swapUDP turns a UDP/IPv6 packet around: addresses and ports swapped.
// The checksum stays valid because its sum does not depend on order.
func swapUDP(p []byte) {
	var a [16]byte
	copy(a[:], p[8:24])
	copy(p[8:24], p[24:40])
	copy(p[24:40], a[:])
	u := p[ipv6HeaderLen:]
	u[0], u[1], u[2], u[3] = u[2], u[3], u[0], u[1]
}

// waitLocalRoute waits until the kernel has installed the local route of
// addr: that happens in a work item after `ip addr add` returns, and until
// then packets to addr count as InAddrErrors instead of being delivered.
func waitLocalRoute(t testing.TB, ns string, addr netip.Addr) {
	t.Helper()
	for range 250 {
		if strings.TrimSpace(ipn(t, ns, "-6", "route", "show", "table", "local", addr.String())) != "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no local route for %v in %s after 5s", addr, ns)
}

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

// topo is client — gw — server, each in its own namespace, IPv6 only:
//
//	client c0 fd00:5:a::2 ─ g0 fd00:5:a::1 [gw] g1 fd00:5:b::1 ─ s0 fd00:5:b::2 server
type topo struct {
	c, g, s string
}

var (
	clientAddr = netip.MustParseAddr("fd00:5:a::2")
	serverAddr = netip.MustParseAddr("fd00:5:b::2")
)

const divertTable = "100"

func newTopo(t testing.TB, tag string) *topo {
	t.Helper()
	tp := &topo{c: newNS(t, tag+"c"), g: newNS(t, tag+"g"), s: newNS(t, tag+"s")}
	ipn(t, tp.c, "link", "add", "c0", "type", "veth", "peer", "name", "g0", "netns", tp.g)
	ipn(t, tp.s, "link", "add", "s0", "type", "veth", "peer", "name", "g1", "netns", tp.g)
	ipn(t, tp.c, "addr", "add", "fd00:5:a::2/64", "dev", "c0", "nodad")
	ipn(t, tp.g, "addr", "add", "fd00:5:a::1/64", "dev", "g0", "nodad")
	ipn(t, tp.g, "addr", "add", "fd00:5:b::1/64", "dev", "g1", "nodad")
	ipn(t, tp.s, "addr", "add", "fd00:5:b::2/64", "dev", "s0", "nodad")
	for _, l := range [][2]string{{tp.c, "c0"}, {tp.g, "g0"}, {tp.g, "g1"}, {tp.s, "s0"}} {
		ipn(t, l[0], "link", "set", l[1], "up")
	}
	ipn(t, tp.c, "-6", "route", "add", "default", "via", "fd00:5:a::1")
	ipn(t, tp.s, "-6", "route", "add", "default", "via", "fd00:5:b::1")
	nsExec(t, tp.g, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	return tp
}

// divert sends everything arriving on the gateway's veths into the TUN
// (iif → table 100 → default dev tun); what the forwarder writes back
// arrives with iif tun, misses the rules and is routed by main.
func (tp *topo) divert(t testing.TB, dev string) {
	t.Helper()
	ipn(t, tp.g, "link", "set", dev, "up")
	ipn(t, tp.g, "-6", "route", "add", "default", "dev", dev, "table", divertTable)
	tp.rules(t, true)
}

// rules adds or removes the iif rules of divert, switching between the
// TUN and plain kernel forwarding while the TUN stays up.
func (tp *topo) rules(t testing.TB, on bool) {
	t.Helper()
	if on {
		ipn(t, tp.g, "-6", "rule", "add", "iif", "g0", "lookup", divertTable, "pref", "100")
		ipn(t, tp.g, "-6", "rule", "add", "iif", "g1", "lookup", divertTable, "pref", "101")
		return
	}
	ipn(t, tp.g, "-6", "rule", "del", "pref", "100")
	ipn(t, tp.g, "-6", "rule", "del", "pref", "101")
}

// undivert removes what divert added, back to kernel forwarding.
func (tp *topo) undivert(t testing.TB) {
	t.Helper()
	tp.rules(t, false)
	ipn(t, tp.g, "-6", "route", "flush", "table", divertTable)
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

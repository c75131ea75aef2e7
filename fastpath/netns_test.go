package fastpath

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/tunnel"
)

func skipUnlessNetns(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and eBPF; run as root (CI does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 (ip) not installed")
	}
}

var nsSeq atomic.Uint32

// newNS creates a namespace named fp-<pid>-<seq>-<tag> with lo up and
// deletes it (and so its links and programs' attachments) in t.Cleanup.
func newNS(t testing.TB, tag string) string {
	t.Helper()
	name := fmt.Sprintf("fp-%d-%d-%s", os.Getpid(), nsSeq.Add(1), tag)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ipn(t, name, "link", "set", "lo", "up")
	return name
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func ipn(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"-n", ns}, args...)...)
}

func nsExec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// veth links dev1 in ns1 (address addr1) with dev2 in ns2 (addr2).
func veth(t testing.TB, ns1, dev1, addr1, ns2, dev2, addr2 string) {
	t.Helper()
	ipn(t, ns1, "link", "add", dev1, "type", "veth", "peer", "name", dev2, "netns", ns2)
	for _, e := range [][3]string{{ns1, dev1, addr1}, {ns2, dev2, addr2}} {
		ipn(t, e[0], "addr", "add", e[2], "dev", e[1], "nodad")
		ipn(t, e[0], "link", "set", e[1], "up")
	}
}

// gw is a gateway namespace: LAN interface l0, uplink u0, and a dummy
// device fpt that stands for the TUN in the program's route lookups.
type gw struct {
	ns     string
	tunIdx int
	cfg    rewrite.Config
	prog   *Program
	att    *Attachment
}

// topo is client — gateways — server. With one gateway the context is on
// the ULID pair (passthrough); with two, gw1 and gw2 shim between them.
//
//	c0 2001:db8:a:1::10 ─ l0 [gw1] u0 2001:db8:f::1 ─ 2001:db8:f::2 u0 [gw2] l0 ─ s0 2001:db8:c:1::20
//	c0 2001:db8:a:1::10 ─ l0 [gw1] u0 ───────────────────────────────────────────── s0 2001:db8:c:1::20
type topo struct {
	c, s string
	gws  []*gw
	all  [][2]string // every (ns, dev) of the topology's veths
}

func newTopo(t testing.TB, gateways int) *topo {
	t.Helper()
	n := &topo{c: newNS(t, "c"), s: newNS(t, "s")}
	for i := range gateways {
		g := &gw{ns: newNS(t, fmt.Sprintf("g%d", i+1))}
		for _, k := range []string{"all", "default"} {
			nsExec(t, g.ns, "sysctl", "-qw", "net.ipv6.conf."+k+".forwarding=1")
		}
		ipn(t, g.ns, "tuntap", "add", "dev", "fpt", "mode", "tun")
		ipn(t, g.ns, "link", "set", "fpt", "up")
		g.tunIdx = inNS(t, g.ns, func() (int, error) {
			ifi, err := net.InterfaceByName("fpt")
			if err != nil {
				return 0, err
			}
			return ifi.Index, nil
		})
		n.gws = append(n.gws, g)
	}
	g1 := n.gws[0]
	veth(t, n.c, "c0", hostULID.String()+"/64", g1.ns, "l0", "2001:db8:a:1::1/64")
	ipn(t, n.c, "-6", "route", "add", "default", "via", "2001:db8:a:1::1")
	n.all = append(n.all, [2]string{n.c, "c0"}, [2]string{g1.ns, "l0"})
	last := g1
	if gateways == 2 {
		g2 := n.gws[1]
		veth(t, g1.ns, "u0", "2001:db8:f::1/64", g2.ns, "u0", "2001:db8:f::2/64")
		for _, d := range []string{"2001:db8:c::/48", "2001:db8:d::/48"} {
			ipn(t, g1.ns, "-6", "route", "add", d, "via", "2001:db8:f::2")
		}
		for _, d := range []string{"2001:db8:a::/48", "2001:db8:b::/48"} {
			ipn(t, g2.ns, "-6", "route", "add", d, "via", "2001:db8:f::1")
		}
		n.all = append(n.all, [2]string{g1.ns, "u0"}, [2]string{g2.ns, "u0"})
		veth(t, g2.ns, "l0", "2001:db8:c:1::1/64", n.s, "s0", peerULID.String()+"/64")
		n.all = append(n.all, [2]string{g2.ns, "l0"}, [2]string{n.s, "s0"})
		g1.cfg, g2.cfg = siteConfig(false, false), peerConfig()
		last = g2
	} else {
		veth(t, g1.ns, "u0", "2001:db8:c:1::1/64", n.s, "s0", peerULID.String()+"/64")
		n.all = append(n.all, [2]string{g1.ns, "u0"}, [2]string{n.s, "s0"})
		cfg := siteConfig(false, false)
		cfg.Contexts[0].LocalLocator, cfg.Contexts[0].PeerLocator = hostULID, peerULID
		g1.cfg = cfg
	}
	ipn(t, n.s, "-6", "route", "add", "default", "via", "2001:db8:c:1::1")
	_ = last
	return n
}

// inNS returns what fn returns, run inside namespace ns.
func inNS[T any](t testing.TB, ns string, fn func() (T, error)) T {
	t.Helper()
	var v T
	if err := tunnel.InNamespace(ns, func() error {
		var err error
		v, err = fn()
		return err
	}); err != nil {
		t.Fatalf("in %s: %v", ns, err)
	}
	return v
}

// attach loads a program per gateway, publishes its table and attaches
// it to l0 and u0; detach undoes it.
func (n *topo) attach(t testing.TB) {
	t.Helper()
	for _, g := range n.gws {
		p, err := Load(Options{TUNIndex: g.tunIdx})
		if err != nil {
			t.Fatal(err)
		}
		tab, err := rewrite.NewTable(g.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Maps().Apply(g.cfg, tab); err != nil {
			t.Fatal(err)
		}
		g.prog = p
		g.att = inNS(t, g.ns, func() (*Attachment, error) { return p.Attach("l0", []string{"u0"}) })
		t.Cleanup(func() { p.Close() })
	}
}

func (n *topo) detach(t testing.TB) {
	t.Helper()
	for _, g := range n.gws {
		if g.prog != nil {
			if err := g.prog.Close(); err != nil {
				t.Error(err)
			}
			g.prog, g.att = nil, nil
		}
	}
}

// attached returns the IDs of the programs at TCX ingress of dev in ns.
func attached(t testing.TB, ns, dev string) []ebpf.ProgramID {
	t.Helper()
	return inNS(t, ns, func() ([]ebpf.ProgramID, error) {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return nil, err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return nil, err
		}
		var ids []ebpf.ProgramID
		for _, p := range res.Programs {
			ids = append(ids, p.ID)
		}
		return ids, nil
	})
}

// echo sends count UDP datagrams from the client's ULID to an echo
// socket on the server and returns how many came back.
func (n *topo) echo(t testing.TB, src netip.Addr, count int) int {
	t.Helper()
	srv := inNS(t, n.s, func() (*net.UDPConn, error) {
		return net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(peerULID, 0)))
	})
	defer srv.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			k, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			srv.WriteToUDPAddrPort(buf[:k], from)
		}
	}()
	cl := inNS(t, n.c, func() (*net.UDPConn, error) {
		return net.DialUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), srv.LocalAddr().(*net.UDPAddr))
	})
	defer cl.Close()
	got := 0
	buf := make([]byte, 2048)
	for i := range count {
		msg := fmt.Appendf(nil, "datagram %d", i)
		if _, err := cl.Write(msg); err != nil {
			t.Fatal(err)
		}
		cl.SetReadDeadline(time.Now().Add(time.Second))
		for {
			k, err := cl.Read(buf)
			if err != nil {
				break
			}
			if string(buf[:k]) == string(msg) { // else a late reply
				got++
				break
			}
		}
	}
	return got
}

// warmUp waits until the kernel alone forwards an echo (neighbour
// discovery done), so that the counts of a test are its own.
func (n *topo) warmUp(t testing.TB) {
	t.Helper()
	for range 5 {
		if n.echo(t, hostULID, 1) == 1 {
			return
		}
	}
	t.Fatal("no echo through the kernel alone")
}

// TestAttachStampDetach attaches the program to a gateway whose context
// is on the ULID pair: pings cross it on the fast path both ways, the
// stamps reach rewrite.Stamps, and closing leaves nothing attached.
func TestAttachStampDetach(t *testing.T) {
	skipUnlessNetns(t)
	n := newTopo(t, 1)
	n.warmUp(t)
	n.attach(t)
	g := n.gws[0]
	for _, dev := range []string{"l0", "u0"} {
		if ids := attached(t, g.ns, dev); len(ids) != 1 {
			t.Fatalf("%s: %d programs attached, want 1", dev, len(ids))
		}
	}
	tab, _ := rewrite.NewTable(g.cfg)
	if err := g.prog.Maps().Apply(g.cfg, tab); err != nil {
		t.Fatal(err)
	}
	st := tab.LookupTag(tagLocal).Stamps()
	before := monotonic()
	if got := n.echo(t, hostULID, 5); got != 5 {
		t.Fatalf("%d of 5 echoes came back", got)
	}
	g.prog.Maps().Harvest(monotonic())
	stats, err := g.prog.Maps().Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats[FastOutPass].Packets < 5 || stats[FastInPass].Packets < 5 {
		t.Errorf("fast out %d in %d, want ≥ 5 each (stats %+v)", stats[FastOutPass].Packets, stats[FastInPass].Packets, stats)
	}
	if st.SentPackets.Load() < 5 || st.ReceivedPackets.Load() < 5 {
		t.Errorf("stamps: sent %d received %d, want ≥ 5", st.SentPackets.Load(), st.ReceivedPackets.Load())
	}
	if st.LastSent.Load() < before || st.LastReceived.Load() < before {
		t.Errorf("stamps not refreshed: %d %d < %d", st.LastSent.Load(), st.LastReceived.Load(), before)
	}
	// A packet without context still crosses (the kernel forwards it).
	other := netip.MustParseAddr("2001:db8:a:1::99")
	ipn(t, n.c, "addr", "add", other.String()+"/64", "dev", "c0", "nodad")
	if got := n.echo(t, other, 1); got != 1 {
		t.Error("no echo without a context")
	}
	n.detach(t)
	for _, dev := range []string{"l0", "u0"} {
		if ids := attached(t, g.ns, dev); len(ids) != 0 {
			t.Errorf("%s: programs %v still attached after Close", dev, ids)
		}
	}
	if got := n.echo(t, hostULID, 1); got != 1 {
		t.Error("no echo after detaching")
	}
}

// TestShimmedEcho: gw1 shims, gw2 strips, both ways, through the kernel.
func TestShimmedEcho(t *testing.T) {
	skipUnlessNetns(t)
	n := newTopo(t, 2)
	n.warmUp(t)
	n.attach(t)
	if got := n.echo(t, hostULID, 5); got != 5 {
		t.Fatalf("%d of 5 echoes came back", got)
	}
	s1, err := n.gws[0].prog.Maps().Stats()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := n.gws[1].prog.Maps().Stats()
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]uint64{
		"gw1 shimmed": s1[FastOutShim].Packets, "gw1 stripped": s1[FastInStrip].Packets,
		"gw2 shimmed": s2[FastOutShim].Packets, "gw2 stripped": s2[FastInStrip].Packets,
	} {
		if v < 5 {
			t.Errorf("%s %d packets, want ≥ 5", name, v)
		}
	}
}

// TestCleanupRemovesLeftovers attaches without closing, as a crashed run
// whose link survived would leave it, and removes it by name.
func TestCleanupRemovesLeftovers(t *testing.T) {
	skipUnlessNetns(t)
	n := newTopo(t, 1)
	n.attach(t)
	g := n.gws[0]
	removed := inNS(t, g.ns, func() (int, error) { return Cleanup([]string{"l0", "u0", "missing0"}) })
	if removed != 2 {
		t.Errorf("removed %d, want 2", removed)
	}
	for _, dev := range []string{"l0", "u0"} {
		if ids := attached(t, g.ns, dev); len(ids) != 0 {
			t.Errorf("%s: programs %v still attached after Cleanup", dev, ids)
		}
	}
	n.detach(t) // closing detached links is harmless
}

package fastpath

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestUnresolvedNeighbourTakesTUNPath: after the uplink loses carrier the
// kernel flushes its neighbours but keeps its routes, so the lookup still
// picks it. The program must hand such packets on (tun_no_neigh) rather
// than park them in the neighbour queue, where the sender's skb would
// wait for resolution for seconds and TCP would not retransmit it. Once
// the link is back and the kernel has resolved the next hop, the fast
// path forwards again.
func TestUnresolvedNeighbourTakesTUNPath(t *testing.T) {
	skipUnlessNetns(t)
	n := newTopo(t, 1)
	n.warmUp(t)
	n.attach(t)
	g := n.gws[0]
	stats := func() [NumVerdicts]Stat {
		t.Helper()
		s, err := g.prog.Maps().Stats()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := n.echo(t, hostULID, 1); got != 1 {
		t.Fatal("no echo before the carrier loss")
	}

	ipn(t, n.s, "link", "set", "s0", "down") // u0 loses carrier
	before := stats()
	cl := inNS(t, n.c, func() (*net.UDPConn, error) {
		return net.DialUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(hostULID, 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(peerULID, 9)))
	})
	defer cl.Close()
	if _, err := cl.Write([]byte("after the carrier loss")); err != nil {
		t.Fatal(err)
	}
	var after [NumVerdicts]Stat
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if after = stats(); after[TUNNoNeigh].Packets > before[TUNNoNeigh].Packets ||
			after[FastOutPass].Packets > before[FastOutPass].Packets {
			break
		}
	}
	if after[FastOutPass].Packets != before[FastOutPass].Packets {
		t.Errorf("fast_out_pass %d → %d: the program forwarded toward a next hop without a neighbour entry",
			before[FastOutPass].Packets, after[FastOutPass].Packets)
	}
	if after[TUNNoNeigh].Packets != before[TUNNoNeigh].Packets+1 {
		t.Errorf("tun_no_neigh %d → %d, want one more", before[TUNNoNeigh].Packets, after[TUNNoNeigh].Packets)
	}

	// Taking s0 down removed its address and route.
	ipn(t, n.s, "link", "set", "s0", "up")
	ipn(t, n.s, "addr", "add", peerULID.String()+"/64", "dev", "s0", "nodad")
	ipn(t, n.s, "-6", "route", "add", "default", "via", "2001:db8:c:1::1")
	fast := after[FastOutPass].Packets
	ok := false
	for range 5 {
		if n.echo(t, hostULID, 1) == 1 && stats()[FastOutPass].Packets > fast {
			ok = true
			break
		}
	}
	if !ok {
		t.Errorf("the fast path did not forward again after the link came back (stats %+v)", stats())
	}
}

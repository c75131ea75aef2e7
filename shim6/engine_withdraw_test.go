package shim6

import (
	"net/netip"
	"testing"
	"time"
)

// TestUpdateWithdrawsCurrentLocator: A's context runs on its second
// locator when the site withdraws that locator (UpdateLocalHost without
// it). The Update Request must leave from a locator that stays, so B's
// Update Ack reaches a locator A still owns and ends the request at
// once (RFC 5533 §10.4, §10.5); the context then moves off the withdrawn
// locator with the same tags.
func TestUpdateWithdrawsCurrentLocator(t *testing.T) {
	net, a, b, sa, sb, _ := twoSites(t, 41, 1, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	la2 := sa.hosts[0].Locators[1]
	establishWithFlow(t, net, a, b, sa, sb, 0, 100*time.Millisecond, simEpoch.Add(time.Minute))
	// Uplink 1 fails, the context moves to la2, uplink 1 comes back.
	a.apply(a.e.UplinkDown(net.now, sa.uplinks[0].Name))
	net.runFor(3 * time.Second)
	before, _ := a.e.Context(ua, ub)
	if before.LocalLocator != la2 {
		t.Fatalf("context on %v after uplink down, want %v", before.LocalLocator, la2)
	}
	a.apply(a.e.UplinkUp(net.now, sa.uplinks[0].Name))
	net.runFor(time.Second)

	// Withdraw la2.
	mark := len(net.log)
	h := sa.hosts[0]
	h.Locators = []netip.Addr{ua}
	act, err := a.e.UpdateLocalHost(net.now, h)
	if err != nil {
		t.Fatal(err)
	}
	a.apply(act)
	net.runFor(3 * time.Second) // below UPDATE_TIMEOUT ±50 % (4 s)
	var reqs, acks []logEntry
	for _, l := range net.log[mark:] {
		switch l.typ {
		case TypeUpdateRequest:
			reqs = append(reqs, l)
		case TypeUpdateAck:
			acks = append(acks, l)
		}
	}
	if len(reqs) != 1 || reqs[0].src != ua || reqs[0].dropped {
		t.Fatalf("update requests %v; want one, from %v", reqs, ua)
	}
	if len(acks) != 1 || acks[0].dst != ua {
		t.Fatalf("update acks %v; want one, to %v", acks, ua)
	}
	if c := a.e.byTag[before.LocalTag]; c == nil || c.upd != nil {
		t.Fatalf("update still outstanding after the ack: %+v", c)
	}
	m := Message(reqs[0].msg)
	o, _, ok := m.Option(OptLocatorList)
	ll, ok2 := o.LocatorList()
	if !ok || !ok2 || ll.Count() != 1 || ll.Locator(0) != ua {
		t.Fatalf("locator list %x; want only %v", o, ua)
	}
	after, _ := a.e.Context(ua, ub)
	if after.LocalLocator != ua || after.LocalTag != before.LocalTag || after.PeerTag != before.PeerTag {
		t.Errorf("after withdrawal: %v (tags %x/%x), want %v (tags %x/%x)",
			after.LocalLocator, after.LocalTag, after.PeerTag, ua, before.LocalTag, before.PeerTag)
	}
	cb, _ := b.e.Context(ub, ua)
	if len(cb.PeerLocators) != 1 || cb.PeerLocators[0] != ua {
		t.Errorf("B's Ls(peer) = %v, want [%v]", cb.PeerLocators, ua)
	}
}

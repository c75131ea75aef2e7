package dhcp6_test

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/shim6gw/shim6gw/lan/dhcp6"
)

func TestFourMessageExchangeGivesPoolEntryULID(t *testing.T) {
	f := newFixture(t, 8, func(c *dhcp6.Config) { c.FirstEntry = 2 })
	c := newClient(1)
	adv := f.send(c.msg(dhcpv6.MessageTypeSolicit, false))
	if adv.MessageType != dhcpv6.MessageTypeAdvertise {
		t.Fatalf("type %v", adv.MessageType)
	}
	if got := adv.Options.ServerID().ToBytes(); !bytes.Equal(got, []byte{0, 3, 0, 1, 2, 0, 0, 0, 0, 1}) {
		t.Errorf("server DUID %x, want DUID-LL of the MAC", got)
	}
	if !adv.Options.ClientID().Equal(c.duid) {
		t.Error("Advertise lacks the client's DUID")
	}
	if p := adv.Options.Preference(); p != 255 {
		t.Errorf("preference %d", p)
	}
	if d := adv.Options.DNS(); len(d) != 1 || d[0].String() != "2001:db8:a:1::53" {
		t.Errorf("DNS %v", d)
	}
	if l := adv.Options.DomainSearchList(); l == nil || len(l.Labels) != 1 || l.Labels[0] != "site.example" {
		t.Errorf("domain search %v", l)
	}
	ia := adv.Options.OneIANA()
	if ia.T1 != 30*time.Minute || ia.T2 != 48*time.Minute {
		t.Errorf("T1 %v T2 %v", ia.T1, ia.T2)
	}
	a := ia.Options.OneAddress()
	if !a.IPv6Addr.Equal(f.ulid(2)) || a.PreferredLifetime != time.Hour || a.ValidLifetime != 2*time.Hour {
		t.Fatalf("advertised %v %v/%v, want entry 2's ULID %v 1h/2h", a.IPv6Addr, a.PreferredLifetime, a.ValidLifetime, f.ulid(2))
	}
	if l := f.srv.Leases(); len(l) != 1 || l[0].State != "offered" {
		t.Errorf("after Advertise: %+v", l)
	}
	c.sid, c.addr = adv.Options.ServerID(), a.IPv6Addr
	rep := f.send(c.msg(dhcpv6.MessageTypeRequest, true))
	if rep.MessageType != dhcpv6.MessageTypeReply {
		t.Fatalf("type %v", rep.MessageType)
	}
	if got, valid, code := iaAddr(rep); !got.Equal(f.ulid(2)) || valid != 2*time.Hour || code != iana.StatusSuccess {
		t.Fatalf("Reply %v %v %v", got, valid, code)
	}
	want := []dhcp6.Lease{{DUID: "000300015254000001" + "01", IAID: "00000001", Entry: 2, Address: f.book.Entry(2).ULID(), State: "bound", Expires: f.now.Add(2 * time.Hour)}}
	if diff := cmp.Diff(want, f.srv.Leases(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("leases (-want +got):\n%s", diff)
	}
	if st := f.srv.Stats(); st.Leases != 1 || st.PoolSize != 6 || st.Replies != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestBindingStableAcrossRenewRebindAndRestart(t *testing.T) {
	f := newFixture(t, 8, nil)
	c1, c2 := newClient(1), newClient(2)
	a1, a2 := f.bind(c1), f.bind(c2)
	if a1.Equal(a2) {
		t.Fatal("two clients got one address")
	}
	for _, step := range []struct {
		name string
		do   func()
		typ  dhcpv6.MessageType
		sid  bool
	}{
		{"renew", func() { f.now = f.now.Add(30 * time.Minute) }, dhcpv6.MessageTypeRenew, true},
		{"rebind", func() { f.now = f.now.Add(20 * time.Minute) }, dhcpv6.MessageTypeRebind, false},
		{"restart", f.restart, dhcpv6.MessageTypeRenew, true},
		// Even with the binding expired and the server restarted, a
		// returning client gets its entry back while nobody needs it.
		{"expired", func() { f.now = f.now.Add(24 * time.Hour); f.restart() }, dhcpv6.MessageTypeRequest, true},
	} {
		step.do()
		for _, c := range []*client{c2, c1} {
			rep := f.send(c.msg(step.typ, step.sid))
			got, valid, code := iaAddr(rep)
			if !got.Equal(c.addr) || code != iana.StatusSuccess || valid != 2*time.Hour {
				t.Errorf("%s: got %v (%v, valid %v), want %v", step.name, got, code, valid, c.addr)
			}
		}
	}
	// A fresh Solicit of a bound client advertises its own entry.
	adv := f.send(c1.msg(dhcpv6.MessageTypeSolicit, false))
	if got, _, _ := iaAddr(adv); !got.Equal(a1) {
		t.Errorf("Solicit of a bound client advertised %v, want %v", got, a1)
	}
}

func TestKillNineAfterReplyKeepsBinding(t *testing.T) {
	f := newFixture(t, 4, nil)
	c := newClient(1)
	a := f.bind(c)
	// No Close: the lease file must already hold the binding.
	data, err := os.ReadFile(f.cfg.LeaseFile)
	if err != nil || !strings.Contains(string(data), f.book.Entry(0).ULID().String()) {
		t.Fatalf("lease file after Reply: %s, %v", data, err)
	}
	f.restart()
	other := newClient(9)
	if got := f.bind(other); got.Equal(a) {
		t.Fatal("a new client got the address of a binding from before the crash")
	}
	rep := f.send(c.msg(dhcpv6.MessageTypeRenew, true))
	if got, _, _ := iaAddr(rep); !got.Equal(a) {
		t.Errorf("renew after crash got %v, want %v", got, a)
	}
}

func TestRenewWithoutBindingKeepsFreeAddressElseNoBinding(t *testing.T) {
	f := newFixture(t, 4, nil)
	c := newClient(1)
	c.sid = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: serverMAC}
	c.addr = f.ulid(3) // e.g. a lease file lost with the disk
	rep := f.send(c.msg(dhcpv6.MessageTypeRenew, true))
	if got, _, code := iaAddr(rep); !got.Equal(f.ulid(3)) || code != iana.StatusSuccess {
		t.Errorf("renew of a free book address: %v %v", got, code)
	}
	d := newClient(2)
	d.sid, d.addr = c.sid, f.ulid(3) // held by c now
	if _, _, code := iaAddr(f.send(d.msg(dhcpv6.MessageTypeRenew, true))); code != iana.StatusNoBinding {
		t.Errorf("renew of someone else's address: %v, want NoBinding", code)
	}
	d.addr = net.ParseIP("2001:db8:ffff::1")
	rep = f.send(d.msg(dhcpv6.MessageTypeRebind, false))
	ia := rep.Options.OneIANA()
	if a := ia.Options.OneAddress(); a == nil || !a.IPv6Addr.Equal(d.addr) || a.ValidLifetime != 0 {
		t.Errorf("rebind of a foreign address: %v, want it with lifetime 0", ia)
	}
	if st := f.srv.Stats(); st.Refused[dhcp6.RefusedNoBinding] != 2 {
		t.Errorf("no_binding refusals %d", st.Refused[dhcp6.RefusedNoBinding])
	}
}

func TestPoolExhaustionAnswersNoAddrsAvailLoggedOnce(t *testing.T) {
	f := newFixture(t, 4, func(c *dhcp6.Config) { c.FirstEntry, c.Entries = 1, 2 })
	f.bind(newClient(1))
	f.bind(newClient(2))
	late := newClient(3)
	for range 3 {
		adv := f.send(late.msg(dhcpv6.MessageTypeSolicit, false))
		if st := adv.Options.Status(); st == nil || st.StatusCode != iana.StatusNoAddrsAvail {
			t.Fatalf("Advertise status %v, want NoAddrsAvail", st)
		}
		if _, _, code := iaAddr(adv); code != iana.StatusNoAddrsAvail {
			t.Fatalf("IA status %v", code)
		}
	}
	if n := strings.Count(f.logs.String(), "pool exhausted"); n != 1 {
		t.Errorf("exhaustion logged %d times for one client, want 1", n)
	}
	if st := f.srv.Stats(); st.Refused[dhcp6.RefusedPoolExhausted] != 3 || st.Leases != 2 {
		t.Errorf("stats %+v", st)
	}
	// Once a binding expires, its entry goes to the waiting client.
	f.now = f.now.Add(3 * time.Hour)
	if got := f.bind(late); !got.Equal(f.ulid(1)) && !got.Equal(f.ulid(2)) {
		t.Errorf("after expiry got %v, outside the pool", got)
	}
}

func TestSolicitFloodIsRateLimited(t *testing.T) {
	f := newFixture(t, 64, func(c *dhcp6.Config) { c.NewBindingsBurst, c.NewBindingsPerSecond = 4, 1 })
	given := 0
	for i := range 40 {
		c := newClient(byte(100 + i))
		if a, _, _ := iaAddr(f.send(c.msg(dhcpv6.MessageTypeSolicit, false))); a != nil {
			given++
		}
	}
	if given != 4 {
		t.Errorf("a flood of 40 DUIDs got %d offers at once, want the burst 4", given)
	}
	st := f.srv.Stats()
	if st.Refused[dhcp6.RefusedRateLimited] != 36 {
		t.Errorf("rate_limited %d", st.Refused[dhcp6.RefusedRateLimited])
	}
	// Known clients are not limited: the first one renews its offer.
	f.now = f.now.Add(2 * time.Second)
	c := newClient(200)
	if a, _, _ := iaAddr(f.send(c.msg(dhcpv6.MessageTypeSolicit, false))); a == nil {
		t.Error("no token after 2 s at 1/s")
	}
	// Unrequested offers expire and return to the pool.
	f.now = f.now.Add(2 * time.Minute)
	if st := f.srv.Stats(); st.Offered != 0 {
		t.Errorf("%d offers live after 2 minutes", st.Offered)
	}
}

func TestReleaseFreesAndDeclineHoldsEntry(t *testing.T) {
	f := newFixture(t, 2, nil)
	c1, c2, c3 := newClient(1), newClient(2), newClient(3)
	a1, a2 := f.bind(c1), f.bind(c2)
	rep := f.send(c1.msg(dhcpv6.MessageTypeRelease, true))
	if st := rep.Options.Status(); st == nil || st.StatusCode != iana.StatusSuccess {
		t.Errorf("Release status %v", st)
	}
	if got := f.bind(c3); !got.Equal(a1) {
		t.Errorf("after Release the next client got %v, want %v", got, a1)
	}
	f.send(c2.msg(dhcpv6.MessageTypeDecline, true))
	if l := f.srv.Leases(); l[1].State != "declined" || l[1].DUID != "" {
		t.Errorf("after Decline: %+v", l[1])
	}
	if a, _, _ := iaAddr(f.send(c2.msg(dhcpv6.MessageTypeSolicit, false))); a != nil {
		t.Errorf("declined entry %v offered again within the hold", a2)
	}
	f.now = f.now.Add(2 * time.Hour)
	if got := f.bind(newClient(4)); !got.Equal(a2) {
		t.Errorf("after the hold got %v, want %v", got, a2)
	}
	// Release of an IA the server does not hold.
	stranger := newClient(7)
	stranger.sid = c1.sid
	rep = f.send(stranger.msg(dhcpv6.MessageTypeRelease, true))
	if _, _, code := iaAddr(rep); code != iana.StatusNoBinding {
		t.Errorf("release of unknown IA: %v", code)
	}
}

func TestConfirmOnLink(t *testing.T) {
	f := newFixture(t, 2, nil)
	c := newClient(1)
	for _, tc := range []struct {
		addr net.IP
		want iana.StatusCode
	}{
		{net.ParseIP("2001:db8:a:1::1234"), iana.StatusSuccess},
		{net.ParseIP("2001:db8:b:1::1234"), iana.StatusNotOnLink},
	} {
		c.addr = tc.addr
		rep := f.send(c.msg(dhcpv6.MessageTypeConfirm, false))
		if st := rep.Options.Status(); st == nil || st.StatusCode != tc.want {
			t.Errorf("Confirm %v: %v, want %v", tc.addr, st, tc.want)
		}
	}
	c.addr = nil
	if rep := f.send(c.msg(dhcpv6.MessageTypeConfirm, false)); rep != nil {
		t.Errorf("Confirm without addresses answered: %v", rep)
	}
}

func TestInformationRequestAndRapidCommit(t *testing.T) {
	f := newFixture(t, 2, func(c *dhcp6.Config) { c.RapidCommit = true })
	m, _ := dhcpv6.NewMessage()
	m.MessageType = dhcpv6.MessageTypeInformationRequest
	rep := f.send(m)
	if rep == nil || rep.Options.OneIANA() != nil || len(rep.Options.DNS()) != 1 {
		t.Fatalf("Information-request reply %v", rep)
	}
	c := newClient(1)
	rep = f.send(c.msg(dhcpv6.MessageTypeSolicit, false, dhcpv6.WithRapidCommit))
	if rep.MessageType != dhcpv6.MessageTypeReply || rep.GetOneOption(dhcpv6.OptionRapidCommit) == nil {
		t.Fatalf("rapid commit answered %v", rep.MessageType)
	}
	if l := f.srv.Leases(); len(l) != 1 || l[0].State != "bound" {
		t.Errorf("after rapid commit: %+v", l)
	}
	// Without rapid_commit the server advertises.
	f.cfg.RapidCommit = false
	f.restart()
	if rep := f.send(newClient(2).msg(dhcpv6.MessageTypeSolicit, false, dhcpv6.WithRapidCommit)); rep.MessageType != dhcpv6.MessageTypeAdvertise {
		t.Errorf("rapid commit off answered %v", rep.MessageType)
	}
}

func TestMalformedDroppedAndCountedByReason(t *testing.T) {
	f := newFixture(t, 2, nil)
	c := newClient(1)
	noCID, _ := dhcpv6.NewMessage()
	noCID.MessageType = dhcpv6.MessageTypeSolicit
	wrongSID := c.msg(dhcpv6.MessageTypeRequest, false, dhcpv6.WithServerID(newClient(9).duid))
	relay, _ := dhcpv6.EncapsulateRelay(c.msg(dhcpv6.MessageTypeSolicit, false), dhcpv6.MessageTypeRelayForward, net.IPv6loopback, net.IPv6loopback)
	infoIA := c.msg(dhcpv6.MessageTypeInformationRequest, false)
	for _, tc := range []struct {
		name string
		in   []byte
		want dhcp6.DropReason
	}{
		{"short", []byte{1, 2}, dhcp6.DropMalformed},
		{"option overrun", []byte{1, 0, 0, 1, 0, 1, 0, 200, 0}, dhcp6.DropMalformed},
		{"relay", relay.ToBytes(), dhcp6.DropRelay},
		{"advertise", c.msg(dhcpv6.MessageTypeAdvertise, false).ToBytes(), dhcp6.DropNotFromClient},
		{"no client id", noCID.ToBytes(), dhcp6.DropClientID},
		{"request without server id", c.msg(dhcpv6.MessageTypeRequest, false).ToBytes(), dhcp6.DropServerID},
		{"request to another server", wrongSID.ToBytes(), dhcp6.DropServerID},
		{"solicit with server id", c.msg(dhcpv6.MessageTypeSolicit, false, dhcpv6.WithServerID(c.duid)).ToBytes(), dhcp6.DropServerID},
		{"information-request with IA", infoIA.ToBytes(), dhcp6.DropIAInInfoRequest},
	} {
		before := f.srv.Stats().Dropped[tc.want]
		if out := f.srv.Handle(tc.in); out != nil {
			t.Errorf("%s: answered", tc.name)
		}
		if got := f.srv.Stats().Dropped[tc.want] - before; got != 1 {
			t.Errorf("%s: %s counted %d times", tc.name, tc.want, got)
		}
	}
	if l := f.srv.Leases(); len(l) != 0 {
		t.Errorf("malformed input made bindings: %+v", l)
	}
}

func TestCorruptLeaseFileMovedAside(t *testing.T) {
	f := newFixture(t, 2, nil)
	if err := os.WriteFile(f.cfg.LeaseFile, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.restart()
	if _, err := os.Stat(f.cfg.LeaseFile + ".bad"); err != nil {
		t.Errorf("corrupt file not kept for the operator: %v", err)
	}
	f.bind(newClient(1))
}

func TestConfigValidateNamesKeys(t *testing.T) {
	c := dhcp6.DefaultConfig()
	c.Enabled, c.FirstEntry, c.ValidLifetime, c.DomainSearch = true, 300, time.Second, []string{"bad domain"}
	err := c.Validate("lan.dhcpv6", 256)
	for _, k := range []string{"lan.dhcpv6.first_entry", "lan.dhcpv6.valid_lifetime", "lan.dhcpv6.domain_search[0]"} {
		if err == nil || !strings.Contains(err.Error(), k+":") {
			t.Errorf("error %v does not name %s", err, k)
		}
	}
	d := dhcp6.DefaultConfig()
	if err := d.Validate("lan.dhcpv6", 256); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

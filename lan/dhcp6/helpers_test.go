package dhcp6_test

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/lan/dhcp6"
)

var sitePrefixes = []netip.Prefix{
	netip.MustParsePrefix("2001:db8:a:1::/64"),
	netip.MustParsePrefix("2001:db8:b:1::/64"),
}

var serverMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}

func testBook(t testing.TB, n int) *hba.Book {
	t.Helper()
	b, err := hba.NewBook([]byte("0123456789abcdef-dhcp6-test"), sitePrefixes, n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture is a server over a book of hosts entries with a fake clock.
type fixture struct {
	t    testing.TB
	book *hba.Book
	cfg  dhcp6.Config
	now  time.Time
	srv  *dhcp6.Server
	logs *bytes.Buffer
}

func newFixture(t testing.TB, hosts int, edit func(*dhcp6.Config)) *fixture {
	t.Helper()
	cfg := dhcp6.DefaultConfig()
	cfg.Enabled = true
	cfg.LeaseFile = filepath.Join(t.TempDir(), "leases.json")
	cfg.DNSServers = []netip.Addr{netip.MustParseAddr("2001:db8:a:1::53")}
	cfg.DomainSearch = []string{"site.example"}
	if edit != nil {
		edit(&cfg)
	}
	f := &fixture{t: t, book: testBook(t, hosts), cfg: cfg, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), logs: &bytes.Buffer{}}
	f.restart()
	return f
}

// restart builds a new server from the lease file, as after a crash: the
// old one is not closed.
func (f *fixture) restart() {
	f.t.Helper()
	srv, err := dhcp6.New(f.cfg, f.book, dhcp6.Options{
		HardwareAddr: serverMAC,
		Logger:       slog.New(slog.NewTextHandler(f.logs, nil)),
		Now:          func() time.Time { return f.now },
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.srv = srv
}

// client is one DHCPv6 client with one IA_NA.
type client struct {
	duid dhcpv6.DUID
	iaid [4]byte
	sid  dhcpv6.DUID // learnt from Advertise
	addr net.IP
}

func newClient(n byte) *client {
	return &client{
		duid: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{0x52, 0x54, 0, 0, 1, n}},
		iaid: [4]byte{0, 0, 0, n},
	}
}

// msg builds a client message of type typ with the client's Client ID, the
// server ID when withSID, and an IA_NA holding addr when set.
func (c *client) msg(typ dhcpv6.MessageType, withSID bool, mods ...dhcpv6.Modifier) *dhcpv6.Message {
	m, err := dhcpv6.NewMessage(dhcpv6.WithClientID(c.duid))
	if err != nil {
		panic(err)
	}
	m.MessageType = typ
	if withSID {
		m.AddOption(dhcpv6.OptServerID(c.sid))
	}
	ia := &dhcpv6.OptIANA{IaId: c.iaid}
	if c.addr != nil {
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: c.addr})
	}
	m.AddOption(ia)
	for _, mod := range mods {
		mod(m)
	}
	return m
}

// send hands m to the server and parses the answer (nil: no answer).
func (f *fixture) send(m *dhcpv6.Message) *dhcpv6.Message {
	f.t.Helper()
	out := f.srv.Handle(m.ToBytes())
	if out == nil {
		return nil
	}
	r, err := dhcpv6.MessageFromBytes(out)
	if err != nil {
		f.t.Fatalf("server sent unparsable bytes: %v", err)
	}
	if r.TransactionID != m.TransactionID {
		f.t.Fatalf("reply transaction %v, want %v", r.TransactionID, m.TransactionID)
	}
	return r
}

// iaAddr returns the first address of the first IA_NA and its valid
// lifetime, and the IA's status code.
func iaAddr(m *dhcpv6.Message) (net.IP, time.Duration, iana.StatusCode) {
	ia := m.Options.OneIANA()
	if ia == nil {
		return nil, 0, iana.StatusUnspecFail
	}
	code := iana.StatusSuccess
	if st := ia.Options.Status(); st != nil {
		code = st.StatusCode
	}
	a := ia.Options.OneAddress()
	if a == nil {
		return nil, 0, code
	}
	return a.IPv6Addr, a.ValidLifetime, code
}

// bind runs Solicit/Advertise/Request/Reply for c and returns the address.
func (f *fixture) bind(c *client) net.IP {
	f.t.Helper()
	adv := f.send(c.msg(dhcpv6.MessageTypeSolicit, false))
	if adv == nil || adv.MessageType != dhcpv6.MessageTypeAdvertise {
		f.t.Fatalf("Solicit answered with %v", adv)
	}
	c.sid = adv.Options.ServerID()
	a, _, _ := iaAddr(adv)
	if a == nil {
		f.t.Fatalf("Advertise without address: %v", adv)
	}
	c.addr = a
	rep := f.send(c.msg(dhcpv6.MessageTypeRequest, true))
	got, _, code := iaAddr(rep)
	if code != iana.StatusSuccess || !got.Equal(a) {
		f.t.Fatalf("Request got %v (%v), advertised %v", got, code, a)
	}
	return got
}

func (f *fixture) ulid(e int) net.IP { return net.IP(f.book.Entry(e).ULID().AsSlice()) }

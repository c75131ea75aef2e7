package gateway

import (
	"encoding/json"
	"net"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/lan/dhcp6"
	"github.com/shim6gw/shim6gw/lan/ra"
	"github.com/shim6gw/shim6gw/lan/slaac"
)

func testLANServices(t *testing.T) *LANServices {
	t.Helper()
	book, err := hba.NewBook([]byte("0123456789abcdef"), []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")}, 8)
	if err != nil {
		t.Fatal(err)
	}
	c := config.DefaultLANConfig()
	c.DHCPv6.Enabled, c.DHCPv6.Entries = true, 4
	c.DHCPv6.LeaseFile = filepath.Join(t.TempDir(), "leases.json")
	c.SLAAC.Prefix, c.SLAAC.FirstEntry = netip.MustParsePrefix("2001:db8:a:5::/64"), 4
	c.SLAAC.StateFile = filepath.Join(t.TempDir(), "slaac.json")
	c.RA.Enabled = true
	s := &LANServices{}
	if s.DHCPv6, err = dhcp6.New(c.DHCPv6, book, dhcp6.Options{HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if s.SLAAC, err = slaac.New(c.SLAAC, book, slaac.Options{}); err != nil {
		t.Fatal(err)
	}
	if s.RA, err = ra.New(c.RA, ra.Options{OnLink: book.Prefixes()[0], SLAAC: c.SLAAC.Prefix}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLANCollectorExportsEveryServiceAndLints(t *testing.T) {
	s := testLANServices(t)
	s.DHCPv6.Handle([]byte{1, 2, 3})                // malformed
	s.RA.Receive([]byte{133, 0}, netip.Addr{}, 255) // malformed
	c := s.Collector()
	if probs, err := testutil.CollectAndLint(c); err != nil || len(probs) > 0 {
		t.Errorf("lint: %v %v", err, probs)
	}
	want := `
# HELP shim6gw_dhcpv6_dropped_messages_total Messages dropped without answer, by reason.
# TYPE shim6gw_dhcpv6_dropped_messages_total counter
shim6gw_dhcpv6_dropped_messages_total{reason="client_id"} 0
shim6gw_dhcpv6_dropped_messages_total{reason="ia_in_information_request"} 0
shim6gw_dhcpv6_dropped_messages_total{reason="malformed"} 1
shim6gw_dhcpv6_dropped_messages_total{reason="no_addresses"} 0
shim6gw_dhcpv6_dropped_messages_total{reason="not_from_client"} 0
shim6gw_dhcpv6_dropped_messages_total{reason="relay"} 0
shim6gw_dhcpv6_dropped_messages_total{reason="server_id"} 0
# HELP shim6gw_dhcpv6_pool_size Book entries the DHCPv6 server hands out.
# TYPE shim6gw_dhcpv6_pool_size gauge
shim6gw_dhcpv6_pool_size 4
# HELP shim6gw_ra_dropped_messages_total RS and NS messages dropped, by reason.
# TYPE shim6gw_ra_dropped_messages_total counter
shim6gw_ra_dropped_messages_total{reason="code"} 0
shim6gw_ra_dropped_messages_total{reason="hop_limit"} 0
shim6gw_ra_dropped_messages_total{reason="malformed"} 1
shim6gw_ra_dropped_messages_total{reason="other_type"} 0
shim6gw_ra_dropped_messages_total{reason="source"} 0
shim6gw_ra_dropped_messages_total{reason="target"} 0
# HELP shim6gw_slaac_pool_size Book entries SLAAC translation maps to.
# TYPE shim6gw_slaac_pool_size gauge
shim6gw_slaac_pool_size 4
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "shim6gw_dhcpv6_dropped_messages_total", "shim6gw_dhcpv6_pool_size", "shim6gw_ra_dropped_messages_total", "shim6gw_slaac_pool_size"); err != nil {
		t.Error(err)
	}
	// Services that are off export nothing.
	if n := testutil.CollectAndCount((&LANServices{}).Collector()); n != 0 {
		t.Errorf("%d metrics with every service off", n)
	}
}

func TestLANDebugHandlerServesLeasesAndMappings(t *testing.T) {
	s := testLANServices(t)
	rec := httptest.NewRecorder()
	s.DebugHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/leases", nil))
	var d LANDebug
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || d.DHCPv6 == nil || d.SLAAC == nil {
		t.Errorf("body %s: %v", rec.Body, err)
	}
}

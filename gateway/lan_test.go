package gateway

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/lan"
)

func TestLANServicesValidateOverlapAndDependencies(t *testing.T) {
	ulid := netip.MustParsePrefix("2001:db8:a:1::/64")
	c := DefaultLANServicesConfig()
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
	c := DefaultLANServicesConfig()
	c.Interface = "s6gw-nolan0"
	c.RA.Enabled = true
	if _, err := StartLANServices(c, book, nil, nil); err == nil || !strings.Contains(err.Error(), "s6gw-nolan0") {
		t.Errorf("error %v, want one naming the interface", err)
	}
}

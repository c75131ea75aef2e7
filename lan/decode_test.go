package lan_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shim6gw/shim6gw/lan"
	"github.com/shim6gw/shim6gw/lan/dhcp6"
	"github.com/shim6gw/shim6gw/lan/ra"
	"github.com/shim6gw/shim6gw/lan/slaac"
)

func section(t *testing.T, doc, key string) *yaml.Node {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	t.Fatalf("no %s", key)
	return nil
}

func TestDecodeSectionsKeepDefaultsAndParseTypes(t *testing.T) {
	doc := `
dhcpv6:
  enabled: true
  first_entry: 16
  valid_lifetime: 3h
  dns_servers: [2001:db8:a:1::53]
  domain_search: [site.example]
ra:
  enabled: true
  interval: 30s
slaac:
  idle_timeout: 90m
`
	d := dhcp6.DefaultConfig()
	if err := lan.Decode(section(t, doc, "dhcpv6"), "lan.dhcpv6", &d); err != nil {
		t.Fatal(err)
	}
	if err := lan.Decode(section(t, "slaac:\n  prefix: 2001:db8:a:5::/64\n", "slaac"), "lan.slaac", new(slaac.Config)); err == nil {
		t.Error("lan.slaac.prefix accepted; the prefix is lan.slaac_prefix")
	}
	if !d.Enabled || d.FirstEntry != 16 || d.ValidLifetime != 3*time.Hour || d.PreferredLifetime != dhcp6.DefaultPreferredLifetime ||
		len(d.DNSServers) != 1 || d.DNSServers[0] != netip.MustParseAddr("2001:db8:a:1::53") || d.DomainSearch[0] != "site.example" {
		t.Errorf("dhcpv6 %+v", d)
	}
	r := ra.DefaultConfig()
	if err := lan.Decode(section(t, doc, "ra"), "lan.ra", &r); err != nil || r.Interval != 30*time.Second || !r.Managed {
		t.Errorf("ra %+v, %v", r, err)
	}
	s := slaac.DefaultConfig()
	if err := lan.Decode(section(t, doc, "slaac"), "lan.slaac", &s); err != nil || s.IdleTimeout != 90*time.Minute {
		t.Errorf("slaac %+v, %v", s, err)
	}
}

func TestDecodeNamesKeyAndLine(t *testing.T) {
	doc := `
dhcpv6:
  enabled: true
  lease_time: 1h
  valid_lifetime: soon
  dns_servers: [not-an-address]
  enabled: false
`
	d := dhcp6.DefaultConfig()
	err := lan.Decode(section(t, doc, "dhcpv6"), "lan.dhcpv6", &d)
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *lan.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is no FieldError", e)
		}
		got = append(got, fe.Key+"@"+string(rune('0'+fe.Line)))
	}
	want := "lan.dhcpv6.lease_time@4 lan.dhcpv6.valid_lifetime@5 lan.dhcpv6.dns_servers@6 lan.dhcpv6.enabled@7"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v\nwant %v\n(%v)", got, want, err)
	}
}

package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// lanSection follows goodConfig, whose last line is 20.
const lanSection = `  dhcpv6:
    enabled: true
    first_entry: 2
    entries: 6
    valid_lifetime: 2h
    dns_servers: [2001:db8:a:1::53]
  ra:
    enabled: true
  slaac_prefix: 2001:db8:a:5::/64
  slaac:
    first_entry: 8
    new_mappings_per_second: 0.5
`

func lanConfig(section string) string {
	return strings.Replace(goodConfig, "  interface: lan0\n", "  interface: lan0\n"+section, 1)
}

func TestLoadConfigLANServices(t *testing.T) {
	c, err := Load(writeConfig(t, lanConfig(lanSection)))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	l := c.LAN
	if !l.DHCPv6.Enabled || l.DHCPv6.FirstEntry != 2 || l.DHCPv6.Entries != 6 || l.DHCPv6.ValidLifetime != 2*time.Hour {
		t.Errorf("dhcpv6 = %+v", l.DHCPv6)
	}
	if want := []netip.Addr{netip.MustParseAddr("2001:db8:a:1::53")}; len(l.DHCPv6.DNSServers) != 1 || l.DHCPv6.DNSServers[0] != want[0] {
		t.Errorf("dns_servers = %v, want %v", l.DHCPv6.DNSServers, want)
	}
	if l.DHCPv6.PreferredLifetime != DefaultLANConfig().DHCPv6.PreferredLifetime {
		t.Errorf("preferred_lifetime %v lost its default", l.DHCPv6.PreferredLifetime)
	}
	if !l.RA.Enabled || l.RA.Interval != DefaultLANConfig().RA.Interval {
		t.Errorf("ra = %+v", l.RA)
	}
	if p := netip.MustParsePrefix("2001:db8:a:5::/64"); l.SLAACPrefix != p || l.SLAAC.Prefix != p || !l.SLAAC.Enabled() {
		t.Errorf("slaac prefix %v / %v, want %v in both", l.SLAACPrefix, l.SLAAC.Prefix, p)
	}
	if l.SLAAC.FirstEntry != 8 || l.SLAAC.NewMappingsPerSecond != 0.5 {
		t.Errorf("slaac = %+v", l.SLAAC)
	}
	if got := c.Line("lan.slaac.first_entry"); got != 13 {
		t.Errorf("Line(lan.slaac.first_entry) = %d, want 13", got)
	}
}

func TestLoadConfigLANServicesOffByDefault(t *testing.T) {
	c, err := Load(writeConfig(t, goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.LAN.DHCPv6.Enabled || c.LAN.RA.Enabled || c.LAN.SLAAC.Enabled() {
		t.Errorf("a service is on without being asked for: %+v", c.LAN)
	}
}

func TestLoadConfigLANServicesBad(t *testing.T) {
	tests := []struct {
		name, old, new, want string
		kind                 error
	}{
		{"unknown key", "    enabled: true\n    first_entry: 2", "    enabled: true\n    frist_entry: 2",
			`config: line 5: unknown key "lan.dhcpv6.frist_entry"`, ErrUnknownKey},
		{"bad duration", "valid_lifetime: 2h", "valid_lifetime: forever",
			`config: line 7: lan.dhcpv6.valid_lifetime: bad duration "forever" (want e.g. 4s, 500ms, 1m)`, ErrInvalid},
		{"bad number", "new_mappings_per_second: 0.5", "new_mappings_per_second: fast",
			`config: line 14: lan.slaac.new_mappings_per_second: bad number "fast"`, ErrInvalid},
		{"entry outside the book", "first_entry: 2", "first_entry: 16",
			`config: line 5: lan.dhcpv6.first_entry: 16 is not an entry of the book (0..15, hba.hosts)`, ErrInvalid},
		{"pools overlap", "first_entry: 8", "first_entry: 4",
			`config: line 13: lan.slaac.first_entry: entries 4..15 overlap the DHCPv6 pool 2..7: one entry would go to two hosts`, ErrInvalid},
		{"slaac without ra", "  ra:\n    enabled: true\n", "",
			`config: line 9: lan.slaac_prefix: needs lan.ra.enabled (hosts learn the prefix from the gateway's RAs)`, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := lanConfig(lanSection)
			if !strings.Contains(text, tt.old) {
				t.Fatalf("case does not apply: %q not in config", tt.old)
			}
			_, err := Load(writeConfig(t, strings.Replace(text, tt.old, tt.new, 1)))
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(%v) = false", tt.kind)
			}
		})
	}
}

func TestPlanReloadLANServicesNeedRestart(t *testing.T) {
	a, err := Load(writeConfig(t, lanConfig(lanSection)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(writeConfig(t, lanConfig(strings.Replace(lanSection, "entries: 6", "entries: 5", 1))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PlanReload(b); !errors.Is(err, ErrNeedsRestart) || !strings.Contains(err.Error(), "lan.dhcpv6: changed, needs a restart") {
		t.Errorf("PlanReload = %v, want lan.dhcpv6 needs a restart", err)
	}
	if _, err := a.PlanReload(a); err != nil {
		t.Errorf("unchanged: %v", err)
	}
}

package ra

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/shim6gw/shim6gw/lan"
)

// Defaults (RFC 4861 §6.2.1, radvd's where the RFC leaves a choice).
const (
	DefaultInterval          = 200 * time.Second
	DefaultRouterLifetime    = 30 * time.Minute
	DefaultPrefixValid       = 24 * time.Hour
	DefaultPrefixPreferred   = 4 * time.Hour
	MaxRouterLifetime        = 9000 * time.Second
	minInterval, maxInterval = 4 * time.Second, 1800 * time.Second
)

// Config is the `lan.ra:` section.
type Config struct {
	Enabled bool `yaml:"enabled"`
	// Interval is MaxRtrAdvInterval; RAs go out at a random time
	// between 0.75 and 1 times it (RFC 4861 §6.2.4).
	Interval time.Duration `yaml:"interval"`
	// RouterLifetime tells hosts how long the gateway is their default
	// router (0: never, the gateway only hands out prefixes).
	RouterLifetime time.Duration `yaml:"router_lifetime"`
	// Preference of the gateway as default router (RFC 4191 §2.2):
	// low, medium or high.
	Preference string `yaml:"preference"`
	// MTU option (0: none).
	MTU int `yaml:"mtu"`
	// Managed and Other are the M and O flags: use DHCPv6 for addresses
	// and for other configuration (RFC 4861 §4.2).
	Managed bool `yaml:"managed"`
	Other   bool `yaml:"other"`
	// PrefixValidLifetime and PrefixPreferredLifetime of the prefixes
	// advertised (RFC 4861 §4.6.2).
	PrefixValidLifetime     time.Duration `yaml:"prefix_valid_lifetime"`
	PrefixPreferredLifetime time.Duration `yaml:"prefix_preferred_lifetime"`
	// DNSServers (RDNSS) and DomainSearch (DNSSL), RFC 8106, with
	// lifetime 3 × Interval (§5.1).
	DNSServers   []netip.Addr `yaml:"dns_servers"`
	DomainSearch []string     `yaml:"domain_search"`
}

// DefaultConfig returns what a `lan.ra:` section starts from.
func DefaultConfig() Config {
	return Config{
		Interval:                DefaultInterval,
		RouterLifetime:          DefaultRouterLifetime,
		Preference:              "medium",
		Managed:                 true,
		Other:                   true,
		PrefixValidLifetime:     DefaultPrefixValid,
		PrefixPreferredLifetime: DefaultPrefixPreferred,
	}
}

// Validate checks c; keys are reported under prefix (e.g. "lan.ra").
func (c *Config) Validate(prefix string) error {
	p := lan.Problems{Prefix: prefix}
	bad := p.Add
	if c.Interval < minInterval || c.Interval > maxInterval {
		bad("interval", "%v is not in %v..%v (RFC 4861 §6.2.1)", c.Interval, minInterval, maxInterval)
	}
	if c.RouterLifetime != 0 && (c.RouterLifetime < c.Interval || c.RouterLifetime > MaxRouterLifetime) {
		bad("router_lifetime", "%v is not 0 or in interval..%v", c.RouterLifetime, MaxRouterLifetime)
	}
	if _, ok := preferences[c.Preference]; !ok {
		bad("preference", "%q is not low, medium or high", c.Preference)
	}
	if c.MTU != 0 && (c.MTU < 1280 || c.MTU > 65535) {
		bad("mtu", "%d is not 0 or in 1280..65535", c.MTU)
	}
	if c.PrefixValidLifetime < c.Interval {
		bad("prefix_valid_lifetime", "%v is shorter than the interval", c.PrefixValidLifetime)
	}
	if c.PrefixPreferredLifetime > c.PrefixValidLifetime {
		bad("prefix_preferred_lifetime", "%v is longer than prefix_valid_lifetime", c.PrefixPreferredLifetime)
	}
	for i, a := range c.DNSServers {
		if !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
			bad(fmt.Sprintf("dns_servers[%d]", i), "%v is not an IPv6 unicast address", a)
		}
	}
	for i, d := range c.DomainSearch {
		if d == "" || len(d) > 253 {
			bad(fmt.Sprintf("domain_search[%d]", i), "%q is not a domain name", d)
		}
	}
	return p.Err()
}

package dhcp6

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/shim6gw/shim6gw/lan"
)

// Defaults for keys the configuration leaves out (see DefaultConfig).
const (
	DefaultPreferredLifetime    = time.Hour
	DefaultValidLifetime        = 2 * time.Hour
	DefaultNewBindingsPerSecond = 2
	DefaultNewBindingsBurst     = 32
	DefaultPreference           = 255
	DefaultLeaseFile            = "/var/lib/shim6gw/dhcpv6-leases.json"
	// DefaultDeclineHold is how long an entry a client declined (RFC 8415
	// §18.3.8: someone else answers DAD for it) stays out of the pool.
	DefaultDeclineHold = time.Hour
)

// Config is the `lan.dhcpv6:` section. Lifetimes are Go durations in YAML
// ("1h", "90m").
type Config struct {
	Enabled bool `yaml:"enabled"`
	// FirstEntry and Entries choose the book entries the server hands out:
	// FirstEntry .. FirstEntry+Entries-1; Entries 0 means up to the end of
	// the book. Entries below FirstEntry stay free for static hosts.
	FirstEntry int `yaml:"first_entry"`
	Entries    int `yaml:"entries"`
	// PreferredLifetime and ValidLifetime of the address (RFC 8415 §21.6).
	PreferredLifetime time.Duration `yaml:"preferred_lifetime"`
	ValidLifetime     time.Duration `yaml:"valid_lifetime"`
	// RenewTime (T1) and RebindTime (T2); 0 means 0.5 and 0.8 times the
	// preferred lifetime (RFC 8415 §21.4).
	RenewTime  time.Duration `yaml:"renew_time"`
	RebindTime time.Duration `yaml:"rebind_time"`
	// DNSServers (RFC 3646) and DomainSearch are sent in every reply.
	DNSServers   []netip.Addr `yaml:"dns_servers"`
	DomainSearch []string     `yaml:"domain_search"`
	// RapidCommit lets a Solicit with Rapid Commit bind at once (two
	// messages instead of four, RFC 8415 §18.3.1).
	RapidCommit bool `yaml:"rapid_commit"`
	// Preference is sent in Advertise; 255 makes clients request at once.
	Preference int `yaml:"preference"`
	// NewBindingsPerSecond and NewBindingsBurst rate-limit the bindings
	// made for clients the server does not know yet (token bucket).
	NewBindingsPerSecond float64 `yaml:"new_bindings_per_second"`
	NewBindingsBurst     int     `yaml:"new_bindings_burst"`
	// LeaseFile holds the bindings across restarts.
	LeaseFile string `yaml:"lease_file"`
	// DeclineHold keeps a declined entry out of the pool this long.
	DeclineHold time.Duration `yaml:"decline_hold"`
}

// DefaultConfig returns the configuration a `lan.dhcpv6:` section starts
// from before its keys are decoded over it.
func DefaultConfig() Config {
	return Config{
		PreferredLifetime:    DefaultPreferredLifetime,
		ValidLifetime:        DefaultValidLifetime,
		Preference:           DefaultPreference,
		NewBindingsPerSecond: DefaultNewBindingsPerSecond,
		NewBindingsBurst:     DefaultNewBindingsBurst,
		LeaseFile:            DefaultLeaseFile,
		DeclineHold:          DefaultDeclineHold,
	}
}

// Validate checks c for a book of bookLen entries. Keys are reported under
// prefix (e.g. "lan.dhcpv6"); the result joins one *FieldError per problem.
func (c *Config) Validate(prefix string, bookLen int) error {
	p := lan.Problems{Prefix: prefix}
	bad := p.Add
	if c.FirstEntry < 0 || c.FirstEntry >= bookLen {
		bad("first_entry", "%d is not an entry of the book (0..%d, hba.hosts)", c.FirstEntry, bookLen-1)
	} else if c.Entries < 0 || c.FirstEntry+c.Entries > bookLen {
		bad("entries", "%d entries from %d run past the book's %d (hba.hosts)", c.Entries, c.FirstEntry, bookLen)
	}
	if c.PreferredLifetime < time.Minute || c.PreferredLifetime > 1<<32*time.Second {
		bad("preferred_lifetime", "%v is not in 1m..136y", c.PreferredLifetime)
	}
	if c.ValidLifetime < c.PreferredLifetime || c.ValidLifetime > 1<<32*time.Second {
		bad("valid_lifetime", "%v is shorter than preferred_lifetime %v or too long", c.ValidLifetime, c.PreferredLifetime)
	}
	if c.RenewTime < 0 || c.RenewTime > c.PreferredLifetime {
		bad("renew_time", "%v is not in 0..preferred_lifetime", c.RenewTime)
	}
	if c.RebindTime < 0 || c.RebindTime > c.PreferredLifetime || c.RebindTime != 0 && c.RebindTime < c.RenewTime {
		bad("rebind_time", "%v is not in renew_time..preferred_lifetime", c.RebindTime)
	}
	for i, a := range c.DNSServers {
		if !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
			bad(fmt.Sprintf("dns_servers[%d]", i), "%v is not an IPv6 unicast address", a)
		}
	}
	for i, d := range c.DomainSearch {
		if err := checkDomain(d); err != nil {
			bad(fmt.Sprintf("domain_search[%d]", i), "%q: %v", d, err)
		}
	}
	if c.Preference < 0 || c.Preference > 255 {
		bad("preference", "%d is not in 0..255", c.Preference)
	}
	if c.NewBindingsPerSecond <= 0 || c.NewBindingsPerSecond > 1e6 {
		bad("new_bindings_per_second", "%v is not in (0, 1e6]", c.NewBindingsPerSecond)
	}
	if c.NewBindingsBurst < 1 || c.NewBindingsBurst > 1<<20 {
		bad("new_bindings_burst", "%d is not in 1..%d", c.NewBindingsBurst, 1<<20)
	}
	if c.Enabled && c.LeaseFile == "" {
		bad("lease_file", "empty; the bindings must survive a restart")
	}
	if c.DeclineHold < 0 {
		bad("decline_hold", "%v is negative", c.DeclineHold)
	}
	return p.Err()
}

// checkDomain accepts a DNS name as RFC 1035 §2.3.4 bounds it.
func checkDomain(d string) error {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return errors.New("not 1..253 characters")
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return errors.New("a label is not 1..63 characters")
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("character %q", r)
			}
		}
	}
	return nil
}

// t1t2 returns the renew and rebind times to send.
func (c *Config) t1t2() (time.Duration, time.Duration) {
	t1, t2 := c.RenewTime, c.RebindTime
	if t1 == 0 {
		t1 = c.PreferredLifetime / 2
	}
	if t2 == 0 {
		t2 = c.PreferredLifetime * 4 / 5
	}
	return t1, max(t1, t2)
}

// poolRange returns the first and one-past-last entry of the pool.
func (c *Config) poolRange(bookLen int) (int, int) {
	if c.Entries == 0 {
		return c.FirstEntry, bookLen
	}
	return c.FirstEntry, c.FirstEntry + c.Entries
}

package slaac

import (
	"net/netip"
	"time"

	"github.com/shim6gw/shim6gw/lan"
)

// Defaults for keys the configuration leaves out.
const (
	// DefaultIdleTimeout outlives a TCP session idle for hours (an SSH
	// session over lunch) while returning entries of RFC 8981 temporary
	// addresses, which hosts stop using after a day, to the pool.
	DefaultIdleTimeout          = 4 * time.Hour
	DefaultNewMappingsPerSecond = 2
	DefaultNewMappingsBurst     = 32
	DefaultStateFile            = "/var/lib/shim6gw/slaac-mappings.json"
)

// Config is the translation mode: Prefix is `lan.slaac_prefix`, the other
// keys sit under `lan.slaac:`.
type Config struct {
	// Prefix is `lan.slaac_prefix`, the /64 the gateway advertises with
	// A=1; the zero prefix turns translation off. It is decoded from its
	// own key, not from the `lan.slaac:` section.
	Prefix netip.Prefix `yaml:"-"`
	// FirstEntry and Entries choose the book entries hosts are mapped to
	// (Entries 0: to the end of the book); they must not overlap the
	// DHCPv6 pool or the entries of static hosts.
	FirstEntry int `yaml:"first_entry"`
	Entries    int `yaml:"entries"`
	// IdleTimeout returns a mapping's entry to the pool after this long
	// without a packet in either direction.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// NewMappingsPerSecond and NewMappingsBurst rate-limit new mappings
	// (token bucket), so that a host sending from many addresses cannot
	// take the pool faster than that.
	NewMappingsPerSecond float64 `yaml:"new_mappings_per_second"`
	NewMappingsBurst     int     `yaml:"new_mappings_burst"`
	// StateFile holds the mappings across restarts.
	StateFile string `yaml:"state_file"`
}

// DefaultConfig returns what the section starts from.
func DefaultConfig() Config {
	return Config{
		IdleTimeout:          DefaultIdleTimeout,
		NewMappingsPerSecond: DefaultNewMappingsPerSecond,
		NewMappingsBurst:     DefaultNewMappingsBurst,
		StateFile:            DefaultStateFile,
	}
}

// Enabled reports whether translation is on.
func (c *Config) Enabled() bool { return c.Prefix.IsValid() }

// Validate checks c for a book of bookLen entries whose ULIDs are under
// ulidPrefix. prefixKey names the prefix key ("lan.slaac_prefix"),
// section the others ("lan.slaac").
func (c *Config) Validate(prefixKey, section string, bookLen int, ulidPrefix netip.Prefix) error {
	p := lan.Problems{Prefix: ""}
	bad := p.Add
	if !c.Enabled() {
		return nil
	}
	switch p := c.Prefix; {
	case !p.Addr().Is6() || p.Addr().Is4In6():
		bad(prefixKey, "%v is not IPv6", p)
	case p.Bits() != 64:
		bad(prefixKey, "%v is not a /64 (SLAAC needs 64-bit interface identifiers, RFC 4862 §5.5.3)", p)
	case p.Masked() != p:
		bad(prefixKey, "%v has bits set after the first 64", p)
	case p.Overlaps(ulidPrefix):
		bad(prefixKey, "%v overlaps the ULID prefix %v: hosts would build addresses that are not in the book", p, ulidPrefix)
	}
	if c.FirstEntry < 0 || c.FirstEntry >= bookLen {
		bad(section+".first_entry", "%d is not an entry of the book (0..%d, hba.hosts)", c.FirstEntry, bookLen-1)
	} else if c.Entries < 0 || c.FirstEntry+c.Entries > bookLen {
		bad(section+".entries", "%d entries from %d run past the book's %d (hba.hosts)", c.Entries, c.FirstEntry, bookLen)
	}
	if c.IdleTimeout < time.Minute {
		bad(section+".idle_timeout", "%v is shorter than 1m", c.IdleTimeout)
	}
	if c.NewMappingsPerSecond <= 0 || c.NewMappingsPerSecond > 1e6 {
		bad(section+".new_mappings_per_second", "%v is not in (0, 1e6]", c.NewMappingsPerSecond)
	}
	if c.NewMappingsBurst < 1 || c.NewMappingsBurst > 1<<20 {
		bad(section+".new_mappings_burst", "%d is not in 1..%d", c.NewMappingsBurst, 1<<20)
	}
	if c.StateFile == "" {
		bad(section+".state_file", "empty; the mappings must survive a restart")
	}
	return p.Err()
}

// poolRange returns the first and one-past-last entry of the pool.
func (c *Config) poolRange(bookLen int) (int, int) {
	if c.Entries == 0 {
		return c.FirstEntry, bookLen
	}
	return c.FirstEntry, c.FirstEntry + c.Entries
}

package config

import (
	"errors"
	"net/netip"

	"github.com/shim6gw/shim6gw/lan"
	"github.com/shim6gw/shim6gw/lan/dhcp6"
	"github.com/shim6gw/shim6gw/lan/ra"
	"github.com/shim6gw/shim6gw/lan/slaac"
)

// DefaultLANConfig is what the sections start from before
// decoding: every service off, defaults in place.
func DefaultLANConfig() LANConfig {
	return LANConfig{DHCPv6: dhcp6.DefaultConfig(), RA: ra.DefaultConfig(), SLAAC: slaac.DefaultConfig()}
}

// Validate checks the three sections for a book of bookLen entries whose
// ULIDs are under ulidPrefix (uplinks[0].lan_prefix), and that the DHCPv6
// pool and the SLAAC pool share no entry. Errors are *lan.FieldError with
// full key paths.
func (c *LANConfig) Validate(bookLen int, ulidPrefix netip.Prefix) error {
	errs := []error{
		c.DHCPv6.Validate("lan.dhcpv6", bookLen),
		c.RA.Validate("lan.ra"),
		c.SLAAC.Validate("lan.slaac_prefix", "lan.slaac", bookLen, ulidPrefix),
	}
	if c.DHCPv6.Enabled && c.SLAAC.Enabled() {
		d0, d1 := entryRange(c.DHCPv6.FirstEntry, c.DHCPv6.Entries, bookLen)
		s0, s1 := entryRange(c.SLAAC.FirstEntry, c.SLAAC.Entries, bookLen)
		if d0 < s1 && s0 < d1 {
			p := lan.Problems{}
			p.Add("lan.slaac.first_entry", "entries %d..%d overlap the DHCPv6 pool %d..%d: one entry would go to two hosts", s0, s1-1, d0, d1-1)
			errs = append(errs, p.Err())
		}
	}
	if c.SLAAC.Enabled() && !c.RA.Enabled {
		p := lan.Problems{}
		p.Add("lan.slaac_prefix", "needs lan.ra.enabled (hosts learn the prefix from the gateway's RAs)")
		errs = append(errs, p.Err())
	}
	return errors.Join(errs...)
}

func entryRange(first, n, bookLen int) (int, int) {
	if n == 0 {
		return first, bookLen
	}
	return first, first + n
}

// ServicesOn reports whether any LAN service is enabled.
func (c *LANConfig) ServicesOn() bool { return c.DHCPv6.Enabled || c.RA.Enabled || c.SLAAC.Enabled() }

// validateLAN checks the LAN services against the book and reports
// each problem at its key's line.
func (d *decoder) validateLAN() {
	c := d.cfg
	if len(c.Uplinks) == 0 || !c.HBA.hostsValid() {
		return // the book's size is unknown; hba.hosts is reported
	}
	for _, err := range flatten(c.LAN.Validate(c.HBA.Hosts, c.Uplinks[0].LANPrefix)) {
		var fe *lan.FieldError
		if errors.As(err, &fe) {
			d.bad(fe.Key, "%s", fe.Msg)
		} else {
			d.fail(d.cfg.lineOf("lan"), "lan", ErrInvalid, "lan: %v", err)
		}
	}
}

// flatten undoes errors.Join, however deep.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

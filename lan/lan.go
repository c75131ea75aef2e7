// Package lan holds what the gateway's LAN services (dhcp6, ra, slaac)
// share: how their configuration sections report invalid keys.
package lan

import "errors"

// FieldError is one invalid key of a configuration section. Key is the
// full key path (e.g. "lan.dhcpv6.valid_lifetime"), so that the config
// loader can find the key's line.
type FieldError struct {
	Key, Msg string
	Line     int // 1-based line of the key when Decode found it; 0 otherwise
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// Problems collects the FieldErrors of one section.
type Problems struct {
	Prefix string // section key path; "" for keys given in full
	errs   []error
}

// Add records key (under Prefix) as invalid.
func (p *Problems) Add(key, format string, args ...any) {
	if p.Prefix != "" {
		key = p.Prefix + "." + key
	}
	p.add(key, 0, format, args...)
}

// Err joins the problems (nil when there are none).
func (p *Problems) Err() error { return errors.Join(p.errs...) }

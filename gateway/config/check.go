package config

import (
	"errors"
	"fmt"
	"sort"
)

// LinkInspector answers the read-only questions CheckSystem asks. The real
// one is netlink (NewNetlinkOps); tests use a map.
type LinkInspector interface {
	// LinkExists reports whether an interface of that name exists.
	LinkExists(name string) (bool, error)
}

// CheckSystem checks what the configuration expects of the system: the
// LAN interface exists. A missing uplink interface is not an error: the
// uplink is down until it appears (MissingUplinks names them). It only
// reads; `shim6gw check` and the start of `shim6gw run` call it. Errors
// are *Error (ErrSystem) naming the key and its line, joined.
func CheckSystem(c *Config, sys LinkInspector) error {
	var errs []*Error
	check := func(key, name string) {
		ok, err := sys.LinkExists(name)
		switch {
		case err != nil:
			errs = append(errs, &Error{Line: c.lineOf(key), Key: key, Kind: ErrSystem,
				Msg: fmt.Sprintf("%s: cannot look up interface %q: %v", key, name, err)})
		case !ok:
			errs = append(errs, &Error{Line: c.lineOf(key), Key: key, Kind: ErrSystem,
				Msg: fmt.Sprintf("%s: no interface %q on this system", key, name)})
		}
	}
	check("lan.interface", c.LAN.Interface)
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

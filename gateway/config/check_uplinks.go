package config

import "fmt"

// MissingUplinks names the uplinks whose interface does not exist (yet):
// the gateway starts with them down and brings them up when the interface
// appears, as PPPoE, LTE and VLAN interfaces do after boot. One line per
// uplink, naming its key and line.
func MissingUplinks(c *Config, sys LinkInspector) []string {
	var out []string
	for i, u := range c.Uplinks {
		key := fmt.Sprintf("uplinks[%d].interface", i)
		if ok, err := sys.LinkExists(u.Interface); err == nil && !ok {
			out = append(out, fmt.Sprintf("line %d: %s: no interface %q yet; uplink %s is down until it appears",
				c.lineOf(key), key, u.Interface, u.Name))
		}
	}
	return out
}

package lan

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decode decodes the mapping node n of section prefix (e.g. "lan.dhcpv6")
// into out, a pointer to one of the Config structs of dhcp6, ra or slaac,
// strictly: an unknown or repeated key is a *FieldError naming its full
// key path and line, and so is a value of the wrong type. Durations are Go
// durations ("90m"), addresses and prefixes in text form. Keys the node
// leaves out keep the values out already has (start from DefaultConfig).
func Decode(n *yaml.Node, prefix string, out any) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	var p Problems
	if n.Kind != yaml.MappingNode {
		p.add(prefix, n.Line, "expected a mapping")
		return p.Err()
	}
	known := map[string]bool{}
	t := reflect.TypeOf(out).Elem()
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			known[tag] = true
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := prefix + "." + k.Value
		switch {
		case !known[k.Value]:
			p.add(key, k.Line, "unknown key")
			continue
		case seen[k.Value]:
			p.add(key, k.Line, "duplicate key")
			continue
		}
		seen[k.Value] = true
		// Decode the one key into out, so an error names it.
		one := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}}
		if err := one.Decode(out); err != nil {
			msg := err.Error()
			if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
				msg = te.Errors[0]
			}
			p.add(key, v.Line, "%s", lineRE.ReplaceAllString(strings.TrimPrefix(msg, "yaml: "), ""))
		}
	}
	return p.Err()
}

// lineRE matches the line yaml.v3 puts in its messages (FieldError.Line
// holds it).
var lineRE = regexp.MustCompile(`^line \d+: `)

// add records a problem at a known line.
func (p *Problems) add(key string, line int, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Key: key, Line: line, Msg: fmt.Sprintf(format, args...)})
}

package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shim6gw/shim6gw/hba"
)

// LoadConfig reads, decodes and validates the file at path. It reads the
// HBA secret file but touches nothing else on the system; interfaces are
// checked by CheckSystem. A non-nil error joins one *ConfigError per
// problem (errors.Join), in line order; the caller exits with status 2.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fileError{err}
	}
	return ParseConfig(b, filepath.Dir(path), path)
}

// ParseConfig decodes and validates a configuration held in memory. dir
// resolves a relative hba.secret_file; name is recorded as Config.Path.
func ParseConfig(b []byte, dir, name string) (*Config, error) {
	d := &decoder{cfg: defaultConfig(), dir: dir}
	d.cfg.Path = name
	d.decode(b)
	if len(d.errs) == 0 {
		d.validate()
	}
	if len(d.errs) > 0 {
		return nil, d.joined()
	}
	return d.cfg, nil
}

func defaultConfig() *Config {
	return &Config{
		HBA:    HBAConfig{Hosts: DefaultHBAHosts},
		TUN:    TUNConfig{Name: DefaultTUNName, Backend: DefaultTUNBackend, Queues: 1, MTU: DefaultTUNMTU, TxQueueLen: DefaultTxQueueLen},
		Admin:  AdminConfig{Listen: DefaultAdminListen},
		Timers: DefaultTimers(),
		Policy: DefaultPolicy(),
		Limits: LimitsConfig{MaxContexts: DefaultMaxContexts},
		Log:    LogConfig{Format: "text", Level: "info"},
		Rules:  RulesConfig{PriorityBase: DefaultPriorityBase, TableBase: DefaultTableBase, Protocol: DefaultRouteProtocol},
		lines:  map[string]int{},
	}
}

type decoder struct {
	cfg  *Config
	dir  string
	errs []*ConfigError
}

func (d *decoder) fail(line int, key string, kind error, format string, args ...any) {
	d.errs = append(d.errs, &ConfigError{Line: line, Key: key, Kind: kind, Msg: fmt.Sprintf(format, args...)})
}

// bad records an invalid value of key: "key: message".
func (d *decoder) bad(key string, format string, args ...any) {
	d.fail(d.cfg.lineOf(key), key, ErrInvalid, "%s: %s", key, fmt.Sprintf(format, args...))
}

func (d *decoder) joined() error {
	sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// fieldFunc decodes the value node of one key.
type fieldFunc func(key string, v *yaml.Node)

// mapping walks a mapping node strictly: unknown and duplicate keys are
// errors, and every key's line is recorded under its path.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]fieldFunc) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, ErrInvalid, "%s: expected a mapping", display(path))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		f, ok := fields[k.Value]
		if !ok {
			d.fail(k.Line, key, ErrUnknownKey, "unknown key %q", key)
			continue
		}
		if seen[k.Value] {
			d.fail(k.Line, key, ErrInvalid, "duplicate key %q", key)
			continue
		}
		seen[k.Value] = true
		d.cfg.lines[key] = k.Line
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		f(key, v)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func display(path string) string {
	if path == "" {
		return "document"
	}
	return path
}

// scalar returns the text of a scalar node, or records an error.
func (d *decoder) scalar(key string, v *yaml.Node) (string, bool) {
	if v.Kind != yaml.ScalarNode {
		d.bad(key, "expected a single value")
		return "", false
	}
	return v.Value, true
}

func (d *decoder) str(p *string) fieldFunc {
	return func(key string, v *yaml.Node) {
		if s, ok := d.scalar(key, v); ok {
			*p = s
		}
	}
}

func (d *decoder) integer(p *int) fieldFunc {
	return func(key string, v *yaml.Node) {
		s, ok := d.scalar(key, v)
		if !ok {
			return
		}
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil || n > 1<<31-1 || n < -(1<<31) {
			d.bad(key, "bad integer %q", s)
			return
		}
		*p = int(n)
	}
}

func (d *decoder) boolean(p *bool) fieldFunc {
	return func(key string, v *yaml.Node) {
		s, ok := d.scalar(key, v)
		if !ok {
			return
		}
		switch s {
		case "true", "yes", "on":
			*p = true
		case "false", "no", "off":
			*p = false
		default:
			d.bad(key, "bad boolean %q", s)
		}
	}
}

func (d *decoder) duration(p *time.Duration) fieldFunc {
	return func(key string, v *yaml.Node) {
		s, ok := d.scalar(key, v)
		if !ok {
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.bad(key, "bad duration %q (want e.g. 4s, 500ms, 1m)", s)
			return
		}
		*p = dur
	}
}

func (d *decoder) prefix(p *netip.Prefix) fieldFunc {
	return func(key string, v *yaml.Node) {
		s, ok := d.scalar(key, v)
		if !ok {
			return
		}
		pf, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			d.bad(key, "bad prefix %q", s)
		case !pf.Addr().Is6() || pf.Addr().Is4In6():
			d.bad(key, "%s is not an IPv6 prefix", s)
		case pf.Masked() != pf:
			d.bad(key, "%s has bits set after the prefix length (did you mean %s?)", s, pf.Masked())
		default:
			*p = pf
		}
	}
}

func (d *decoder) addr(p *netip.Addr) fieldFunc {
	return func(key string, v *yaml.Node) {
		s, ok := d.scalar(key, v)
		if !ok {
			return
		}
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			d.bad(key, "bad address %q", s)
		case !a.Is6() || a.Is4In6():
			d.bad(key, "%s is not an IPv6 address", s)
		case !a.IsGlobalUnicast() && !a.IsLinkLocalUnicast():
			d.bad(key, "%s is not a unicast address", s)
		default:
			*p = a
		}
	}
}

func (d *decoder) decode(b []byte) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		line := 0
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = yamlLineRE.ReplaceAllString(msg, "")
		d.fail(line, "", ErrInvalid, "bad YAML: %s", msg)
		return
	}
	if len(doc.Content) == 0 || len(bytes.TrimSpace(b)) == 0 {
		d.fail(1, "", ErrInvalid, "empty configuration")
		return
	}
	root := doc.Content[0]
	c := d.cfg
	d.mapping(root, "", map[string]fieldFunc{
		"lan": func(key string, v *yaml.Node) {
			d.mapping(v, key, map[string]fieldFunc{"interface": d.str(&c.LAN.Interface)})
		},
		"uplinks": d.uplinks,
		"hba": func(key string, v *yaml.Node) {
			d.mapping(v, key, map[string]fieldFunc{
				"secret_file": d.str(&c.HBA.SecretFile),
				"hosts":       d.integer(&c.HBA.Hosts),
				"sec":         d.integer(&c.HBA.Sec),
			})
		},
		"tun": func(key string, v *yaml.Node) {
			d.mapping(v, key, map[string]fieldFunc{
				"name":       d.str(&c.TUN.Name),
				"backend":    d.str(&c.TUN.Backend),
				"queues":     d.integer(&c.TUN.Queues),
				"mtu":        d.integer(&c.TUN.MTU),
				"txqueuelen": d.integer(&c.TUN.TxQueueLen),
			})
		},
		"admin": func(key string, v *yaml.Node) {
			d.mapping(v, key, map[string]fieldFunc{"listen": d.str(&c.Admin.Listen)})
		},
		"timers": func(key string, v *yaml.Node) { d.mapping(v, key, d.timerFields(&c.Timers)) },
		"policy": func(key string, v *yaml.Node) {
			d.mapping(v, key, map[string]fieldFunc{
				"initiate_after_notices": d.integer(&c.Policy.InitiateAfterNotices),
				"initiate_after":         d.duration(&c.Policy.InitiateAfter),
				"window":                 d.duration(&c.Policy.Window),
				"max_pending":            d.integer(&c.Policy.MaxPending),
			})
		},
		"limits": func(key string, v *yaml.Node) {
			d.mapping(v, key, map[string]fieldFunc{"max_contexts": d.integer(&c.Limits.MaxContexts)})
		},
		"log": func(key string, v *yaml.Node) {
			d.mapping(v, key, map[string]fieldFunc{"format": d.str(&c.Log.Format), "level": d.str(&c.Log.Level)})
		},
		"rules": func(key string, v *yaml.Node) {
			d.mapping(v, key, map[string]fieldFunc{
				"priority_base": d.integer(&c.Rules.PriorityBase),
				"table_base":    d.integer(&c.Rules.TableBase),
				"protocol":      d.integer(&c.Rules.Protocol),
			})
		},
	})
	d.cfg.lines[""] = root.Line
}

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

// timerFields names every timer; the keys are the RFC constant names in
// snake case (RFC 5533 §14, RFC 5534).
func (d *decoder) timerFields(t *Timers) map[string]fieldFunc {
	return map[string]fieldFunc{
		"i1_timeout":             d.duration(&t.I1Timeout),
		"i1_retries_max":         d.integer(&t.I1RetriesMax),
		"i2_timeout":             d.duration(&t.I2Timeout),
		"i2_retries_max":         d.integer(&t.I2RetriesMax),
		"i2bis_timeout":          d.duration(&t.I2bisTimeout),
		"i2bis_retries_max":      d.integer(&t.I2bisRetriesMax),
		"validator_min_lifetime": d.duration(&t.ValidatorMinLifetime),
		"no_r1_holddown_time":    d.duration(&t.NoR1HolddownTime),
		"icmp_holddown_time":     d.duration(&t.ICMPHolddownTime),
		"update_timeout":         d.duration(&t.UpdateTimeout),
		"max_update_timeout":     d.duration(&t.MaxUpdateTimeout),
		"send_timeout":           d.duration(&t.SendTimeout),
		"keepalive_timeout":      d.duration(&t.KeepaliveTimeout),
		"initial_probe_timeout":  d.duration(&t.InitialProbeTimeout),
		"num_initial_probes":     d.integer(&t.NumInitialProbes),
		"max_probe_timeout":      d.duration(&t.MaxProbeTimeout),
		"idle_timeout":           d.duration(&t.IdleTimeout),
		"nonce_interval":         d.duration(&t.NonceInterval),
		"secret_rotation":        d.duration(&t.SecretRotation),
	}
}

func (d *decoder) uplinks(key string, v *yaml.Node) {
	if v.Kind != yaml.SequenceNode {
		d.bad(key, "expected a list of uplinks")
		return
	}
	for i, item := range v.Content {
		path := fmt.Sprintf("%s[%d]", key, i)
		d.cfg.lines[path] = item.Line
		u := UplinkConfig{MTU: DefaultUplinkMTU}
		d.mapping(item, path, map[string]fieldFunc{
			"name":                  d.str(&u.Name),
			"interface":             d.str(&u.Interface),
			"prefix":                d.prefix(&u.Prefix),
			"lan_prefix":            d.prefix(&u.LANPrefix),
			"gateway":               d.addr(&u.Gateway),
			"mtu":                   d.integer(&u.MTU),
			"accept_ra":             d.boolean(&u.AcceptRA),
			"require_default_route": d.boolean(&u.RequireDefaultRoute),
			"withdrawn":             d.boolean(&u.Withdrawn),
		})
		d.cfg.Uplinks = append(d.cfg.Uplinks, u)
	}
}

var (
	ifNameRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,15}$`)
	labelRE  = regexp.MustCompile(`^[a-z0-9_\-]{1,15}$`)
)

// required records a missing key, at the line of its parent mapping.
func (d *decoder) required(parent, key string) bool {
	full := join(parent, key)
	if _, ok := d.cfg.lines[full]; ok {
		return true
	}
	line, ok := d.cfg.lines[parent]
	if !ok {
		line = d.cfg.lines[""]
	}
	if parent == "" {
		d.fail(line, full, ErrInvalid, "missing key %q", full)
	} else {
		d.fail(line, full, ErrInvalid, "%s: missing key %q", parent, key)
	}
	return false
}

func (d *decoder) validate() {
	c := d.cfg
	if d.required("lan", "interface") && !ifNameRE.MatchString(c.LAN.Interface) {
		d.bad("lan.interface", "bad interface name %q", c.LAN.Interface)
	}
	d.validateUplinks()
	d.validateHBA()

	if !ifNameRE.MatchString(c.TUN.Name) {
		d.bad("tun.name", "bad interface name %q", c.TUN.Name)
	}
	switch c.TUN.Backend {
	case "offload", "wireguard", "water":
	default:
		d.bad("tun.backend", "unknown backend %q (want offload, wireguard or water)", c.TUN.Backend)
	}
	if c.TUN.TxQueueLen < 1 || c.TUN.TxQueueLen > MaxTxQueueLen {
		d.bad("tun.txqueuelen", "%d is not in 1..%d", c.TUN.TxQueueLen, MaxTxQueueLen)
	}
	if c.TUN.Queues < 1 || c.TUN.Queues > 64 {
		d.bad("tun.queues", "%d is not in 1..64", c.TUN.Queues)
	} else if c.TUN.Queues > 1 && c.TUN.Backend != "water" {
		d.bad("tun.queues", "%d queues need backend water", c.TUN.Queues)
	}
	if c.TUN.MTU < 1280 || c.TUN.MTU > 65535 {
		d.bad("tun.mtu", "%d is not in 1280..65535", c.TUN.MTU)
	}
	if host, port, err := net.SplitHostPort(c.Admin.Listen); err != nil {
		d.bad("admin.listen", "bad listen address %q (want host:port)", c.Admin.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		d.bad("admin.listen", "bad port %q", port)
	} else if _, err := netip.ParseAddr(strings.Trim(host, "[]")); host != "" && host != "localhost" && err != nil {
		d.bad("admin.listen", "bad host %q (want an IP address)", host)
	}
	d.validateTimers()
	p := c.Policy
	if p.InitiateAfterNotices < 1 {
		d.bad("policy.initiate_after_notices", "must be at least 1")
	}
	if p.InitiateAfter < 0 {
		d.bad("policy.initiate_after", "must not be negative")
	}
	if p.Window <= 0 {
		d.bad("policy.window", "must be positive")
	}
	if p.MaxPending < 1 {
		d.bad("policy.max_pending", "must be at least 1")
	}
	if c.Limits.MaxContexts < 1 {
		d.bad("limits.max_contexts", "must be at least 1")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		d.bad("log.format", "unknown format %q (want text or json)", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		d.bad("log.level", "unknown level %q (want debug, info, warn or error)", c.Log.Level)
	}
	d.validateRules()
}

func (d *decoder) validateUplinks() {
	c := d.cfg
	if !d.required("", "uplinks") {
		return
	}
	if len(c.Uplinks) < 2 {
		d.bad("uplinks", "need at least 2 uplinks, got %d", len(c.Uplinks))
	}
	if len(c.Uplinks) > MaxUplinks {
		d.bad("uplinks", "at most %d uplinks, got %d", MaxUplinks, len(c.Uplinks))
	}
	names, ifs := map[string]int{}, map[string]int{}
	live := 0
	for i, u := range c.Uplinks {
		if !u.Withdrawn {
			live++
		}
		p := fmt.Sprintf("uplinks[%d]", i)
		if d.required(p, "name") {
			if !labelRE.MatchString(u.Name) {
				d.bad(p+".name", "bad name %q (lower case letters, digits, _ and -, at most 15)", u.Name)
			} else if j, dup := names[u.Name]; dup {
				d.bad(p+".name", "%q is also the name of uplinks[%d]", u.Name, j)
			} else {
				names[u.Name] = i
			}
		}
		if d.required(p, "interface") {
			switch j, dup := ifs[u.Interface]; {
			case !ifNameRE.MatchString(u.Interface):
				d.bad(p+".interface", "bad interface name %q", u.Interface)
			case dup:
				d.bad(p+".interface", "%q is also the interface of uplinks[%d]", u.Interface, j)
			case u.Interface == c.LAN.Interface:
				d.bad(p+".interface", "%q is the LAN interface", u.Interface)
			default:
				ifs[u.Interface] = i
			}
		}
		hasPrefix := d.required(p, "prefix") && u.Prefix.IsValid()
		if hasPrefix && u.Prefix.Bits() > 64 {
			d.bad(p+".prefix", "%s is longer than /64", u.Prefix)
			hasPrefix = false
		}
		if hasPrefix {
			for j := 0; j < i; j++ {
				if o := c.Uplinks[j].Prefix; o.IsValid() && o.Overlaps(u.Prefix) {
					d.bad(p+".prefix", "%s overlaps uplinks[%d].prefix %s", u.Prefix, j, o)
				}
			}
		}
		if d.required(p, "lan_prefix") && u.LANPrefix.IsValid() {
			switch {
			case u.LANPrefix.Bits() != 64:
				d.bad(p+".lan_prefix", "%s is not a /64", u.LANPrefix)
			case hasPrefix && !u.Prefix.Contains(u.LANPrefix.Addr()):
				d.bad(p+".lan_prefix", "%s is not inside %s.prefix %s", u.LANPrefix, p, u.Prefix)
			}
		}
		if u.MTU < 1280 || u.MTU > 65535 {
			d.bad(p+".mtu", "%d is not in 1280..65535", u.MTU)
		}
	}
	if live == 0 && len(c.Uplinks) > 0 {
		// The hosts need a locator to reach their peers by.
		d.bad(fmt.Sprintf("uplinks[%d].withdrawn", len(c.Uplinks)-1), "every uplink is withdrawn, at least one must stay")
	}
}

func (d *decoder) validateHBA() {
	c := d.cfg
	if d.required("hba", "secret_file") {
		path := c.HBA.SecretFile
		if !filepath.IsAbs(path) && d.dir != "" {
			path = filepath.Join(d.dir, path)
		}
		b, err := os.ReadFile(path)
		// The same trimming as `shim6gw hba`, so the plan it prints is
		// the book the gateway derives.
		secret := hba.TrimSecret(b)
		switch {
		case err != nil:
			d.bad("hba.secret_file", "cannot read %q: %v", c.HBA.SecretFile, unwrapPathError(err))
		case len(secret) < MinSecretLen:
			d.bad("hba.secret_file", "%q holds %d bytes, need at least %d", c.HBA.SecretFile, len(secret), MinSecretLen)
		default:
			c.HBA.Secret = secret
		}
	}
	if c.HBA.Hosts < 1 || c.HBA.Hosts > 65536 {
		d.bad("hba.hosts", "%d is not in 1..65536", c.HBA.Hosts)
	}
	if c.HBA.Sec < 0 || c.HBA.Sec > hba.MaxGenerateSec {
		// RFC 5535 §6 defines generation for Sec 0..2 only.
		d.bad("hba.sec", "%d is not in 0..%d", c.HBA.Sec, hba.MaxGenerateSec)
	} else if c.HBA.Hosts >= 1 && c.HBA.Hosts <= 65536 {
		d.checkHBACost()
	}
}

// unwrapPathError drops the path that *fs.PathError repeats.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (d *decoder) validateTimers() {
	t := d.cfg.Timers
	pos := func(key string, v time.Duration) {
		if v <= 0 {
			d.bad("timers."+key, "must be positive")
		}
	}
	atLeast1 := func(key string, v int) {
		if v < 1 {
			d.bad("timers."+key, "must be at least 1")
		}
	}
	pos("i1_timeout", t.I1Timeout)
	atLeast1("i1_retries_max", t.I1RetriesMax)
	pos("i2_timeout", t.I2Timeout)
	atLeast1("i2_retries_max", t.I2RetriesMax)
	pos("i2bis_timeout", t.I2bisTimeout)
	atLeast1("i2bis_retries_max", t.I2bisRetriesMax)
	pos("validator_min_lifetime", t.ValidatorMinLifetime)
	pos("no_r1_holddown_time", t.NoR1HolddownTime)
	pos("icmp_holddown_time", t.ICMPHolddownTime)
	pos("update_timeout", t.UpdateTimeout)
	pos("max_update_timeout", t.MaxUpdateTimeout)
	pos("keepalive_timeout", t.KeepaliveTimeout)
	pos("initial_probe_timeout", t.InitialProbeTimeout)
	atLeast1("num_initial_probes", t.NumInitialProbes)
	pos("max_probe_timeout", t.MaxProbeTimeout)
	pos("idle_timeout", t.IdleTimeout)
	pos("nonce_interval", t.NonceInterval)
	pos("secret_rotation", t.SecretRotation)
	// RFC 5534 §5.3: the Keepalive Timeout option carries whole seconds
	// in 16 bits. A sub-second Send Timeout is advertised as 1 s
	// (shim6.Timers.KeepaliveOptionSeconds) and shim6gw peers pace by
	// their own keepalive_timeout too; below shim6.MinSendTimeout
	// needless explorations would be the rule.
	if t.SendTimeout < 100*time.Millisecond || t.SendTimeout > 65535*time.Second {
		d.bad("timers.send_timeout", "%s is not in 100ms..65535s", t.SendTimeout)
	}
	if t.KeepaliveTimeout > 0 && t.KeepaliveTimeout < 100*time.Millisecond {
		d.bad("timers.keepalive_timeout", "%s is shorter than 100ms", t.KeepaliveTimeout)
	}
	if t.UpdateTimeout > t.MaxUpdateTimeout && t.MaxUpdateTimeout > 0 {
		d.bad("timers.update_timeout", "%s is longer than max_update_timeout %s", t.UpdateTimeout, t.MaxUpdateTimeout)
	}
	if t.InitialProbeTimeout > t.MaxProbeTimeout && t.MaxProbeTimeout > 0 {
		d.bad("timers.initial_probe_timeout", "%s is longer than max_probe_timeout %s", t.InitialProbeTimeout, t.MaxProbeTimeout)
	}
	if t.SecretRotation < t.NonceInterval && t.SecretRotation > 0 {
		d.bad("timers.secret_rotation", "%s is shorter than nonce_interval %s", t.SecretRotation, t.NonceInterval)
	}
}

func (d *decoder) validateRules() {
	r := d.cfg.Rules
	// 32766 and 32767 are the kernel's main and default rules.
	if r.PriorityBase < 1 || r.PriorityBase+PriorityRange > 32766 {
		d.bad("rules.priority_base", "%d is not in 1..%d", r.PriorityBase, 32766-PriorityRange)
	}
	// The block [T, LastTable] is the gateway's: CleanupStale scans it.
	last := r.LastTable()
	switch {
	case r.TableBase < 1 || last > 1<<31-1:
		d.bad("rules.table_base", "%d is not in 1..%d", r.TableBase, 1<<31-1-(last-r.TableBase))
	case r.TableBase <= 255 && last >= 253:
		d.bad("rules.table_base", "tables %d..%d include the kernel's 253..255", r.TableBase, last)
	}
	// 0..4 are the kernel's own protocols (unspec, redirect, kernel, boot, static).
	if r.Protocol < 5 || r.Protocol > 255 {
		d.bad("rules.protocol", "%d is not in 5..255", r.Protocol)
	}
}

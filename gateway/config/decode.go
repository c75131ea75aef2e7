package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/shim6"
)

// Load reads, decodes and validates the file at path. It reads the
// HBA secret file but touches nothing else on the system; interfaces are
// checked by CheckSystem. A non-nil error joins one *Error per
// problem (errors.Join), in line order; the caller exits with status 2.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fileError{err}
	}
	return Parse(b, filepath.Dir(path), path)
}

// Parse decodes and validates a configuration held in memory. dir
// resolves a relative hba.secret_file; name is recorded as Config.Path.
func Parse(b []byte, dir, name string) (*Config, error) {
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
		LAN:       DefaultLANConfig(),
		HBA:       HBAConfig{Hosts: DefaultHBAHosts},
		TUN:       TUNConfig{Name: DefaultTUNName, Backend: DefaultTUNBackend, Queues: 1, MTU: DefaultTUNMTU, TxQueueLen: DefaultTxQueueLen},
		Admin:     AdminConfig{Listen: DefaultAdminListen},
		Dataplane: DataplaneConfig{Fastpath: FastpathAuto},
		Timers:    shim6.DefaultTimers(),
		Policy:    shim6.DefaultPolicy(),
		Limits:    DefaultLimits(),
		Log:       LogConfig{Format: "text", Level: "info"},
		Rules:     RulesConfig{PriorityBase: DefaultPriorityBase, TableBase: DefaultTableBase, Protocol: DefaultRouteProtocol},
		lines:     map[string]int{},
	}
}

type decoder struct {
	cfg  *Config
	dir  string
	errs []*Error
}

func (d *decoder) fail(line int, key string, kind error, format string, args ...any) {
	d.errs = append(d.errs, &Error{Line: line, Key: key, Kind: kind, Msg: fmt.Sprintf(format, args...)})
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

// decode reads b into d.cfg: yaml.v3 parses it into a node tree, one pass
// over the tree (check) records every key's line and reports unknown and
// duplicate keys and malformed values by key path, and then yaml.v3
// decodes it into the tagged structs.
func (d *decoder) decode(b []byte) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		line, msg := yamlErrorLine(err.Error())
		d.fail(line, "", ErrInvalid, "bad YAML: %s", msg)
		return
	}
	if len(doc.Content) == 0 || len(bytes.TrimSpace(b)) == 0 {
		d.fail(1, "", ErrInvalid, "empty configuration")
		return
	}
	root := doc.Content[0]
	d.cfg.lines[""] = root.Line
	d.check(root, "", reflect.TypeFor[Config]())
	if len(d.errs) > 0 {
		return
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(d.cfg); err != nil {
		// check lets through nothing yaml.v3 rejects; keep its words.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			te = &yaml.TypeError{Errors: []string{err.Error()}}
		}
		for _, e := range te.Errors {
			line, msg := yamlErrorLine(e)
			d.fail(line, "", ErrInvalid, "bad YAML: %s", msg)
		}
		return
	}
	d.cfg.LAN.SLAAC.Prefix = d.cfg.LAN.SLAACPrefix
	for i := range d.cfg.Uplinks {
		if d.cfg.Line(fmt.Sprintf("uplinks[%d].mtu", i)) == 0 {
			d.cfg.Uplinks[i].MTU = DefaultUplinkMTU
		}
	}
}

// yamlErrorLine splits "yaml: line N: msg" (or "line N: msg") into N and
// msg; N is 0 when the message names no line.
func yamlErrorLine(s string) (int, string) {
	s = strings.TrimPrefix(s, "yaml: ")
	var line int
	if _, err := fmt.Sscanf(s, "line %d:", &line); err == nil {
		_, s, _ = strings.Cut(s, ": ")
	}
	return line, s
}

// leafChecks validate one scalar value per Go type and return the
// problem ("" if none). Each first asks yaml.v3 to decode the node into
// that type, so check accepts exactly what Decode will.
var leafChecks = map[reflect.Type]func(n *yaml.Node) string{
	reflect.TypeFor[string](): func(n *yaml.Node) string { return "" },
	reflect.TypeFor[int](): func(n *yaml.Node) string {
		var v int32
		if n.Decode(&v) != nil {
			return fmt.Sprintf("bad integer %q", n.Value)
		}
		return ""
	},
	reflect.TypeFor[float64](): func(n *yaml.Node) string {
		var v float64
		if n.Decode(&v) != nil {
			return fmt.Sprintf("bad number %q", n.Value)
		}
		return ""
	},
	reflect.TypeFor[bool](): func(n *yaml.Node) string {
		var v bool
		if n.Decode(&v) != nil {
			return fmt.Sprintf("bad boolean %q", n.Value)
		}
		return ""
	},
	reflect.TypeFor[time.Duration](): func(n *yaml.Node) string {
		var v time.Duration
		if n.Decode(&v) != nil {
			return fmt.Sprintf("bad duration %q (want e.g. 4s, 500ms, 1m)", n.Value)
		}
		return ""
	},
	reflect.TypeFor[netip.Prefix](): func(n *yaml.Node) string {
		var p netip.Prefix
		switch err := n.Decode(&p); {
		case err != nil:
			return fmt.Sprintf("bad prefix %q", n.Value)
		case !p.Addr().Is6() || p.Addr().Is4In6():
			return fmt.Sprintf("%s is not an IPv6 prefix", n.Value)
		case p.Masked() != p:
			return fmt.Sprintf("%s has bits set after the prefix length (did you mean %s?)", n.Value, p.Masked())
		}
		return ""
	},
	reflect.TypeFor[netip.Addr](): func(n *yaml.Node) string {
		var a netip.Addr
		switch err := n.Decode(&a); {
		case err != nil:
			return fmt.Sprintf("bad address %q", n.Value)
		case !a.Is6() || a.Is4In6():
			return fmt.Sprintf("%s is not an IPv6 address", n.Value)
		case !a.IsGlobalUnicast() && !a.IsLinkLocalUnicast():
			return fmt.Sprintf("%s is not a unicast address", n.Value)
		}
		return ""
	},
}

// check walks node n, the value of key path, against Go type t (a struct
// with yaml tags, a slice of them, or a leaf of leafChecks). It records
// the line of every key and reports what Decode would reject, naming the
// key path. The walk follows t, so it ends however the aliases nest.
func (d *decoder) check(n *yaml.Node, path string, t reflect.Type) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if leaf, ok := leafChecks[t]; ok {
		if n.Kind != yaml.ScalarNode {
			d.bad(path, "expected a single value")
		} else if msg := leaf(n); msg != "" {
			d.bad(path, "%s", msg)
		}
		return
	}
	switch t.Kind() {
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.bad(path, "expected a list of %s", path[strings.LastIndex(path, ".")+1:])
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.cfg.lines[p] = item.Line
			d.check(item, p, t.Elem())
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, path, ErrInvalid, "%s: expected a mapping", display(path))
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			f, ok := fieldByTag(t, k.Value)
			switch {
			case !ok:
				d.fail(k.Line, key, ErrUnknownKey, "unknown key %q", key)
			case seen[k.Value]:
				d.fail(k.Line, key, ErrInvalid, "duplicate key %q", key)
			default:
				seen[k.Value] = true
				d.cfg.lines[key] = k.Line
				d.check(v, key, f.Type)
			}
		}
	default:
		panic("config: no check for " + t.String())
	}
}

// fieldByTag finds the field of struct type t whose yaml tag is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); f.IsExported() && tag == name && tag != "" && tag != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
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
	d.validateLAN()

	if !ifNameRE.MatchString(c.TUN.Name) {
		d.bad("tun.name", "bad interface name %q", c.TUN.Name)
	}
	switch c.Dataplane.Fastpath {
	case FastpathAuto, FastpathEBPF, FastpathOff:
	default:
		d.bad("dataplane.fastpath", "unknown value %q (want auto, ebpf or off)", c.Dataplane.Fastpath)
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
	for _, l := range c.Limits.limitFields() {
		if l.v < 1 {
			d.bad("limits."+l.key, "must be at least 1")
		}
	}
	if k := c.Limits.MaxPeerKeyBits; k >= 1 && (k < 1024 || k > 16384) {
		// RFC 3972 §4: at least 1024 bits; above 16384 one check costs
		// tens of milliseconds of the control loop.
		d.bad("limits.max_peer_key_bits", "%d is not in 1024..16384", k)
	}
	if l := c.Limits; l.SignatureChecksPerSourcePerSecond > l.SignatureChecksPerSecond && l.SignatureChecksPerSecond >= 1 {
		d.bad("limits.signature_checks_per_source_per_second", "%d is more than limits.signature_checks_per_second %d",
			l.SignatureChecksPerSourcePerSecond, l.SignatureChecksPerSecond)
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
	if !c.HBA.hostsValid() {
		d.bad("hba.hosts", "%d is not in 1..%d", c.HBA.Hosts, MaxHosts)
	}
	if c.HBA.Sec < 0 || c.HBA.Sec > hba.MaxGenerateSec {
		// RFC 5535 §6 defines generation for Sec 0..2 only.
		d.bad("hba.sec", "%d is not in 0..%d", c.HBA.Sec, hba.MaxGenerateSec)
	} else if c.HBA.hostsValid() {
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

// AdminListen returns admin.listen of the file at path (the default when
// the file leaves it out) without validating the rest or reading the HBA
// secret, so that `shim6gw status` finds the gateway as any user.
func AdminListen(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	var f struct {
		Admin AdminConfig `yaml:"admin"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		line, msg := yamlErrorLine(err.Error())
		return "", &Error{Line: line, Kind: ErrInvalid, Msg: "bad YAML: " + msg}
	}
	if f.Admin.Listen == "" {
		return DefaultAdminListen, nil
	}
	return f.Admin.Listen, nil
}

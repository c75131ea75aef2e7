package config

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"

	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/lan/dhcp6"
	"github.com/shim6gw/shim6gw/lan/ra"
	"github.com/shim6gw/shim6gw/lan/slaac"
	"github.com/shim6gw/shim6gw/shim6"
)

// Sentinel errors; every *Error matches one of them with errors.Is.
var (
	// ErrUnknownKey: a key the schema does not have (decoding is strict).
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrInvalid: a value that does not parse or breaks a rule.
	ErrInvalid = errors.New("config: invalid value")
	// ErrSystem: the configuration names something the system lacks
	// (CheckSystem).
	ErrSystem = errors.New("config: system check failed")
)

// Error is one problem in a configuration file. It names the key
// path (e.g. "uplinks[1].prefix") and the line of that key.
type Error struct {
	Line int    // 1-based line of the key (or of its parent when missing)
	Key  string // key path; empty for the document itself
	Msg  string // human message, already naming the key
	Kind error  // ErrUnknownKey, ErrInvalid or ErrSystem
}

func (e *Error) Error() string { return fmt.Sprintf("config: line %d: %s", e.Line, e.Msg) }

// Unwrap lets errors.Is match the error kind.
func (e *Error) Unwrap() error { return e.Kind }

// Defaults for keys the file leaves out.
const (
	DefaultTUNName = "shim6gw0"
	// DefaultTUNBackend: the offload backend moved 0.57 (1 stream) and
	// 0.77 (4 streams) of the kernel's forwarding rate through the TUN,
	// the wireguard one 0.46 and 0.39 (docs/benchmarks.md).
	DefaultTUNBackend = "offload"
	// DefaultTxQueueLen is the TUN's transmit queue (packets the kernel
	// holds for the gateway to read); beyond it the kernel drops and
	// counts tx_dropped (shim6gw_tun_dropped_packets_total).
	DefaultTxQueueLen = 1000
	// MaxTxQueueLen bounds tun.txqueuelen (packets).
	MaxTxQueueLen       = 1 << 20
	DefaultTUNMTU       = 1500
	DefaultUplinkMTU    = 1500
	DefaultAdminListen  = "127.0.0.1:9146"
	DefaultHBAHosts     = 256
	DefaultPriorityBase = 15000
	DefaultTableBase    = 15000
	// DefaultRouteProtocol tags every rule and route the gateway installs
	// (rtnetlink protocol number; 154 is not assigned in
	// /etc/iproute2/rt_protos). Named "shim6gw" in docs/operations.
	DefaultRouteProtocol = 154
	// PriorityRange is how many rule priorities from priority_base belong
	// to the gateway: a stale rule anywhere in it is removed at start.
	PriorityRange = 100
	// MaxUplinks bounds the uplinks so that P+10+i and P+70+i stay inside
	// their blocks of the priority range.
	MaxUplinks = 10
	// MinSecretLen is the shortest HBA site secret accepted, in bytes.
	MinSecretLen = hba.MinSecretLen
)

// Config is a decoded and validated configuration file.
type Config struct {
	LAN     LANConfig      `yaml:"lan"`
	Uplinks []UplinkConfig `yaml:"uplinks"`
	HBA     HBAConfig      `yaml:"hba"`
	TUN     TUNConfig      `yaml:"tun"`
	// Dataplane chooses where established contexts are forwarded.
	Dataplane DataplaneConfig `yaml:"dataplane"`
	Admin     AdminConfig     `yaml:"admin"`
	// Timers are the protocol timers (RFC 5533 §14, RFC 5534 §4.1, §4.3,
	// §7); a key left out keeps the RFC value (shim6.DefaultTimers).
	Timers shim6.Timers `yaml:"timers"`
	// Policy decides when traffic for a ULID pair starts a context
	// (deferred establishment, RFC 5533 §1.1).
	Policy shim6.Policy `yaml:"policy"`
	Limits LimitsConfig `yaml:"limits"`
	Log    LogConfig    `yaml:"log"`
	Rules  RulesConfig  `yaml:"rules"`

	// Path is the file the configuration was read from ("" for bytes).
	Path string `yaml:"-"`

	// lines maps key paths to the line they were written on, so that a
	// later system check can name the line too.
	lines map[string]int
}

// LANConfig is the site's LAN side.
type LANConfig struct {
	Interface string `yaml:"interface"` // lan.interface (required)
	// DHCPv6 and RA are the gateway's own DHCPv6 server of the book and
	// its Router Advertisements (docs/operations.md §3); off by default.
	DHCPv6 dhcp6.Config `yaml:"dhcpv6"`
	RA     ra.Config    `yaml:"ra"`
	// SLAACPrefix (lan.slaac_prefix) turns SLAAC translation on; the
	// rest of it is under lan.slaac. Decoding copies it to SLAAC.Prefix.
	SLAACPrefix netip.Prefix `yaml:"slaac_prefix"`
	SLAAC       slaac.Config `yaml:"slaac"`
}

// UplinkConfig is one provider uplink (docs/architecture.md §1).
type UplinkConfig struct {
	// Name is a short label (metrics label value, route table comment).
	Name      string       `yaml:"name"`
	Interface string       `yaml:"interface"`  // the kernel interface towards the ISP
	Prefix    netip.Prefix `yaml:"prefix"`     // P_X, the provider-assigned prefix (≤ /64)
	LANPrefix netip.Prefix `yaml:"lan_prefix"` // the site's LAN /64 under Prefix
	// Gateway is the ISP router (usually link-local); invalid (zero) means a
	// point-to-point uplink: "default dev <interface>".
	Gateway netip.Addr `yaml:"gateway"`
	MTU     int        `yaml:"mtu"`
	// AcceptRA sets accept_ra=2 on the interface while the gateway runs, so
	// it keeps learning addresses and routes from RAs with forwarding on.
	AcceptRA bool `yaml:"accept_ra"`
	// RequireDefaultRoute makes the uplink count as down while no ::/0
	// route (other than the gateway's own) points out of the interface,
	// e.g. when the ISP's RA router lifetime runs out.
	RequireDefaultRoute bool `yaml:"require_default_route"`
	// Withdrawn takes the uplink's locators out of the hosts' locator
	// lists (an Update Request to every peer, RFC 5533 §10.1) and out of
	// path choice, as if the uplink were down; for leaving or draining a
	// provider without a restart. Its LAN /64 stays in the HBA book.
	Withdrawn bool `yaml:"withdrawn"`
}

// HBAConfig holds the parameters of the HBA address book (RFC 5535).
type HBAConfig struct {
	SecretFile string `yaml:"secret_file"` // path as written (relative to the config file)
	Hosts      int    `yaml:"hosts"`       // number of book entries
	Sec        int    `yaml:"sec"`         // CGA Sec parameter, 0..7 (RFC 3972 §2)
	// Secret is the content of SecretFile, read at load time.
	Secret []byte `yaml:"-"`
}

// MaxHosts bounds hba.hosts (book entries).
const MaxHosts = 65536

func (h HBAConfig) hostsValid() bool { return h.Hosts >= 1 && h.Hosts <= MaxHosts }

// TUNConfig describes the TUN device the data plane reads.
type TUNConfig struct {
	Name string `yaml:"name"` // interface name, at most 15 bytes
	// Backend: "offload" (GSO pass-through, the default), "wireguard"
	// (wireguard-go's TUN, GSO/GRO offloads) or "water" (multi-queue).
	Backend    string `yaml:"backend"`
	Queues     int    `yaml:"queues"` // > 1 only with backend water
	MTU        int    `yaml:"mtu"`
	TxQueueLen int    `yaml:"txqueuelen"` // the kernel's transmit queue of the TUN, in packets
}

// Values of dataplane.fastpath.
const (
	// FastpathAuto (the default) uses the kernel fast path where the
	// kernel and the process's capabilities allow and no netfilter chain
	// filters forwarded IPv6, else the TUN path with one log line saying
	// why.
	FastpathAuto = "auto"
	// FastpathEBPF requires the fast path: the daemon fails without it.
	FastpathEBPF = "ebpf"
	// FastpathOff keeps every packet on the TUN path.
	FastpathOff = "off"
)

// DataplaneConfig selects the data plane.
type DataplaneConfig struct {
	// Fastpath: FastpathAuto (default), FastpathEBPF or FastpathOff
	// (docs/architecture.md, "Kernel fast path").
	Fastpath string `yaml:"fastpath"`
}

// AdminConfig is the admin HTTP listener.
type AdminConfig struct {
	Listen string `yaml:"listen"` // host:port
}

// LimitsConfig bounds the engine's state against remote exhaustion; Apply
// copies it into shim6.EngineConfig. Every limit is a whole number of at
// least 1 (limitFields); a new one is a field here, its tag, a line in
// Apply and an entry in limitFields.
type LimitsConfig struct {
	// MaxContexts caps the stored contexts (about 1.5 KiB live each,
	// engine and fast table; docs/operations.md, "Memory"). At the cap a
	// new context evicts the least recently used idle or unestablished
	// one. Default shim6.DefaultMaxContexts.
	MaxContexts int `yaml:"max_contexts"`
	// MaxContextsPerPeerLocator and MaxContextsPerPeerPrefix bound the
	// contexts one peer locator, and one peer /64, can create with I2 or
	// I2bis, so that one R1bis cannot mint the whole table.
	MaxContextsPerPeerLocator int `yaml:"max_contexts_per_peer_locator"`
	MaxContextsPerPeerPrefix  int `yaml:"max_contexts_per_peer_prefix"`
	// MaxPeerKeyBits bounds a peer's RSA modulus in CGA signatures
	// (at least 1024); larger keys are refused before any RSA work.
	MaxPeerKeyBits int `yaml:"max_peer_key_bits"`
	// SignatureChecksPerSecond and SignatureChecksPerSourcePerSecond are
	// the budgets of CGA signature checks, site-wide and per sender /64.
	SignatureChecksPerSecond          int `yaml:"signature_checks_per_second"`
	SignatureChecksPerSourcePerSecond int `yaml:"signature_checks_per_source_per_second"`
}

// DefaultLimits are the engine's defaults.
func DefaultLimits() LimitsConfig {
	return LimitsConfig{
		MaxContexts:                       shim6.DefaultMaxContexts,
		MaxContextsPerPeerLocator:         shim6.DefaultMaxContextsPerPeerLocator,
		MaxContextsPerPeerPrefix:          shim6.DefaultMaxContextsPerPeerPrefix,
		MaxPeerKeyBits:                    shim6.DefaultMaxPeerKeyBits,
		SignatureChecksPerSecond:          shim6.DefaultSignatureChecksPerSecond,
		SignatureChecksPerSourcePerSecond: shim6.DefaultSignatureChecksPerSourcePerSecond,
	}
}

// limitFields lists every limit with its key, for validation.
func (l *LimitsConfig) limitFields() []struct {
	key string
	v   int
} {
	return []struct {
		key string
		v   int
	}{{"max_contexts", l.MaxContexts}, {"max_contexts_per_peer_locator", l.MaxContextsPerPeerLocator},
		{"max_contexts_per_peer_prefix", l.MaxContextsPerPeerPrefix}, {"max_peer_key_bits", l.MaxPeerKeyBits},
		{"signature_checks_per_second", l.SignatureChecksPerSecond},
		{"signature_checks_per_source_per_second", l.SignatureChecksPerSourcePerSecond}}
}

// LogConfig selects the slog handler.
type LogConfig struct {
	Format string `yaml:"format"` // "text" or "json"
	Level  string `yaml:"level"`  // "debug", "info", "warn" or "error"
}

// RulesConfig places the gateway's policy rules and tables.
type RulesConfig struct {
	PriorityBase int `yaml:"priority_base"` // rules use [PriorityBase, PriorityBase+PriorityRange)
	TableBase    int `yaml:"table_base"`    // table T for the TUN, T+1 for the LAN, T+2+i for uplink i
	Protocol     int `yaml:"protocol"`      // rtnetlink protocol of every rule and route
}

// ShimTable is the routing table whose default route is the TUN.
func (r RulesConfig) ShimTable() int { return r.TableBase }

// LANTable holds the site's LAN /64s, on the LAN interface.
func (r RulesConfig) LANTable() int { return r.TableBase + 1 }

// UplinkTable is the routing table of uplink i.
func (r RulesConfig) UplinkTable(i int) int { return r.TableBase + 2 + i }

// LastTable is the highest table number the gateway may use; CleanupStale
// scans [TableBase, LastTable].
func (r RulesConfig) LastTable() int { return r.TableBase + 1 + MaxUplinks }

// LANPrefixes returns the site's LAN /64s, one per uplink, in uplink order
// (the Multi-Prefix extension of the HBA book, docs/architecture.md §2).
func (c *Config) LANPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, len(c.Uplinks))
	for i, u := range c.Uplinks {
		out[i] = u.LANPrefix
	}
	return out
}

// Line returns the line a key path was written on, 0 if it was not.
func (c *Config) Line(key string) int { return c.lines[key] }

// lineOf returns the line of key, or of its closest written parent, so a
// complaint about a defaulted value still points into the file.
func (c *Config) lineOf(key string) int {
	for key != "" {
		if l, ok := c.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return c.lines[""]
}

// ReloadPlan says what a SIGHUP reload changes.
type ReloadPlan struct {
	// PrefixesChanged: a provider prefix changed (its LAN /64 still
	// inside it): the "from P_X" rules and the fast table follow.
	PrefixesChanged bool
	// WithdrawnChanged: an uplink was withdrawn or restored: the engine
	// sends the peers the new locator lists.
	WithdrawnChanged bool
	TimersChanged    bool
	PolicyChanged    bool
	LogChanged       bool
}

// ErrNeedsRestart is returned by PlanReload when a key that only applies
// at start changed.
var ErrNeedsRestart = errors.New("config: change needs a restart")

// PlanReload compares the running configuration c with next. Provider
// prefixes, withdrawn uplinks, timers, policy and logging may change on
// SIGHUP; the
// interfaces, LAN prefixes (they fix the HBA book and so the ULIDs), TUN,
// admin listener, HBA book and rule placement may not, because the open
// contexts and installed rules depend on them.
func (c *Config) PlanReload(next *Config) (ReloadPlan, error) {
	var p ReloadPlan
	restart := func(key string) error {
		return &Error{Line: next.lineOf(key), Key: key, Kind: ErrNeedsRestart,
			Msg: fmt.Sprintf("%s: changed, needs a restart", key)}
	}
	if c.LAN.Interface != next.LAN.Interface {
		return p, restart("lan.interface")
	}
	// The LAN services hold sockets, pools and state files.
	for _, k := range []struct {
		key  string
		same bool
	}{
		{"lan.dhcpv6", reflect.DeepEqual(c.LAN.DHCPv6, next.LAN.DHCPv6)},
		{"lan.ra", reflect.DeepEqual(c.LAN.RA, next.LAN.RA)},
		{"lan.slaac_prefix", c.LAN.SLAACPrefix == next.LAN.SLAACPrefix},
		{"lan.slaac", c.LAN.SLAAC == next.LAN.SLAAC},
	} {
		if !k.same {
			return p, restart(k.key)
		}
	}
	if len(c.Uplinks) != len(next.Uplinks) {
		return p, restart("uplinks")
	}
	for i := range c.Uplinks {
		a, b := c.Uplinks[i], next.Uplinks[i]
		if a.LANPrefix != b.LANPrefix {
			// The HBA book, and so every ULID, is bound to the LAN
			// prefixes (RFC 5535 §8.1): no open context survives it.
			return p, &Error{Line: next.lineOf(fmt.Sprintf("uplinks[%d].lan_prefix", i)),
				Key: fmt.Sprintf("uplinks[%d].lan_prefix", i), Kind: ErrNeedsRestart,
				Msg: fmt.Sprintf("uplinks[%d].lan_prefix: changed, needs a restart (new HBA address book)", i)}
		}
		if a.Prefix != b.Prefix {
			p.PrefixesChanged = true
		}
		if a.Withdrawn != b.Withdrawn {
			p.WithdrawnChanged = true
		}
		a.Prefix, a.LANPrefix, b.Prefix, b.LANPrefix = netip.Prefix{}, netip.Prefix{}, netip.Prefix{}, netip.Prefix{}
		a.Withdrawn, b.Withdrawn = false, false
		if a != b {
			return p, restart(fmt.Sprintf("uplinks[%d]", i))
		}
	}
	if c.TUN != next.TUN {
		return p, restart("tun")
	}
	if c.Admin != next.Admin {
		return p, restart("admin.listen")
	}
	if c.Rules != next.Rules {
		return p, restart("rules")
	}
	if c.Limits != next.Limits {
		return p, restart("limits")
	}
	if c.HBA.Hosts != next.HBA.Hosts || c.HBA.Sec != next.HBA.Sec || string(c.HBA.Secret) != string(next.HBA.Secret) {
		return p, restart("hba")
	}
	p.TimersChanged = c.Timers != next.Timers
	p.PolicyChanged = c.Policy != next.Policy
	p.LogChanged = c.Log != next.Log
	return p, nil
}

// Apply sets the engine's resource limits from the configuration.
func (l LimitsConfig) Apply(ec *shim6.EngineConfig) {
	ec.MaxContexts = l.MaxContexts
	ec.MaxContextsPerPeerLocator = l.MaxContextsPerPeerLocator
	ec.MaxContextsPerPeerPrefix = l.MaxContextsPerPeerPrefix
	ec.MaxPeerKeyBits = l.MaxPeerKeyBits
	ec.MaxSignatureChecksPerSecond = l.SignatureChecksPerSecond
	ec.MaxSignatureChecksPerSourcePerSecond = l.SignatureChecksPerSourcePerSecond
}

// EngineUplinks returns the uplinks as the engine names them: a local
// locator inside an uplink's provider prefix is on that uplink.
func (c *Config) EngineUplinks() []shim6.Uplink {
	out := make([]shim6.Uplink, len(c.Uplinks))
	for i, u := range c.Uplinks {
		out[i] = shim6.Uplink{Name: u.Name, Prefix: u.Prefix}
	}
	return out
}

package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/shim6gw/shim6gw/hba"
)

// Sentinel errors; every *ConfigError matches one of them with errors.Is.
var (
	// ErrUnknownKey: a key the schema does not have (decoding is strict).
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrInvalid: a value that does not parse or breaks a rule.
	ErrInvalid = errors.New("config: invalid value")
	// ErrSystem: the configuration names something the system lacks
	// (CheckSystem).
	ErrSystem = errors.New("config: system check failed")
)

// ConfigError is one problem in a configuration file. It names the key
// path (e.g. "uplinks[1].prefix") and the line of that key.
type ConfigError struct {
	Line int    // 1-based line of the key (or of its parent when missing)
	Key  string // key path; empty for the document itself
	Msg  string // human message, already naming the key
	Kind error  // ErrUnknownKey, ErrInvalid or ErrSystem
}

func (e *ConfigError) Error() string { return fmt.Sprintf("config: line %d: %s", e.Line, e.Msg) }

// Unwrap lets errors.Is match the error kind.
func (e *ConfigError) Unwrap() error { return e.Kind }

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
	LAN     LANConfig
	Uplinks []UplinkConfig
	HBA     HBAConfig
	TUN     TUNConfig
	Admin   AdminConfig
	Timers  Timers
	Policy  PolicyConfig
	Limits  LimitsConfig
	Log     LogConfig
	Rules   RulesConfig

	// Path is the file the configuration was read from ("" for bytes).
	Path string

	// lines maps key paths to the line they were written on, so that a
	// later system check can name the line too.
	lines map[string]int
}

// LANConfig is the site's LAN side.
type LANConfig struct {
	Interface string // lan.interface (required)
}

// UplinkConfig is one provider uplink (design.md §1).
type UplinkConfig struct {
	// Name is a short label (metrics label value, route table comment).
	Name      string
	Interface string       // the kernel interface towards the ISP
	Prefix    netip.Prefix // P_X, the provider-assigned prefix (≤ /64)
	LANPrefix netip.Prefix // the site's LAN /64 under Prefix
	// Gateway is the ISP router (usually link-local); invalid (zero) means a
	// point-to-point uplink: "default dev <interface>".
	Gateway netip.Addr
	MTU     int
	// AcceptRA sets accept_ra=2 on the interface while the gateway runs, so
	// it keeps learning addresses and routes from RAs with forwarding on.
	AcceptRA bool
	// RequireDefaultRoute makes the uplink count as down while no ::/0
	// route (other than the gateway's own) points out of the interface,
	// e.g. when the ISP's RA router lifetime runs out.
	RequireDefaultRoute bool
	// Withdrawn takes the uplink's locators out of the hosts' locator
	// lists (an Update Request to every peer, RFC 5533 §10.1) and out of
	// path choice, as if the uplink were down; for leaving or draining a
	// provider without a restart. Its LAN /64 stays in the HBA book.
	Withdrawn bool
}

// HBAConfig holds the parameters of the HBA address book (RFC 5535).
type HBAConfig struct {
	SecretFile string // path as written (relative to the config file)
	Hosts      int    // number of book entries
	Sec        int    // CGA Sec parameter, 0..7 (RFC 3972 §2)
	// Secret is the content of SecretFile, read at load time.
	Secret []byte
}

// TUNConfig describes the TUN device the data plane reads.
type TUNConfig struct {
	Name string // interface name, at most 15 bytes
	// Backend: "offload" (GSO pass-through, the default), "wireguard"
	// (wireguard-go's TUN, GSO/GRO offloads) or "water" (multi-queue).
	Backend    string
	Queues     int // > 1 only with backend water
	MTU        int
	TxQueueLen int // the kernel's transmit queue of the TUN, in packets
}

// AdminConfig is the admin HTTP listener.
type AdminConfig struct {
	Listen string // host:port
}

// Timers are the protocol timers (RFC 5533 §14, RFC 5534 §4.1, §4.3,
// §7). Field names and meaning match shim6.Timers one to one.
type Timers struct {
	I1Timeout            time.Duration
	I1RetriesMax         int
	I2Timeout            time.Duration
	I2RetriesMax         int
	I2bisTimeout         time.Duration
	I2bisRetriesMax      int
	ValidatorMinLifetime time.Duration
	NoR1HolddownTime     time.Duration
	ICMPHolddownTime     time.Duration
	UpdateTimeout        time.Duration
	MaxUpdateTimeout     time.Duration
	SendTimeout          time.Duration
	KeepaliveTimeout     time.Duration
	InitialProbeTimeout  time.Duration
	NumInitialProbes     int
	MaxProbeTimeout      time.Duration
	IdleTimeout          time.Duration
	NonceInterval        time.Duration
	SecretRotation       time.Duration
}

// DefaultTimers returns the RFC values: RFC 5533 §14 (I1_TIMEOUT 4 s,
// I1_RETRIES_MAX 4, I2_TIMEOUT 4 s, I2_RETRIES_MAX 2, I2bis_TIMEOUT 4 s,
// I2bis_RETRIES_MAX 2, VALIDATOR_MIN_LIFETIME 30 s, NO_R1_HOLDDOWN_TIME
// 1 min, ICMP_HOLDDOWN_TIME 10 min, UPDATE_TIMEOUT 4 s, MAX_UPDATE_TIMEOUT
// 120 s) and RFC 5534 (Send Timeout 15 s §4.1, Initial Probe Timeout 0.5 s
// and 4 initial probes §7, Max Probe Timeout 60 s §4.3); the idle, nonce
// and secret-rotation periods are the engine's own (RFC 5533 §9, §7.10.1).
func DefaultTimers() Timers {
	return Timers{
		I1Timeout:            4 * time.Second,
		I1RetriesMax:         4,
		I2Timeout:            4 * time.Second,
		I2RetriesMax:         2,
		I2bisTimeout:         4 * time.Second,
		I2bisRetriesMax:      2,
		ValidatorMinLifetime: 30 * time.Second,
		NoR1HolddownTime:     time.Minute,
		ICMPHolddownTime:     10 * time.Minute,
		UpdateTimeout:        4 * time.Second,
		MaxUpdateTimeout:     120 * time.Second,
		SendTimeout:          15 * time.Second,
		KeepaliveTimeout:     15 * time.Second,
		InitialProbeTimeout:  500 * time.Millisecond,
		NumInitialProbes:     4,
		MaxProbeTimeout:      60 * time.Second,
		IdleTimeout:          10 * time.Minute,
		NonceInterval:        5 * time.Second,
		SecretRotation:       10 * time.Minute,
	}
}

// PolicyConfig decides when traffic for a ULID pair starts a context
// (deferred establishment, RFC 5533 §1.1); it maps to shim6.Policy.
type PolicyConfig struct {
	// InitiateAfterNotices is Policy.Packets: the data plane's "traffic
	// seen" notices for the pair, which it rate-limits to one per pair
	// per second (rewrite.Config.NoticeInterval), so 3 means traffic in
	// three different seconds, not three packets.
	InitiateAfterNotices int
	InitiateAfter        time.Duration // Policy.After (0: disabled)
	Window               time.Duration // Policy.Window
	MaxPending           int           // Policy.MaxPending
}

// DefaultPolicy returns the engine's defaults.
func DefaultPolicy() PolicyConfig {
	return PolicyConfig{InitiateAfterNotices: 1, Window: 30 * time.Second, MaxPending: 65536}
}

// DefaultMaxContexts is limits.max_contexts when the file leaves it out
// (shim6.DefaultMaxContexts): at about 4.8 KiB of resident memory per
// context at worst (docs/operations.md, "Memory"), about 310 MiB.
const DefaultMaxContexts = 1 << 16

// LimitsConfig bounds the engine's state against remote exhaustion; it
// maps to shim6.EngineConfig (LimitsConfig.Apply).
type LimitsConfig struct {
	// MaxContexts caps the stored contexts (~1.5 KiB live each, engine
	// and fast table); beyond it
	// new contexts are refused, existing ones are never evicted.
	MaxContexts int
}

// LogConfig selects the slog handler.
type LogConfig struct {
	Format string // "text" or "json"
	Level  string // "debug", "info", "warn" or "error"
}

// RulesConfig places the gateway's policy rules and tables.
type RulesConfig struct {
	PriorityBase int // rules use [PriorityBase, PriorityBase+PriorityRange)
	TableBase    int // table T for the TUN, T+1 for the LAN, T+2+i for uplink i
	Protocol     int // rtnetlink protocol of every rule and route
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
// (the Multi-Prefix extension of the HBA book, design.md §2).
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
		return &ConfigError{Line: next.lineOf(key), Key: key, Kind: ErrNeedsRestart,
			Msg: fmt.Sprintf("%s: changed, needs a restart", key)}
	}
	if c.LAN != next.LAN {
		return p, restart("lan.interface")
	}
	if len(c.Uplinks) != len(next.Uplinks) {
		return p, restart("uplinks")
	}
	for i := range c.Uplinks {
		a, b := c.Uplinks[i], next.Uplinks[i]
		if a.LANPrefix != b.LANPrefix {
			// The HBA book, and so every ULID, is bound to the LAN
			// prefixes (RFC 5535 §8.1): no open context survives it.
			return p, &ConfigError{Line: next.lineOf(fmt.Sprintf("uplinks[%d].lan_prefix", i)),
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

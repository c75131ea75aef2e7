package shim6

import (
	"net/netip"
	"time"
)

// Timers holds every protocol timer of the engine. Zero fields take the
// RFC defaults (RFC 5533 §14, RFC 5534 §4.1, §4.3, §7); the lab and the
// tests set faster ones. The yaml keys are the gateway configuration's
// timers section: the RFC constant names in snake case.
type Timers struct {
	I1Timeout            time.Duration `yaml:"i1_timeout"`             // RFC 5533 §14: 4 s
	I1RetriesMax         int           `yaml:"i1_retries_max"`         // RFC 5533 §14: 4
	I2Timeout            time.Duration `yaml:"i2_timeout"`             // 4 s
	I2RetriesMax         int           `yaml:"i2_retries_max"`         // 2
	I2bisTimeout         time.Duration `yaml:"i2bis_timeout"`          // 4 s
	I2bisRetriesMax      int           `yaml:"i2bis_retries_max"`      // 2
	ValidatorMinLifetime time.Duration `yaml:"validator_min_lifetime"` // 30 s
	NoR1HolddownTime     time.Duration `yaml:"no_r1_holddown_time"`    // 1 min
	ICMPHolddownTime     time.Duration `yaml:"icmp_holddown_time"`     // 10 min
	UpdateTimeout        time.Duration `yaml:"update_timeout"`         // 4 s
	MaxUpdateTimeout     time.Duration `yaml:"max_update_timeout"`     // 120 s

	SendTimeout         time.Duration `yaml:"send_timeout"`          // RFC 5534 §4.1: 15 s (our Send Timeout, sent as Keepalive Timeout option)
	KeepaliveTimeout    time.Duration `yaml:"keepalive_timeout"`     // RFC 5534 §4.1: the peer's Send Timeout if it told us, else this (15 s)
	InitialProbeTimeout time.Duration `yaml:"initial_probe_timeout"` // RFC 5534 §7: 0.5 s
	NumInitialProbes    int           `yaml:"num_initial_probes"`    // RFC 5534 §7: 4
	MaxProbeTimeout     time.Duration `yaml:"max_probe_timeout"`     // RFC 5534 §4.3: 60 s

	// IdleTimeout is how long a context may go without any traffic before
	// it is discarded (RFC 5533 §9 suggests at least 5 minutes).
	IdleTimeout time.Duration `yaml:"idle_timeout"` // 10 min

	// NonceInterval is how often the Responder Nonce counter advances;
	// SecretRotation how often the validator secret changes. A nonce is
	// accepted while it is at most ValidatorMinLifetime+NonceInterval old,
	// with the secret of its own epoch, so the previous secret stays valid
	// for that grace period (RFC 5533 §7.10.1).
	NonceInterval  time.Duration `yaml:"nonce_interval"`  // 5 s
	SecretRotation time.Duration `yaml:"secret_rotation"` // 10 min
}

// MinSendTimeout is the least Send Timeout (and Keepalive Timeout) the
// engine is meant for: below it a peer's Keepalives paced by the 1 s
// option (KeepaliveOptionSeconds) arrive too late far too often.
const MinSendTimeout = 100 * time.Millisecond

// KeepaliveOptionSeconds is the value of the Keepalive Timeout option
// (RFC 5534 §5.3) for our Send Timeout: whole seconds, rounded down so
// the peer keeps alive at least as often as our Send timer needs, but at
// least 1 (0 tells the peer nothing it can use). A sub-second Send Timeout is thus advertised as
// 1 s: a peer that paces its Keepalives by the option alone (not
// shim6gw, which paces by min(option, its own keepalive_timeout)) may
// let our Send timer expire and start an exploration that finds the
// current pair working; such needless explorations cost a few Probes,
// not traffic. RFC 5534 §7 recommends Send Timeouts of at least 10 s.
func (t Timers) KeepaliveOptionSeconds() uint16 {
	s := t.SendTimeout / time.Second
	return uint16(min(max(s, 1), 65535))
}

// DefaultTimers returns the RFC defaults.
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

// withDefaults fills zero fields from DefaultTimers.
func (t Timers) withDefaults() Timers {
	d := DefaultTimers()
	setD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setI := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setD(&t.I1Timeout, d.I1Timeout)
	setI(&t.I1RetriesMax, d.I1RetriesMax)
	setD(&t.I2Timeout, d.I2Timeout)
	setI(&t.I2RetriesMax, d.I2RetriesMax)
	setD(&t.I2bisTimeout, d.I2bisTimeout)
	setI(&t.I2bisRetriesMax, d.I2bisRetriesMax)
	setD(&t.ValidatorMinLifetime, d.ValidatorMinLifetime)
	setD(&t.NoR1HolddownTime, d.NoR1HolddownTime)
	setD(&t.ICMPHolddownTime, d.ICMPHolddownTime)
	setD(&t.UpdateTimeout, d.UpdateTimeout)
	setD(&t.MaxUpdateTimeout, d.MaxUpdateTimeout)
	setD(&t.SendTimeout, d.SendTimeout)
	setD(&t.KeepaliveTimeout, d.KeepaliveTimeout)
	setD(&t.InitialProbeTimeout, d.InitialProbeTimeout)
	setI(&t.NumInitialProbes, d.NumInitialProbes)
	setD(&t.MaxProbeTimeout, d.MaxProbeTimeout)
	setD(&t.IdleTimeout, d.IdleTimeout)
	setD(&t.NonceInterval, d.NonceInterval)
	setD(&t.SecretRotation, d.SecretRotation)
	if t.SecretRotation < t.NonceInterval {
		t.SecretRotation = t.NonceInterval
	}
	return t
}

// Uplink is one provider uplink of the site and its prefix. Local
// locators inside Prefix are "on" the uplink.
type Uplink struct {
	Name   string
	Prefix netip.Prefix
}

// LocalHost is one entry of the site's HBA address book: a ULID, all its
// locators (the ULID included; one per uplink) with their verification
// method, and the CGA Parameter Data Structure the peer verifies them
// with (RFC 5533 §5.15.4, RFC 5535).
type LocalHost struct {
	ULID     netip.Addr
	Locators []netip.Addr
	Methods  []uint8 // one per locator; nil means VerifyHBA for all
	PDS      []byte
}

// Policy decides when outbound traffic for a ULID pair without a context
// makes the engine send an I1 ("deferred context establishment", RFC 5533
// §1.1, §15.3), so short flows cost no handshake.
type Policy struct {
	// InitiateAfterNotices: initiate once this many HandleTraffic calls
	// were seen for the pair within Window. The data plane sends at most
	// one such "traffic seen" notice per pair per second, so 3 means
	// traffic in three different seconds, not three packets.
	InitiateAfterNotices int `yaml:"initiate_after_notices"`
	// InitiateAfter: initiate when traffic for the pair is still seen
	// this long after it was first seen (0: disabled).
	InitiateAfter time.Duration `yaml:"initiate_after"`
	// Window: a pair not seen again within Window is forgotten.
	Window time.Duration `yaml:"window"`
	// MaxPending bounds the number of pairs counted at once.
	MaxPending int `yaml:"max_pending"`
}

// DefaultPolicy initiates on the first notice, forgets a pair after 30 s
// and counts at most 65536 pairs.
func DefaultPolicy() Policy {
	return Policy{InitiateAfterNotices: 1, Window: 30 * time.Second, MaxPending: 65536}
}

// withDefaults fills zero fields from DefaultPolicy.
func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.InitiateAfterNotices <= 0 {
		p.InitiateAfterNotices = d.InitiateAfterNotices
	}
	if p.Window <= 0 {
		p.Window = d.Window
	}
	if p.MaxPending <= 0 {
		p.MaxPending = d.MaxPending
	}
	return p
}

// Verifier checks that a peer's locators belong to its ULID: pds must
// verify against ulid, and every locator against pds with its method (HBA,
// RFC 5535 §7.2) or the CGA signature (RFC 5533 §5.15.5, sig over
// generation and the CGA locators). The gateway plugs package hba in.
type Verifier interface {
	VerifyLocators(ulid netip.Addr, pds, sig []byte, generation uint32, locs []netip.Addr, methods []uint8) error
}

// EngineConfig is the engine's static configuration.
type EngineConfig struct {
	Hosts   []LocalHost
	Uplinks []Uplink
	Timers  Timers
	Policy  Policy
	// SiteSecret derives the validator secrets; an HA pair sharing it
	// validates each other's R1/R1bis (docs/architecture.md §11). Empty: random.
	SiteSecret []byte
	// Seed makes tags, nonces and jitter reproducible (tests). Zero: random.
	Seed [32]byte
	// Verifier checks peer locator lists. Nil: only the peer ULID itself
	// is ever used as its locator.
	Verifier Verifier
	// TagBits limits context tags to the low TagBits bits (RFC 5533
	// App. C.4 testing tip); 0 means the full 47.
	TagBits int
	// HintPrefixLen is the length of the peer prefix that site-wide path
	// hints are keyed on (default 48).
	HintPrefixLen int
	// MaxErrorsPerSecond rate-limits Error and R1bis messages site-wide
	// (default 100).
	MaxErrorsPerSecond int
	// MaxErrorsPerSourcePerSecond rate-limits them per destination /64, so
	// one source cannot use up the site-wide budget (default
	// MaxErrorsPerSecond/5, at least 1).
	MaxErrorsPerSourcePerSecond int
	// MaxContexts bounds the stored contexts, hold-downs included
	// (default DefaultMaxContexts = 1<<16; memory per context in
	// docs/operations.md, "Memory"). At the cap the least recently
	// used context that is not established or is idle is evicted for a
	// new one (Stats.Evictions); with none, an I2/I2bis that would create
	// a context and a local initiation are refused (DropContextLimit).
	MaxContexts int
	// MaxContextsPerPeerLocator and MaxContextsPerPeerPrefix bound the
	// contexts created by received I2/I2bis per sending locator (default
	// 1024) and per sending /64 (default 8192); beyond them the message is
	// dropped (DropSourceQuota). See engine_quota.go.
	MaxContextsPerPeerLocator int
	MaxContextsPerPeerPrefix  int
	// MaxPeerKeyBits bounds a peer's RSA modulus for CGA signatures
	// (default DefaultMaxPeerKeyBits = 4096); larger keys, and public
	// exponents above 65537, are refused with Error code 2 before any
	// signature work (engine_verify.go).
	MaxPeerKeyBits int
	// MaxSignatureChecksPerSecond bounds CGA signature checks site-wide
	// (default 100); MaxSignatureChecksPerSourcePerSecond per sender /64
	// (default 10). A message over budget is dropped silently and
	// counted as DropVerifyBudget; its sender retransmits.
	MaxSignatureChecksPerSecond          int
	MaxSignatureChecksPerSourcePerSecond int
}

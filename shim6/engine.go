package shim6

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/shim6gw/shim6gw/hba"
)

// Engine is the Shim6 (RFC 5533) and REAP (RFC 5534) state machine for
// every host of a site (docs/architecture.md §5). It is driven by events, each at a
// given time, and answers with Actions; it has no goroutines, sockets or
// clock of its own and is not safe for concurrent use: one control loop
// owns it.
//
// The control loop feeds it:
//   - HandleControl for every received Shim6 control message;
//   - HandleTraffic when outbound traffic has no context (rate-limited);
//   - HandleUnknownTag for payload with a context tag the fast table lacks;
//   - ObserveTraffic whenever a context's data-plane stamps moved;
//   - HandleICMP for ICMPv6 errors quoting Shim6 packets;
//   - UplinkDown / UplinkUp from the uplink monitor;
//   - UpdateLocalHost / SetLocatorPreference / Initiate / Teardown from the
//     operator or the configuration;
//   - Tick at (or after) Actions.NextDeadline.
//
// Each call returns the engine's reusable *Actions: send Packets, apply
// Updates to the fast table in order, log or count Events, and arm the
// timer for NextDeadline. Nothing in it may be kept past the next call.
type Engine struct {
	cfg   EngineConfig
	t     Timers
	pol   Policy
	rng   *rand.Rand
	val   *validators
	ver   Verifier
	hosts []*host

	byULID    map[netip.Addr]*host
	byLocator map[netip.Addr]*host
	uplinks   []Uplink
	down      []bool

	byPair    map[pairKey]*context
	byTag     map[ContextTag]*context
	byPeerTag map[ContextTag]*context
	byNonce   map[uint32]*context
	timers    timerHeap
	paths     map[pathKey]*pathEntry
	livePaths int // paths with at least one context on them
	pending   map[pairKey]pendingPair
	lru       lruList
	// Contexts created by a received I2/I2bis, per sending locator and /64.
	byOrigin       map[netip.Addr]int
	byOriginPrefix map[uint64]int

	out   Actions
	stats Stats
	now   time.Time

	errLim     errLimiter
	verLim     errLimiter // signature checks (engine_verify.go)
	vcache     verifyCache
	limitEvent nanotime // last EventContextLimit
	scratch    []byte
	cands      []cand
	tmpVal     [validatorLen]byte
}

// ErrConfig reports an unusable engine configuration.
var ErrConfig = errors.New("shim6: bad engine config")

// NewEngine builds an engine for the site described by cfg.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	e := &Engine{
		cfg:       cfg,
		t:         cfg.Timers.withDefaults(),
		pol:       cfg.Policy.withDefaults(),
		ver:       cfg.Verifier,
		byULID:    make(map[netip.Addr]*host),
		byLocator: make(map[netip.Addr]*host),
		byPair:    make(map[pairKey]*context),
		byTag:     make(map[ContextTag]*context),
		byPeerTag: make(map[ContextTag]*context),
		byNonce:   make(map[uint32]*context),
		paths:     make(map[pathKey]*pathEntry),
		pending:   make(map[pairKey]pendingPair),

		byOrigin:       make(map[netip.Addr]int),
		byOriginPrefix: make(map[uint64]int),
		uplinks:        append([]Uplink(nil), cfg.Uplinks...),
	}
	if e.cfg.HintPrefixLen <= 0 || e.cfg.HintPrefixLen > 128 {
		e.cfg.HintPrefixLen = 48
	}
	if e.cfg.MaxErrorsPerSecond <= 0 {
		e.cfg.MaxErrorsPerSecond = 100
	}
	if e.cfg.MaxErrorsPerSourcePerSecond <= 0 {
		e.cfg.MaxErrorsPerSourcePerSecond = max(1, e.cfg.MaxErrorsPerSecond/5)
	}
	if e.cfg.MaxContexts <= 0 {
		e.cfg.MaxContexts = DefaultMaxContexts
	}
	if e.cfg.MaxContextsPerPeerLocator <= 0 {
		e.cfg.MaxContextsPerPeerLocator = DefaultMaxContextsPerPeerLocator
	}
	if e.cfg.MaxContextsPerPeerPrefix <= 0 {
		e.cfg.MaxContextsPerPeerPrefix = DefaultMaxContextsPerPeerPrefix
	}
	if e.cfg.MaxPeerKeyBits <= 0 {
		e.cfg.MaxPeerKeyBits = DefaultMaxPeerKeyBits
	}
	if e.cfg.MaxSignatureChecksPerSecond <= 0 {
		e.cfg.MaxSignatureChecksPerSecond = DefaultSignatureChecksPerSecond
	}
	if e.cfg.MaxSignatureChecksPerSourcePerSecond <= 0 {
		e.cfg.MaxSignatureChecksPerSourcePerSecond = min(DefaultSignatureChecksPerSourcePerSecond, e.cfg.MaxSignatureChecksPerSecond)
	}
	if hv, ok := e.ver.(hba.Verifier); ok {
		// The verifier refuses the same keys the engine pre-checks.
		hv.MaxKeyBits = e.cfg.MaxPeerKeyBits
		e.ver = hv
	}
	e.verLim.rate = float64(e.cfg.MaxSignatureChecksPerSecond)
	e.verLim.srcRate = float64(e.cfg.MaxSignatureChecksPerSourcePerSecond)
	e.errLim.rate = float64(e.cfg.MaxErrorsPerSecond)
	e.errLim.srcRate = float64(e.cfg.MaxErrorsPerSourcePerSecond)
	e.down = make([]bool, len(e.uplinks))
	seed := cfg.Seed
	if seed == ([32]byte{}) {
		if _, err := crand.Read(seed[:]); err != nil {
			return nil, fmt.Errorf("shim6: seed: %w", err)
		}
	}
	src := rand.NewChaCha8(seed)
	e.rng = rand.New(src)
	// From the seed, not the generator, so tags and nonces stay as before.
	e.errLim.key = binary.LittleEndian.Uint64(seed[24:]) ^ 0x5851f42d4c957f2d
	e.verLim.key = binary.LittleEndian.Uint64(seed[16:]) ^ 0x2545f4914f6cdd1d
	var ck [16]byte
	copy(ck[:], seed[:16])
	ck[0] ^= 0xc4 // not the generator's seed verbatim
	e.vcache.init(ck)
	secret := cfg.SiteSecret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		src.Read(secret)
	}
	e.val = newValidators(secret, e.t)
	for _, lh := range cfg.Hosts {
		h, err := e.newHost(lh)
		if err != nil {
			return nil, err
		}
		if _, dup := e.byULID[h.ulid]; dup {
			return nil, fmt.Errorf("%w: duplicate ULID %v", ErrConfig, h.ulid)
		}
		e.hosts = append(e.hosts, h)
		e.byULID[h.ulid] = h
		for _, l := range h.locs {
			e.byLocator[l] = h
		}
	}
	return e, nil
}

func (e *Engine) newHost(lh LocalHost) (*host, error) {
	if !lh.ULID.Is6() {
		return nil, fmt.Errorf("%w: ULID %v is not IPv6", ErrConfig, lh.ULID)
	}
	h := &host{ulid: lh.ULID, pds: lh.PDS, generation: e.rng.Uint32()}
	h.locs = append(h.locs, lh.Locators...)
	if h.index(lh.ULID) < 0 {
		h.locs = append([]netip.Addr{lh.ULID}, h.locs...)
	}
	if len(h.locs) > maxLocators {
		return nil, fmt.Errorf("%w: %d locators for %v, at most %d", ErrConfig, len(h.locs), lh.ULID, maxLocators)
	}
	if n := len(h.locs); maxI2Len(n, len(lh.PDS)) > MinMTU-IPv6HeaderLen {
		return nil, fmt.Errorf("%w: locators and PDS of %v do not fit a 1280-octet I2 (RFC 5533 §5.1)", ErrConfig, lh.ULID)
	}
	for _, l := range h.locs {
		m := VerifyHBA
		if lh.Methods != nil {
			if i := indexAddr(lh.Locators, l); i >= 0 && i < len(lh.Methods) {
				m = lh.Methods[i]
			}
		}
		h.methods = append(h.methods, m)
		h.uplink = append(h.uplink, e.uplinkOf(l))
	}
	h.prefs = make([]LocatorPreference, len(h.locs))
	return h, nil
}

// maxLocators bounds a host's locator list; with a PDS it must fit one
// 1280-octet control packet (RFC 5533 §5.1).
const maxLocators = 32

// maxPeerValidator bounds a Responder Validator we copy from an R1/R1bis
// into our I2/I2bis (ours are validatorLen; LinShim6's 20 octets).
const maxPeerValidator = 64

// maxI2Len is the longest I2/I2bis we can build for a host with n
// locators and a PDS of pdsLen octets.
func maxI2Len(n, pdsLen int) int {
	return 32 + OptionSize(maxPeerValidator) + OptionSize(36) + OptionSize(4) +
		OptionSize(locatorListLen(n)) + OptionSize(5+3*n) + OptionSize(pdsLen) + OptionSize(4)
}

func indexAddr(s []netip.Addr, a netip.Addr) int {
	for i, x := range s {
		if x == a {
			return i
		}
	}
	return -1
}

func (e *Engine) uplinkOf(a netip.Addr) int {
	for i, u := range e.uplinks {
		if u.Prefix.Contains(a) {
			return i
		}
	}
	return -1
}

// begin starts an engine call.
func (e *Engine) begin(now time.Time) {
	e.now = now
	e.out.reset()
}

// end finishes an engine call.
func (e *Engine) end() *Actions {
	if len(e.timers) > 0 {
		e.out.NextDeadline = e.timers[0].deadline.time()
	}
	return &e.out
}

// NextDeadline is when Tick must be called next (zero: nothing pending).
func (e *Engine) NextDeadline() time.Time {
	if len(e.timers) > 0 {
		return e.timers[0].deadline.time()
	}
	return time.Time{}
}

// Stats returns the cumulative counters.
func (e *Engine) Stats() Stats { return e.stats }

// Len is the number of stored contexts (E-FAILED and NO-SUPPORT included).
func (e *Engine) Len() int { return len(e.byPair) }

// Tick runs every timer due at now: retransmissions, REAP, update
// retransmissions, hold-downs and garbage collection.
func (e *Engine) Tick(now time.Time) *Actions {
	e.begin(now)
	n := nt(now)
	for len(e.timers) > 0 && e.timers[0].deadline <= n {
		c := e.timers[0]
		e.schedule(c, 0)
		e.onTimer(c, n)
	}
	return e.end()
}

// onTimer handles a context whose deadline passed.
func (e *Engine) onTimer(c *context, now nanotime) {
	switch c.state {
	case StateI1Sent:
		if int(c.retries) >= e.t.I1RetriesMax {
			// RFC 5533 §7.8: no R1 after the retries → E-FAILED.
			e.fail(c, StateEFailed, e.t.NoR1HolddownTime, "no R1")
			return
		}
		c.retries++
		e.sendI1(c)
		e.schedule(c, now+e.backoff(e.t.I1Timeout, c.retries))
	case StateI2Sent:
		if int(c.retries) >= e.t.I2RetriesMax {
			e.restartI1(c) // RFC 5533 §7.12
			return
		}
		c.retries++
		e.sendI2(c)
		e.schedule(c, now+e.backoff(e.t.I2Timeout, c.retries))
	case StateI2bisSent:
		if int(c.retries) >= e.t.I2bisRetriesMax {
			e.restartI1(c) // RFC 5533 §7.19
			return
		}
		c.retries++
		e.sendI2bis(c)
		e.schedule(c, now+e.backoff(e.t.I2bisTimeout, c.retries))
	case StateEFailed, StateNoSupport:
		e.remove(c, "hold-down over") // back to IDLE
	case StateEstablished:
		e.establishedTimers(c, now)
	}
}

// backoff is the nominal timeout doubled per retry, drawn uniformly from
// [0.5, 1.5] times that (RFC 5533 §14).
func (e *Engine) backoff(base time.Duration, retries uint8) nanotime {
	d := base
	for i := uint8(0); i < retries && d < time.Hour; i++ {
		d *= 2
	}
	f := 0.5 + rngFloat(e.rng)
	return nanotime(float64(d) * f)
}

// rngFloat returns a uniform float in [0,1) from the engine's generator.
func rngFloat(r *rand.Rand) float64 { return r.Float64() }

// fail moves a context to E-FAILED or NO-SUPPORT for a hold-down time.
func (e *Engine) fail(c *context, s State, hold time.Duration, reason string) {
	wasUp := c.canSend()
	if wasUp {
		e.remove(c, reason)
		// Re-create a bare entry that only remembers the hold-down.
		c = &context{host: c.host, peerULID: c.peerULID, fii: c.fii}
		e.insert(c)
	}
	e.setNonce(c, 0)
	if c.localTag != 0 && e.byTag[c.localTag] == c {
		delete(e.byTag, c.localTag)
	}
	c.localTag = 0
	e.unlinkPeerTag(c)
	c.hs, c.ex, c.upd = nil, nil, nil
	c.state = s
	if s == StateEFailed {
		e.stats.Failed++
		e.event(EventEstablishFailed, c, 0, reason)
	} else {
		e.stats.NoSupport++
		e.event(EventNoSupport, c, 0, reason)
	}
	e.schedule(c, nt(e.now)+nanotime(hold))
}

// emit queues the message in e.out.buf[start:] for sending.
func (e *Engine) emit(src, dst netip.Addr, start int) {
	msg := e.out.buf[start:len(e.out.buf):len(e.out.buf)]
	if len(msg) > MinMTU-IPv6HeaderLen || FinishMessage(msg) != nil {
		// Config checks and the peer-validator limit keep every message
		// within 1280 octets (RFC 5533 §5.1); never send a longer one.
		e.out.buf = e.out.buf[:start]
		e.stats.Drops[DropTooLong]++
		return
	}
	e.stats.Tx[msg[offType]&0x7f]++
	e.out.Packets = append(e.out.Packets, OutPacket{Src: src, Dst: dst, Payload: msg})
}

// Contexts describes every stored context (for /debug/contexts).
func (e *Engine) Contexts() []ContextInfo {
	out := make([]ContextInfo, 0, len(e.byPair))
	for _, c := range e.byPair {
		ci := ContextInfo{
			LocalULID: c.host.ulid, PeerULID: c.peerULID, FII: c.fii,
			State: c.state, ReapState: c.reap, LocalTag: c.localTag, PeerTag: c.peerTag,
			LocalLocator: c.lp, PeerLocator: c.pp, LastFailover: c.lastFailover.time(),
		}
		if c.peer != nil {
			ci.PeerLocators = append([]netip.Addr(nil), c.peer.locs...)
		}
		ci.RTT = c.rtt()
		out = append(out, ci)
	}
	return out
}

// Context returns the description of the context for a ULID pair (FII 0).
func (e *Engine) Context(local, peer netip.Addr) (ContextInfo, bool) {
	c := e.byPair[pairKey{local, peer, 0}]
	if c == nil {
		return ContextInfo{}, false
	}
	ci := ContextInfo{
		LocalULID: c.host.ulid, PeerULID: c.peerULID, FII: c.fii,
		State: c.state, ReapState: c.reap, LocalTag: c.localTag, PeerTag: c.peerTag,
		LocalLocator: c.lp, PeerLocator: c.pp, LastFailover: c.lastFailover.time(), RTT: c.rtt(),
	}
	if c.peer != nil {
		ci.PeerLocators = append([]netip.Addr(nil), c.peer.locs...)
	}
	return ci, true
}

// Initiate is the operator command that starts a context for a ULID pair
// now, whatever the initiation policy says.
func (e *Engine) Initiate(now time.Time, local, peer netip.Addr) *Actions {
	e.begin(now)
	e.initiate(local, peer)
	return e.end()
}

// Teardown is the operator command that discards the context of a ULID
// pair (RFC 5533 §9: unilateral, no message).
func (e *Engine) Teardown(now time.Time, local, peer netip.Addr) *Actions {
	e.begin(now)
	if c := e.byPair[pairKey{local, peer, 0}]; c != nil {
		e.remove(c, "operator")
	}
	return e.end()
}

// Published returns the fast-table entries of every context that may carry
// payload, for a gateway that rebuilds its table from scratch.
func (e *Engine) Published() []ContextUpdate {
	var out []ContextUpdate
	for _, c := range e.byPair {
		if c.canSend() {
			out = append(out, ContextUpdate{
				LocalULID: c.host.ulid, PeerULID: c.peerULID, FII: c.fii,
				LocalTag: c.localTag, PeerTag: c.peerTag,
				LocalLocator: c.lp, PeerLocator: c.pp,
				LocalLocators: c.host.locs, PeerLocators: c.peerLocs(),
			})
		}
	}
	return out
}

// StateCounts returns the number of stored contexts per State (index) and
// per REAP state of the ESTABLISHED ones, for gauges.
func (e *Engine) StateCounts() (states [StateNoSupport + 1]int, reap [3]int) {
	for _, c := range e.byPair {
		states[c.state]++
		if c.state == StateEstablished && int(c.reap) < len(reap) {
			reap[c.reap]++
		}
	}
	return states, reap
}

// PeerHeld reports whether a ULID pair is in a hold-down: E-FAILED (no
// answer to I1, RFC 5533 §7.8) or NO-SUPPORT (the peer has no Shim6,
// §6.2), and until when. The gateway uses it to serve the pair without
// Shim6 (docs/architecture.md §7); the events EventEstablishFailed and
// EventNoSupport announce the same.
func (e *Engine) PeerHeld(local, peer netip.Addr) (State, time.Time, bool) {
	c := e.byPair[pairKey{local, peer, 0}]
	if c == nil || (c.state != StateEFailed && c.state != StateNoSupport) {
		return StateIdle, time.Time{}, false
	}
	return c.state, c.deadline.time(), true
}

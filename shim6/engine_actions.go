package shim6

import (
	"net/netip"
	"time"
)

// OutPacket is a control message to send from Src to Dst. Payload is the
// whole Shim6 message (wrap it with AppendIPv6Control); it aliases the
// engine's buffer and is valid until the next engine call.
type OutPacket struct {
	Src, Dst netip.Addr
	Payload  []byte
}

// ContextUpdate is a fast-table entry (docs/architecture.md §6) for a context that may
// carry payload (ESTABLISHED or I2BIS-SENT, RFC 5533 §11), or its removal.
// The locator slices are never mutated after they are published.
type ContextUpdate struct {
	LocalULID, PeerULID netip.Addr
	FII                 uint32
	LocalTag            ContextTag // CT(local): expected in received payload headers
	PeerTag             ContextTag // CT(peer): put in sent payload headers
	LocalLocator        netip.Addr // Lp(local), current pair
	PeerLocator         netip.Addr // Lp(peer)
	LocalLocators       []netip.Addr
	PeerLocators        []netip.Addr
	Removed             bool
}

// EventKind classifies Event records.
type EventKind uint8

// Event kinds.
const (
	EventContextUp          EventKind = iota + 1 // context became ESTABLISHED
	EventContextDown                             // context discarded (Reason says why)
	EventEstablishFailed                         // I1 retries exhausted → E-FAILED
	EventNoSupport                               // peer does not speak shim6 → NO-SUPPORT
	EventExplorationStarted                      // REAP left Operational
	EventFailover                                // REAP moved to a new pair (Duration: since exploration start)
	EventExplorationEnded                        // REAP back to Operational
	EventRecovery                                // context rebuilt through R1bis/I2bis
	EventLocatorsUpdated                         // peer locator set or preferences changed
	EventPeerError                               // peer sent an Error message (Code)
	EventContextLimit                            // a context was refused: MaxContexts reached (at most one per 10 s)
)

var eventNames = [...]string{"", "context_up", "context_down", "establish_failed", "no_support",
	"exploration_started", "failover", "exploration_ended", "recovery", "locators_updated", "peer_error", "context_limit"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one thing worth a log line or a metric.
type Event struct {
	Kind                EventKind
	LocalULID, PeerULID netip.Addr
	LocalTag            ContextTag
	LocalLocator        netip.Addr
	PeerLocator         netip.Addr
	Duration            time.Duration
	Code                ErrorCode
	Reason              string
}

// Actions is what one engine call asks the caller to do. The engine reuses
// one Actions value: everything in it is valid until the next call.
type Actions struct {
	Packets      []OutPacket
	Updates      []ContextUpdate
	Events       []Event
	NextDeadline time.Time // zero: no timer pending

	buf []byte
}

func (a *Actions) reset() {
	clear(a.Packets)
	a.Packets = a.Packets[:0]
	clear(a.Updates)
	a.Updates = a.Updates[:0]
	a.Events = a.Events[:0]
	a.buf = a.buf[:0]
	a.NextDeadline = time.Time{}
}

// DropReason says why the engine ignored a control message.
type DropReason uint8

// Drop reasons.
const (
	DropMalformed       DropReason = iota // ParseMessage failed, no Error message owed
	DropUnknownType                       // answered with Error code 0
	DropCriticalOption                    // answered with Error code 1
	DropNoContext                         // no matching context (R1, R2, R1bis, Error)
	DropBadValidator                      // I2/I2bis validator or nonce not accepted
	DropStaleNonce                        // responder nonce older than the validator lifetime
	DropVerifyFailed                      // peer locators failed HBA/CGA verification
	DropWrongState                        // message not valid in the context's state
	DropBadLocator                        // addresses not in the context's locator sets
	DropRateLimited                       // R1bis/Error suppressed by the rate limit
	DropBadAddress                        // not addressed to a local locator
	DropBadPreferences                    // Locator Preferences out of sync (Error 3/4)
	DropTooLong                           // a message to send would exceed 1280 octets; not sent
	DropBadValidatorLen                   // R1/R1bis validator longer than we copy
	DropContextLimit                      // I2/I2bis or local initiation refused: MaxContexts reached
	DropPeerKeyTooLarge                   // CGA key above MaxPeerKeyBits or exponent above 65537 (Error 2)
	DropVerifyBudget                      // signature check refused: the sender's or the site's budget is spent
	DropSourceQuota                       // I2/I2bis would exceed the contexts allowed per peer locator or /64
	NumDropReasons
)

var dropNames = [...]string{"malformed", "unknown_type", "critical_option", "no_context", "bad_validator",
	"stale_nonce", "verify_failed", "wrong_state", "bad_locator", "rate_limited", "bad_address", "bad_preferences", "too_long", "bad_validator_len", "context_limit",
	"peer_key_too_large", "verify_budget", "source_quota"}

func (d DropReason) String() string {
	if int(d) < len(dropNames) {
		return dropNames[d]
	}
	return "unknown"
}

// Stats are cumulative counters the gateway turns into metrics.
type Stats struct {
	Rx, Tx       [128]uint64 // control messages by Type
	Drops        [NumDropReasons]uint64
	Established  uint64 // contexts that reached ESTABLISHED
	Failed       uint64 // E-FAILED entries
	NoSupport    uint64 // NO-SUPPORT entries
	Recoveries   uint64 // I2bis-based recoveries completed
	Explorations uint64
	Failovers    uint64
	Removed      uint64
	Evictions    uint64 // idle or unestablished contexts evicted for a new one at MaxContexts
}

// ContextInfo describes one context for /debug/contexts.
type ContextInfo struct {
	LocalULID, PeerULID netip.Addr
	FII                 uint32
	State               State
	ReapState           Sta
	LocalTag, PeerTag   ContextTag
	LocalLocator        netip.Addr
	PeerLocator         netip.Addr
	PeerLocators        []netip.Addr
	RTT                 time.Duration // last probe round trip, 0 if unknown
	LastFailover        time.Time
}

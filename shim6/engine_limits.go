package shim6

import (
	"encoding/binary"
	"net/netip"
)

// DefaultMaxContexts is the context cap when EngineConfig.MaxContexts is
// 0: what a gateway with 512 MiB of RAM survives (docs/operations.md,
// "Memory").
const DefaultMaxContexts = 1 << 16

// contextLimitEventEvery spaces EventContextLimit records: under a flood
// of I2s every refusal is counted, but only one event per interval is
// emitted, so the log and the control loop's snapshots stay cheap.
const contextLimitEventEvery = 10 * 1e9 // nanoseconds

// full reports whether a new context would exceed MaxContexts. Only an
// idle or unestablished context is evicted for a new one (roomFor), so
// remote input cannot push out contexts that carry traffic.
func (e *Engine) full() bool { return len(e.byPair) >= e.cfg.MaxContexts }

// refuseContext counts a context not created because the table is full.
func (e *Engine) refuseContext(local, peer netip.Addr, reason string) {
	e.stats.Drops[DropContextLimit]++
	n := nt(e.now)
	if e.limitEvent != 0 && n-e.limitEvent < contextLimitEventEvery && n >= e.limitEvent {
		return
	}
	e.limitEvent = n
	e.out.Events = append(e.out.Events, Event{Kind: EventContextLimit, LocalULID: local, PeerULID: peer, Reason: reason})
}

// errSlots is the size of the per-source table of the Error/R1bis limiter.
const errSlots = 1024

// tokenBucket holds up to rate tokens and gains rate per second.
type tokenBucket struct {
	tokens float64
	last   nanotime
	used   bool
}

func (b *tokenBucket) refill(n nanotime, rate float64) {
	switch {
	case !b.used:
		b.tokens, b.used = rate, true
	case n > b.last:
		b.tokens = min(rate, b.tokens+float64(n-b.last)/1e9*rate)
	default:
		return // the clock did not advance
	}
	b.last = n
}

// srcBucket is the bucket of one source /64.
type srcBucket struct {
	prefix uint64
	tokenBucket
}

// errLimiter rate-limits Error and R1bis messages (and signature
// checks, as verLim) per source /64 in a
// small direct-mapped table (a slot taken by another /64 starts afresh,
// so colliding sources never silence each other) and site-wide. It is
// allocated once with the engine; checking allocates nothing.
type errLimiter struct {
	rate, srcRate float64
	key           uint64 // random: sources cannot choose their slot
	all           tokenBucket
	slots         [errSlots]srcBucket
}

func (l *errLimiter) slot(a netip.Addr) *srcBucket {
	b := a.As16()
	p := binary.BigEndian.Uint64(b[:8])
	h := (p ^ l.key) * 0x9e3779b97f4a7c15
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	s := &l.slots[h&(errSlots-1)]
	if !s.used || s.prefix != p {
		*s = srcBucket{prefix: p}
	}
	return s
}

// allow takes a token for source a at time n, if both its /64's bucket
// and the site-wide one have one.
func (l *errLimiter) allow(a netip.Addr, n nanotime) bool {
	s := l.slot(a)
	l.all.refill(n, l.rate)
	s.refill(n, l.srcRate)
	if l.all.tokens < 1 || s.tokens < 1 {
		return false
	}
	l.all.tokens--
	s.tokens--
	return true
}

// errAllowed takes a token for an Error or R1bis to peer.
func (e *Engine) errAllowed(peer netip.Addr) bool {
	if !e.errLim.allow(peer, nt(e.now)) {
		e.stats.Drops[DropRateLimited]++
		return false
	}
	return true
}

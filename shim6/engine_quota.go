package shim6

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Contexts a remote host can make us create, and what happens when the
// table is full.
//
// One R1 or R1bis lets its receiver create contexts at will: the R1bis
// validator binds only the Packet Context Tag and the locator pair
// (RFC 5533 §7.17.1), so I2bis messages with other FIIs or ULID pairs each
// create a context, and R1s cost the sender one I1 each. So contexts
// created by a received I2 or I2bis are counted per sending locator
// (MaxContextsPerPeerLocator) and per sending /64
// (MaxContextsPerPeerPrefix); beyond either the message is dropped
// before any verification (DropSourceQuota). At MaxContexts the least
// recently used context that is not established or is idle is evicted
// for the new one (Stats.Evictions); only when none of the
// evictScan least recently used contexts qualifies is the new one
// refused (DropContextLimit). An evicted context that is still wanted is
// rebuilt through R1bis/I2bis (RFC 5533 §7.17) when traffic resumes.

// Defaults of the per-source quotas: generous for a busy peer host or
// site (a peer host talking to 1024 of our hosts at once), small against
// MaxContexts; the table itself is protected by eviction.
const (
	DefaultMaxContextsPerPeerLocator = 1024
	DefaultMaxContextsPerPeerPrefix  = 8192
)

// evictScan bounds the contexts looked at, from the least recently used
// one, to find one to evict.
const evictScan = 64

// evictIdleAfter: an established context that carried traffic is idle
// (evictable) once it carried none for this long; one that never carried
// any is idle at once.
const evictIdleAfter = 30 * time.Second

// lruList is an intrusive list of every stored context, least recently
// used first.
type lruList struct{ head, tail *context }

func (l *lruList) pushBack(c *context) {
	c.lruPrev, c.lruNext = l.tail, nil
	if l.tail != nil {
		l.tail.lruNext = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *lruList) unlink(c *context) {
	if c.lruPrev != nil {
		c.lruPrev.lruNext = c.lruNext
	} else if l.head == c {
		l.head = c.lruNext
	} else {
		return // not linked
	}
	if c.lruNext != nil {
		c.lruNext.lruPrev = c.lruPrev
	} else {
		l.tail = c.lruPrev
	}
	c.lruPrev, c.lruNext = nil, nil
}

// touch marks c as just used (a stored context: removed ones are unlinked).
func (e *Engine) touch(c *context) {
	if e.lru.tail == c || (c.lruPrev == nil && e.lru.head != c) {
		return
	}
	e.lru.unlink(c)
	e.lru.pushBack(c)
}

func prefix64(a netip.Addr) uint64 {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8])
}

// quotaFull reports whether one more context created by a message from
// src would exceed the per-locator or per-/64 quota.
func (e *Engine) quotaFull(src netip.Addr) bool {
	return e.byOrigin[src] >= e.cfg.MaxContextsPerPeerLocator ||
		e.byOriginPrefix[prefix64(src)] >= e.cfg.MaxContextsPerPeerPrefix
}

// setOrigin counts c against the quotas of src, the locator whose I2 or
// I2bis created it.
func (e *Engine) setOrigin(c *context, src netip.Addr) {
	c.origin = src
	e.byOrigin[src]++
	e.byOriginPrefix[prefix64(src)]++
}

// clearOrigin releases c's quota.
func (e *Engine) clearOrigin(c *context) {
	if !c.origin.IsValid() {
		return
	}
	if n := e.byOrigin[c.origin] - 1; n > 0 {
		e.byOrigin[c.origin] = n
	} else {
		delete(e.byOrigin, c.origin)
	}
	p := prefix64(c.origin)
	if n := e.byOriginPrefix[p] - 1; n > 0 {
		e.byOriginPrefix[p] = n
	} else {
		delete(e.byOriginPrefix, p)
	}
	c.origin = netip.Addr{}
}

// evictable reports whether c may make room for a new context: not
// established (setup, I2BIS-SENT recovery, hold-down) or idle.
func (e *Engine) evictable(c *context, now nanotime) bool {
	if c.state != StateEstablished {
		return true
	}
	last := max(c.lastSent, c.lastRecv)
	return last == 0 || now-last >= nanotime(evictIdleAfter)
}

// victim returns the least recently used evictable context among the
// evictScan least recently used ones, or nil.
func (e *Engine) victim() *context {
	n := nt(e.now)
	i := 0
	for c := e.lru.head; c != nil && i < evictScan; c = c.lruNext {
		if e.evictable(c, n) {
			return c
		}
		i++
	}
	return nil
}

// roomFor reports whether a new context fits, evicting a victim when the
// table is full and evict is set; otherwise it counts the refusal.
func (e *Engine) roomFor(local, peer netip.Addr, reason string, evict bool) bool {
	if !e.full() {
		return true
	}
	v := e.victim()
	if v == nil {
		e.refuseContext(local, peer, reason)
		return false
	}
	if evict {
		e.stats.Evictions++
		e.remove(v, "evicted")
	}
	return true
}

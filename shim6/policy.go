package shim6

import (
	"net/netip"
	"time"
)

// pendingPair counts outbound traffic for a ULID pair without a context
// until the initiation policy is met.
type pendingPair struct {
	first, last nanotime
	packets     int
}

// HandleTraffic tells the engine that a local host sent traffic to peer
// and no context exists for the pair (the data plane rate-limits these
// calls). When the Policy says the flow is worth it, the engine sends an
// I1 (RFC 5533 §7.7; deferred context establishment, §1.1).
func (e *Engine) HandleTraffic(now time.Time, local, peer netip.Addr) *Actions {
	e.begin(now)
	e.traffic(local, peer)
	return e.end()
}

func (e *Engine) traffic(local, peer netip.Addr) {
	if e.byULID[local] == nil || !validUnicast(peer) || e.byULID[peer] != nil {
		return
	}
	k := pairKey{local: local, peer: peer}
	if e.byPair[k] != nil {
		return
	}
	n := nt(e.now)
	p, ok := e.pending[k]
	if !ok || n-p.last > nanotime(e.pol.Window) {
		p = pendingPair{first: n}
	}
	p.last = n
	p.packets++
	if p.packets >= e.pol.InitiateAfterNotices || (e.pol.InitiateAfter > 0 && n-p.first >= nanotime(e.pol.InitiateAfter)) {
		delete(e.pending, k)
		e.initiate(local, peer)
		return
	}
	if !ok && len(e.pending) >= e.pol.MaxPending {
		e.sweepPending(n)
		if len(e.pending) >= e.pol.MaxPending {
			return // full of live flows: this one waits
		}
	}
	e.pending[k] = p
}

// sweepPending forgets pairs not seen within the window.
func (e *Engine) sweepPending(n nanotime) {
	for k, p := range e.pending {
		if n-p.last > nanotime(e.pol.Window) {
			delete(e.pending, k)
		}
	}
}

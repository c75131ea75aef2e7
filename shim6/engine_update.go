package shim6

import (
	"fmt"
	"net/netip"
	"time"
)

// pendingUpdate is our outstanding Update Request (RFC 5533 §10.2, §10.3):
// at most one per context, retransmitted with backoff until acknowledged.
type pendingUpdate struct {
	nonce   uint32
	retries uint8
	next    nanotime
}

// UpdateLocalHost replaces the locator set (and PDS) of a local host, e.g.
// after the site's prefix set changed, and sends an Update Request to the
// peer of every established context of that host (RFC 5533 §10.1).
func (e *Engine) UpdateLocalHost(now time.Time, lh LocalHost) (*Actions, error) {
	return e.UpdateLocalHosts(now, []LocalHost{lh})
}

// UpdateLocalHosts is UpdateLocalHost for many hosts at once, with one pass
// over the contexts.
func (e *Engine) UpdateLocalHosts(now time.Time, lhs []LocalHost) (*Actions, error) {
	e.begin(now)
	var firstErr error
	for _, lh := range lhs {
		old := e.byULID[lh.ULID]
		if old == nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("%w: unknown ULID %v", ErrConfig, lh.ULID)
			}
			continue
		}
		h, err := e.newHost(lh)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, l := range old.locs {
			delete(e.byLocator, l)
		}
		// Keep the host pointer (contexts share it); its slices are
		// replaced, never mutated, so published updates stay valid. A new
		// list gets a new generation (RFC 5533 §10.1).
		gen := old.generation + 1 + e.rng.Uint32()%1024
		*old = *h
		old.generation = gen
		old.dirty = true
		for _, l := range old.locs {
			e.byLocator[l] = old
		}
	}
	e.updateDirtyHosts()
	return e.end(), firstErr
}

// SetLocatorPreference sets the preference of one local locator (e.g. the
// operator drains it with FlagBroken) and tells every peer with an Update
// Request carrying Locator Preferences (RFC 5533 §10.1).
func (e *Engine) SetLocatorPreference(now time.Time, locator netip.Addr, pref LocatorPreference) *Actions {
	e.begin(now)
	if h := e.byLocator[locator]; h != nil {
		e.setPref(h, h.index(locator), pref)
	}
	e.updateDirtyHosts()
	return e.end()
}

// SetUplinkPreference sets the preference of every local locator on an
// uplink (drain or restore a whole provider) with one pass over the
// contexts.
func (e *Engine) SetUplinkPreference(now time.Time, uplink string, pref LocatorPreference) *Actions {
	e.begin(now)
	if u := e.uplinkIndex(uplink); u >= 0 {
		for _, h := range e.hosts {
			for i := range h.locs {
				if h.uplink[i] == u {
					e.setPref(h, i, pref)
				}
			}
		}
	}
	e.updateDirtyHosts()
	return e.end()
}

func (e *Engine) setPref(h *host, i int, pref LocatorPreference) {
	if h.prefs[i] == pref {
		return
	}
	prefs := append([]LocatorPreference(nil), h.prefs...)
	prefs[i] = pref
	h.prefs = prefs
	h.dirty = true
}

// updateDirtyHosts sends Update Requests for every established context of
// a changed host.
func (e *Engine) updateDirtyHosts() {
	any := false
	for _, h := range e.hosts {
		any = any || h.dirty
	}
	if !any {
		return
	}
	for _, c := range e.byTag {
		if !c.host.dirty || c.state != StateEstablished {
			continue
		}
		if !c.localOK(c.lp) || !e.locUsable(c.host, c.host.index(c.lp)) {
			// Our current locator is gone or drained: explore.
			e.startExploring(c, "local locator changed", false)
		}
		// A newer request replaces the outstanding one (RFC 5533 §10.3).
		c.upd = &pendingUpdate{nonce: e.rng.Uint32()}
		e.sendUpdate(c)
		e.publish(c)
		e.reschedule(c)
	}
	for _, h := range e.hosts {
		h.dirty = false
	}
}

// sendUpdate (re)sends the Update Request with the full current list and
// preferences, then sets the backoff: UPDATE_TIMEOUT doubled per retry,
// randomized, capped at MAX_UPDATE_TIMEOUT, forever (RFC 5533 §10.2).
func (e *Engine) sendUpdate(c *context) {
	u := c.upd
	h := c.host
	start := len(e.out.buf)
	e.out.buf = AppendUpdateRequest(e.out.buf, c.peerTag, u.nonce)
	e.out.buf = AppendLocatorList(e.out.buf, h.generation, h.methods, h.locs)
	e.out.buf = AppendLocatorPreferences(e.out.buf, h.generation, 3, h.prefs)
	if len(h.pds) > 0 {
		e.out.buf = AppendCGAPDS(e.out.buf, h.pds)
	}
	e.emit(e.updateSource(c), c.pp, start)
	e.payloadOut(c, nt(e.now)) // control messages count as payload (RFC 5534 §6.1)
	d := e.backoff(e.t.UpdateTimeout, u.retries)
	if d > nanotime(e.t.MaxUpdateTimeout) {
		d = nanotime(e.t.MaxUpdateTimeout)
	}
	if u.retries < 30 {
		u.retries++
	}
	u.next = nt(e.now) + d
}

// updateSource is the source of an Update Request: the current local
// locator, or, when the new list dropped it (an uplink withdrawn), a
// usable one that stays. The peer acknowledges to the source (RFC 5533
// §10.4), and an Update Ack to a locator we no longer own would be
// dropped, leaving the request to be retransmitted.
func (e *Engine) updateSource(c *context) netip.Addr {
	h := c.host
	if h.index(c.lp) >= 0 {
		return c.lp
	}
	for i, l := range h.locs {
		if e.locUsable(h, i) {
			return l
		}
	}
	return c.lp
}

// onUpdateRequest applies the peer's new locators or preferences and
// acknowledges them (RFC 5533 §10.4).
func (e *Engine) onUpdateRequest(src, dst netip.Addr, m Message) {
	ur := UpdateRequest(m)
	c := e.contextFor(src, dst, m.Type(), ur.ReceiverTag(), false)
	if c == nil {
		return
	}
	if c.state == StateEstablished {
		e.payloadIn(c, nt(e.now)) // RFC 5534 §6.1
	}
	ps, ok := e.peerSetFrom(src, dst, m, c.peerULID, c.peer)
	if !ok {
		return
	}
	if _, _, hasList := m.Option(OptLocatorList); !hasList {
		// Preferences alone refer to the current list (Error 3/4 checks).
		if po, poff, ok := m.Option(OptLocatorPreferences); ok {
			lp, _ := po.LocatorPreferences()
			cur := c.peer
			if !cur.hasGen || lp.Generation() != cur.generation {
				e.stats.Drops[DropBadPreferences]++
				e.sendError(dst, src, CodeGenerationMismatch, poff+LocatorPreferencesGenerationOffset, m)
				return
			}
			if lp.Count() != len(cur.locs) {
				e.stats.Drops[DropBadPreferences]++
				e.sendError(dst, src, CodeElementCountInvalid, poff+LocatorPreferencesLengthOffset, m)
				return
			}
			n := &peerSet{locs: cur.locs, methods: cur.methods, generation: cur.generation, hasGen: true, pds: cur.pds}
			n.prefs = make([]LocatorPreference, len(cur.locs))
			for i := range n.prefs {
				n.prefs[i] = lp.Element(i)
			}
			ps = n
		}
	}
	if kat := kaTimeoutOpt(m); kat > 0 {
		c.kaTimeout = kat
	}
	changed := !samePeerSet(ps, c.peer) || ps != c.peer
	c.peer = ps
	start := len(e.out.buf)
	e.out.buf = AppendUpdateAck(e.out.buf, c.peerTag, ur.RequestNonce())
	e.emit(dst, src, start)
	if c.state == StateEstablished {
		e.payloadOut(c, nt(e.now))
	}
	if changed {
		e.event(EventLocatorsUpdated, c, 0, "")
		e.publish(c)
		if i := ps.index(c.pp); i < 0 || ps.broken(i) {
			// Lp(peer) is gone or BROKEN: find another pair with REAP
			// before switching (RFC 5533 §10.4).
			e.startExploring(c, "peer locator update", false)
		}
	}
	e.reschedule(c)
}

// onUpdateAck ends our outstanding request if the nonce matches (RFC 5533
// §10.5).
func (e *Engine) onUpdateAck(src, dst netip.Addr, m Message) {
	ua := UpdateAck(m)
	c := e.contextFor(src, dst, m.Type(), ua.ReceiverTag(), false)
	if c == nil {
		return
	}
	if c.state == StateEstablished {
		e.payloadIn(c, nt(e.now)) // RFC 5534 §6.1
	}
	if c.upd == nil || c.upd.nonce != ua.RequestNonce() {
		e.stats.Drops[DropNoContext]++
		e.reschedule(c)
		return
	}
	c.upd = nil
	e.reschedule(c)
}

// onError handles a peer's Error message (RFC 5533 §5.14). An "unknown
// message type" about our I1 means the peer does not do Shim6.
func (e *Engine) onError(src, dst netip.Addr, m Message) {
	em := ErrorMessage(m)
	qsrc, qdst, shim, ok := quotedShim6(em.Packet())
	if !ok || len(shim) < 12 {
		e.stats.Drops[DropNoContext]++
		return
	}
	qm := Message(shim)
	ev := Event{Kind: EventPeerError, Code: em.Code(), LocalLocator: dst, PeerLocator: src}
	if qm[offType]&0x80 == 0 && Type(qm[offType]&0x7f) == TypeI1 {
		tag := I1(qm).InitiatorTag()
		if c := e.byTag[tag]; c != nil && c.state == StateI1Sent && c.hs != nil &&
			(!qsrc.IsValid() || (qsrc == c.hs.src && qdst == c.hs.dst)) && src == c.hs.dst {
			ev.LocalULID, ev.PeerULID, ev.LocalTag = c.host.ulid, c.peerULID, c.localTag
			e.out.Events = append(e.out.Events, ev)
			if em.Code() == CodeUnknownType {
				e.fail(c, StateNoSupport, e.t.ICMPHolddownTime, "error: unknown message type")
			}
			return
		}
	}
	e.out.Events = append(e.out.Events, ev)
}

// ICMPv6 types and codes the engine acts on (RFC 4443, RFC 5533 §8).
const (
	icmpDestUnreach  = 1
	icmpTimeExceeded = 3
	icmpParamProblem = 4
	icmpUnrecNextHdr = 1
)

// HandleICMP processes an ICMPv6 error with the invoking packet it quotes
// (from its IPv6 header). A Parameter Problem "unrecognized Next Header"
// about our I1 means the peer has no Shim6: NO-SUPPORT, held for
// ICMP_HOLDDOWN_TIME (RFC 5533 §6.2, §7.8; App. B says E-FAILED, we follow
// §6.2). A Destination Unreachable or Time Exceeded about payload on a
// context's current pair starts exploration at once (RFC 5533 §8).
func (e *Engine) HandleICMP(now time.Time, typ, code uint8, quoted []byte) *Actions {
	e.begin(now)
	qsrc, qdst, shim, ok := quotedShim6(quoted)
	if ok && qsrc.IsValid() && len(shim) >= 8 {
		switch {
		case typ == icmpParamProblem && code == icmpUnrecNextHdr && shim[offType]&0x80 == 0 &&
			Type(shim[offType]&0x7f) == TypeI1 && len(shim) >= 16:
			c := e.byTag[I1(shim).InitiatorTag()]
			if c != nil && c.state == StateI1Sent && c.hs != nil && c.hs.src == qsrc && c.hs.dst == qdst {
				e.fail(c, StateNoSupport, e.t.ICMPHolddownTime, "icmp parameter problem")
			}
		case (typ == icmpDestUnreach && code != 4) || typ == icmpTimeExceeded:
			if shim[offType]&0x80 != 0 {
				tag := PayloadHeader(shim).Tag()
				for x := e.byPeerTag[tag]; x != nil; x = x.nextPeerTag {
					if x.state == StateEstablished && x.lp == qsrc && x.pp == qdst {
						e.startExploring(x, "icmp unreachable", true)
						break
					}
				}
			}
		}
	}
	return e.end()
}

package shim6

import (
	"net/netip"
	"time"
)

// HandleControl processes one received control message (the whole Shim6
// header, already taken out of its IPv6 packet) sent from src to dst.
func (e *Engine) HandleControl(now time.Time, src, dst netip.Addr, b []byte) *Actions {
	e.begin(now)
	e.handleControl(src, dst, b)
	return e.end()
}

func (e *Engine) handleControl(src, dst netip.Addr, b []byte) {
	m, err := ParseMessage(b)
	if err != nil {
		code, ptr, ok := ErrorResponse(err)
		if !ok {
			e.stats.Drops[DropMalformed]++
			return
		}
		if code == CodeUnknownType {
			e.stats.Drops[DropUnknownType]++
		} else {
			e.stats.Drops[DropCriticalOption]++
		}
		if e.byLocator[dst] != nil && validUnicast(src) {
			e.sendError(dst, src, code, ptr, b)
		}
		return
	}
	e.stats.Rx[m.Type()]++
	if !validUnicast(src) || !validUnicast(dst) {
		e.stats.Drops[DropBadAddress]++ // RFC 5533 §12.3
		return
	}
	if e.byLocator[dst] == nil {
		e.stats.Drops[DropBadAddress]++
		return
	}
	switch m.Type() {
	case TypeI1:
		e.onI1(src, dst, m)
	case TypeR1:
		e.onR1(src, dst, m)
	case TypeI2:
		e.onI2(src, dst, m, false)
	case TypeR2:
		e.onR2(src, dst, m)
	case TypeR1bis:
		e.onR1bis(src, dst, m)
	case TypeI2bis:
		e.onI2(src, dst, m, true)
	case TypeUpdateRequest:
		e.onUpdateRequest(src, dst, m)
	case TypeUpdateAck:
		e.onUpdateAck(src, dst, m)
	case TypeKeepalive:
		e.onKeepalive(src, dst, m)
	case TypeProbe:
		e.onProbe(src, dst, m)
	case TypeError:
		e.onError(src, dst, m)
	}
}

func validUnicast(a netip.Addr) bool {
	return a.Is6() && !a.IsUnspecified() && !a.IsMulticast()
}

// ulids returns the ULID pair of an I1/I2/I2bis from its ULID Pair option
// or the addresses (RFC 5533 §12.4), from the receiver's view, and the FII.
func ulids(src, dst netip.Addr, m Message) (local, peer netip.Addr, fii uint32) {
	local, peer = dst, src
	if o, _, ok := m.Option(OptULIDPair); ok {
		if s, r, ok := o.ULIDPair(); ok {
			local, peer = r, s
		}
	}
	if o, _, ok := m.Option(OptForkedInstanceID); ok {
		fii, _ = o.FII()
	}
	return local, peer, fii
}

// onI1 answers an I1 (RFC 5533 §7.9). No state is allocated.
func (e *Engine) onI1(src, dst netip.Addr, m Message) {
	i1 := I1(m)
	ulidLocal, ulidPeer, fii := ulids(src, dst, m)
	h := e.byULID[ulidLocal]
	if h == nil || h.index(dst) < 0 {
		e.stats.Drops[DropBadAddress]++
		return
	}
	c := e.byPair[pairKey{ulidLocal, ulidPeer, fii}]
	if c != nil && (c.state == StateEFailed || c.state == StateNoSupport) {
		// The peer speaks Shim6 after all: forget the hold-down.
		e.remove(c, "peer initiated")
		c = nil
	}
	if c == nil {
		e.sendR1(src, dst, i1.InitiatorTag(), i1.InitiatorNonce(), ulidLocal, ulidPeer, fii)
		return
	}
	switch c.state {
	case StateI1Sent, StateI2Sent, StateI2bisSent:
		// Crossing I1s (RFC 5533 §7.4, §7.9): R2 with our tag, the peer's
		// nonce; CT(peer) unchanged. The ULID Pair option is not
		// authenticated, so CT(local) goes only to ULID(peer) or a locator
		// in Ls(peer); anyone else gets the stateless R1, which costs us
		// nothing and tells them nothing.
		if src == c.peerULID || c.peerOK(src) {
			e.sendR2(c, dst, src, i1.InitiatorNonce())
		} else {
			e.sendR1(src, dst, i1.InitiatorTag(), i1.InitiatorNonce(), ulidLocal, ulidPeer, fii)
		}
	case StateEstablished:
		if c.peerOK(src) && c.peerTag == i1.InitiatorTag() {
			e.sendR2(c, dst, src, i1.InitiatorNonce()) // our R2 was lost
		} else {
			// The peer lost its state and starts over.
			e.sendR1(src, dst, i1.InitiatorTag(), i1.InitiatorNonce(), ulidLocal, ulidPeer, fii)
		}
	}
}

func (e *Engine) sendR1(src, dst netip.Addr, itag ContextTag, inonce uint32, ulidLocal, ulidPeer netip.Addr, fii uint32) {
	rnonce := e.val.nonce(e.now)
	v := e.val.r1(e.tmpVal[:0], rnonce, itag, ulidLocal, ulidPeer, dst, src, fii)
	start := len(e.out.buf)
	e.out.buf = AppendR1(e.out.buf, inonce, rnonce)
	e.out.buf = AppendResponderValidator(e.out.buf, v)
	e.emit(dst, src, start)
}

// onR1 continues our setup (RFC 5533 §7.11).
func (e *Engine) onR1(src, dst netip.Addr, m Message) {
	r1 := R1(m)
	c := e.byNonce[r1.InitiatorNonce()]
	if c == nil || c.state != StateI1Sent || c.hs == nil || src != c.hs.dst || dst != c.hs.src {
		e.stats.Drops[DropNoContext]++
		return
	}
	v, ok := e.peerValidator(m)
	if !ok {
		return
	}
	c.hs.validator = append(c.hs.validator[:0], v...)
	c.hs.rnonce = r1.ResponderNonce()
	c.state = StateI2Sent
	c.retries = 0
	e.sendI2(c)
	e.schedule(c, nt(e.now)+e.backoff(e.t.I2Timeout, 0))
}

// onI2 handles I2 and I2bis (RFC 5533 §7.13, §7.20): check the validator,
// verify the peer's locators, create or update the context, answer R2.
func (e *Engine) onI2(src, dst netip.Addr, m Message, bis bool) {
	var itag ContextTag
	var inonce, rnonce uint32
	var ptag ContextTag
	if bis {
		x := I2bis(m)
		itag, inonce, rnonce, ptag = x.InitiatorTag(), x.InitiatorNonce(), x.ResponderNonce(), x.PacketTag()
	} else {
		x := I2(m)
		itag, inonce, rnonce = x.InitiatorTag(), x.InitiatorNonce(), x.ResponderNonce()
	}
	ulidLocal, ulidPeer, fii := ulids(src, dst, m)
	h := e.byULID[ulidLocal]
	if h == nil || h.index(dst) < 0 {
		e.stats.Drops[DropBadAddress]++
		return
	}
	o, _, ok := m.Option(OptResponderValidator)
	if !ok {
		e.stats.Drops[DropBadValidator]++
		return
	}
	got, _ := o.ResponderValidator()
	if !e.val.fresh(e.now, rnonce) {
		e.stats.Drops[DropStaleNonce]++
		return
	}
	var want []byte
	if bis {
		want = e.val.r1bis(e.tmpVal[:0], rnonce, ptag, dst, src)
	} else {
		want = e.val.r1(e.tmpVal[:0], rnonce, itag, ulidLocal, ulidPeer, dst, src, fii)
	}
	if !e.val.check(got, want) {
		e.stats.Drops[DropBadValidator]++
		return
	}
	if e.byPair[pairKey{ulidLocal, ulidPeer, fii}] == nil {
		// Before verifying the locators: a refused context costs no CGA work.
		if e.quotaFull(src) {
			e.stats.Drops[DropSourceQuota]++
			return
		}
		if !e.roomFor(ulidLocal, ulidPeer, m.Type().String(), false) {
			return
		}
	}
	ps, ok := e.peerSetFrom(src, dst, m, ulidPeer, nil)
	if !ok {
		return
	}
	if ps.index(src) < 0 {
		// The I2 must come from a locator of the (verified) set.
		e.stats.Drops[DropBadLocator]++
		return
	}
	c := e.byPair[pairKey{ulidLocal, ulidPeer, fii}]
	if (c == nil || c.peerTag != itag) && e.peerTagFull(itag, ps, c) {
		e.stats.Drops[DropNoContext]++
		return
	}
	if c != nil && (c.state == StateEFailed || c.state == StateNoSupport) {
		e.remove(c, "peer initiated")
		c = nil
	}
	kat := kaTimeoutOpt(m)
	if c == nil {
		tag := e.allocTag()
		if bis && tag == ptag {
			// RFC 5533 §7.20: not the Packet Context Tag, a new random
			// one; reserve it while drawing again.
			e.byTag[ptag] = nil
			tag = e.allocTag()
			delete(e.byTag, ptag)
		}
		if tag == 0 {
			e.stats.Drops[DropNoContext]++
			return
		}
		if !e.roomFor(ulidLocal, ulidPeer, m.Type().String(), true) {
			return
		}
		c = &context{host: h, peerULID: ulidPeer, fii: fii, created: nt(e.now), localTag: tag}
		e.insert(c)
		e.setOrigin(c, src)
	} else if c.state == StateEstablished && c.peerTag == itag && samePeerSet(c.peer, ps) {
		// A retransmitted (or replayed) I2: answer again, change nothing.
		e.sendR2(c, dst, src, inonce)
		return
	}
	wasUp := c.canSend()
	prevState := c.state
	c.peer = ps
	e.setPeerTag(c, itag)
	e.confusion(c)
	if kat > 0 {
		c.kaTimeout = kat
	}
	e.setNonce(c, 0)
	c.hs = nil
	c.retries = 0
	if !wasUp || !c.localOK(c.lp) || !c.peerOK(c.pp) {
		e.setPair(c, dst, src)
	}
	c.state = StateEstablished
	e.touch(c)
	e.sendR2(c, dst, src, inonce)
	e.publish(c)
	if !wasUp || prevState != StateEstablished {
		e.stats.Established++
		e.event(EventContextUp, c, 0, m.Type().String())
	}
	e.honourPeerPrefs(c)
	e.reschedule(c)
}

// honourPeerPrefs leaves a current peer locator the peer marked BROKEN
// (RFC 5533 §5.15.3) through REAP, which checks the new pair first.
func (e *Engine) honourPeerPrefs(c *context) {
	if c.state == StateEstablished && c.peer.broken(c.peer.index(c.pp)) {
		e.startExploring(c, "peer locator broken", false)
	}
}

func kaTimeoutOpt(m Message) time.Duration {
	if o, _, ok := m.Option(OptKeepaliveTimeout); ok {
		if s, ok := o.KeepaliveTimeout(); ok && s > 0 {
			return time.Duration(s) * time.Second
		}
	}
	return 0
}

func samePeerSet(a, b *peerSet) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.generation != b.generation || a.hasGen != b.hasGen || len(a.locs) != len(b.locs) {
		return false
	}
	for i := range a.locs {
		if a.locs[i] != b.locs[i] {
			return false
		}
	}
	return true
}

// peerSetFrom builds Ls(peer) from a message's Locator List, Locator
// Preferences and CGA options, verifying the locators before any is used
// (RFC 5533 §7.2, §7.13). Without a list the set is the previous one, or
// {ULID(peer)}. On failure it answers Error code 2 and returns false.
func (e *Engine) peerSetFrom(src, dst netip.Addr, m Message, ulidPeer netip.Addr, prev *peerSet) (*peerSet, bool) {
	lo, loff, hasList := m.Option(OptLocatorList)
	var pds, sig []byte
	if o, _, ok := m.Option(OptCGAParameterDataStructure); ok {
		pds, _ = o.CGAPDS()
	}
	if o, _, ok := m.Option(OptCGASignature); ok {
		sig, _ = o.CGASignature()
	}
	if !hasList {
		if prev != nil {
			return prev, true
		}
		return &peerSet{locs: []netip.Addr{ulidPeer}}, true
	}
	ll, _ := lo.LocatorList()
	n := ll.Count()
	ps := &peerSet{generation: ll.Generation(), hasGen: true}
	ps.locs = make([]netip.Addr, n)
	ps.methods = make([]uint8, n)
	for i := 0; i < n; i++ {
		ps.locs[i] = ll.Locator(i)
		ps.methods[i] = ll.Method(i)
	}
	if pds == nil && prev != nil {
		pds = prev.pds // sent earlier in I2/I2bis/R2 (RFC 5533 §5.10)
	}
	if pds != nil {
		ps.pds = append([]byte(nil), pds...)
	}
	if bad, why, answer := e.verifyPeerSet(src, ulidPeer, ps, sig); bad >= 0 {
		e.stats.Drops[why]++
		// RFC 5533 §7.2: ignore the whole message, SHOULD send Error 2
		// with the Pointer at the failing locator's method octet (§5.14).
		ptr := loff + OptionHeaderLen + ll.MethodOffset(bad)
		if answer && e.byLocator[dst] != nil {
			e.sendError(dst, src, CodeVerificationFailed, ptr, m)
		}
		return nil, false
	}
	if po, poff, ok := m.Option(OptLocatorPreferences); ok {
		lp, _ := po.LocatorPreferences()
		if lp.Generation() != ps.generation {
			e.stats.Drops[DropBadPreferences]++
			e.sendError(dst, src, CodeGenerationMismatch, poff+LocatorPreferencesGenerationOffset, m)
			return nil, false
		}
		if lp.Count() != n {
			e.stats.Drops[DropBadPreferences]++
			e.sendError(dst, src, CodeElementCountInvalid, poff+LocatorPreferencesLengthOffset, m)
			return nil, false
		}
		ps.prefs = make([]LocatorPreference, n)
		for i := range n {
			ps.prefs[i] = lp.Element(i)
		}
	}
	return ps, true
}

// confusion enforces RFC 5533 §7.6, §7.15: no two contexts with the same
// CT(peer) and overlapping Ls(peer); the older one stops sending.
func (e *Engine) confusion(c *context) {
	for x := e.byPeerTag[c.peerTag]; x != nil; {
		next := x.nextPeerTag
		if x != c && (x.state == StateEstablished || x.state == StateI2bisSent) && overlap(x.peerLocs(), c.peerLocs()) {
			e.remove(x, "context confusion")
		}
		x = next
	}
}

// maxPeerTagChain bounds the contexts sharing one CT(peer) with disjoint
// Ls(peer). Peers draw tags at random from 2^47, so only a remote party
// reusing a tag on purpose gets near it, and every I2, R2 and R1bis walks
// the chain (RFC 5533 §7.15, §7.18).
const maxPeerTagChain = 64

// peerTagFull reports whether taking CT(peer) t with locators ps would
// exceed maxPeerTagChain. Contexts ps overlaps do not count: confusion
// removes them (§7.15).
func (e *Engine) peerTagFull(t ContextTag, ps *peerSet, self *context) bool {
	n := 0
	for x := e.byPeerTag[t]; x != nil; x = x.nextPeerTag {
		if x == self || overlap(x.peerLocs(), ps.locs) {
			continue
		}
		if n++; n >= maxPeerTagChain {
			return true
		}
	}
	return false
}

func overlap(a, b []netip.Addr) bool {
	for _, x := range a {
		if indexAddr(b, x) >= 0 {
			return true
		}
	}
	return false
}

// sendR2 answers an I1/I2/I2bis (RFC 5533 §7.14); R2 is never retransmitted.
func (e *Engine) sendR2(c *context, src, dst netip.Addr, inonce uint32) {
	start := len(e.out.buf)
	e.out.buf = AppendR2(e.out.buf, c.localTag, inonce)
	e.appendLocatorOptions(c.host)
	e.emit(src, dst, start)
}

// appendLocatorOptions adds our Locator List, Preferences, PDS and
// Keepalive Timeout (RFC 5533 §5.6, §5.7; RFC 5534 §5.3).
func (e *Engine) appendLocatorOptions(h *host) {
	if len(h.locs) > 1 {
		e.out.buf = AppendLocatorList(e.out.buf, h.generation, h.methods, h.locs)
		if hasPrefs(h.prefs) {
			e.out.buf = AppendLocatorPreferences(e.out.buf, h.generation, 3, h.prefs)
		}
		if len(h.pds) > 0 {
			e.out.buf = AppendCGAPDS(e.out.buf, h.pds)
		}
	}
	if e.t.SendTimeout != DefaultTimers().SendTimeout {
		e.out.buf = AppendKeepaliveTimeout(e.out.buf, e.t.KeepaliveOptionSeconds())
	}
}

func hasPrefs(p []LocatorPreference) bool {
	for _, x := range p {
		if x != (LocatorPreference{}) {
			return true
		}
	}
	return false
}

// onR2 completes our setup (RFC 5533 §7.16).
func (e *Engine) onR2(src, dst netip.Addr, m Message) {
	r2 := R2(m)
	c := e.byNonce[r2.InitiatorNonce()]
	if c == nil || c.hs == nil || src != c.hs.dst || dst != c.hs.src {
		e.stats.Drops[DropNoContext]++
		return
	}
	if c.state != StateI1Sent && c.state != StateI2Sent && c.state != StateI2bisSent {
		e.stats.Drops[DropWrongState]++
		return
	}
	ps, ok := e.peerSetFrom(src, dst, m, c.peerULID, c.peer)
	if !ok {
		return
	}
	if ps.index(src) < 0 {
		e.stats.Drops[DropBadLocator]++
		return
	}
	if c.peerTag != r2.ResponderTag() && e.peerTagFull(r2.ResponderTag(), ps, c) {
		e.stats.Drops[DropNoContext]++
		return
	}
	bis := c.state == StateI2bisSent
	c.peer = ps
	e.setPeerTag(c, r2.ResponderTag())
	e.confusion(c)
	if kat := kaTimeoutOpt(m); kat > 0 {
		c.kaTimeout = kat
	}
	e.setNonce(c, 0)
	c.hs = nil
	c.retries = 0
	e.setPair(c, dst, src)
	c.state = StateEstablished
	e.touch(c)
	e.publish(c)
	if bis {
		e.stats.Recoveries++
		e.event(EventRecovery, c, 0, "I2bis")
	} else {
		e.stats.Established++
		e.event(EventContextUp, c, 0, "R2")
	}
	e.honourPeerPrefs(c)
	e.reschedule(c)
}

// HandleUnknownTag is called for a payload packet whose context tag the
// fast table does not know. It answers R1bis (RFC 5533 §7.17) or, for a
// context in I2-SENT/I2BIS-SENT, repeats the I2/I2bis (RFC 5533 §12.2).
func (e *Engine) HandleUnknownTag(now time.Time, src, dst netip.Addr, tag ContextTag) *Actions {
	e.begin(now)
	e.unknownTag(src, dst, tag)
	return e.end()
}

func (e *Engine) unknownTag(src, dst netip.Addr, tag ContextTag) {
	if c := e.byTag[tag]; c != nil {
		switch c.state {
		case StateI2Sent:
			e.sendI2(c)
			return
		case StateI2bisSent:
			e.sendI2bis(c)
			return
		case StateEstablished:
			if c.peerOK(src) && c.localOK(dst) {
				return // the fast table is catching up
			}
		case StateI1Sent:
			return // RFC 5533 §12.2: drop
		}
	}
	if e.byLocator[dst] == nil || !validUnicast(src) {
		e.stats.Drops[DropBadAddress]++
		return
	}
	if !e.errAllowed(src) {
		return
	}
	rnonce := e.val.nonce(e.now)
	v := e.val.r1bis(e.tmpVal[:0], rnonce, tag, dst, src)
	start := len(e.out.buf)
	e.out.buf = AppendR1bis(e.out.buf, tag, rnonce)
	e.out.buf = AppendResponderValidator(e.out.buf, v)
	e.emit(dst, src, start)
}

// onR1bis starts recovery of a context the peer lost (RFC 5533 §7.18).
func (e *Engine) onR1bis(src, dst netip.Addr, m Message) {
	r := R1bis(m)
	var c *context
	for x := e.byPeerTag[r.PacketTag()]; x != nil; x = x.nextPeerTag {
		if x.state == StateEstablished && x.peerOK(src) && x.localOK(dst) {
			c = x
			break
		}
	}
	if c == nil {
		e.stats.Drops[DropNoContext]++
		return
	}
	v, ok := e.peerValidator(m)
	if !ok {
		return
	}
	c.hs = &handshake{validator: append([]byte(nil), v...), rnonce: r.ResponderNonce(),
		packetTag: r.PacketTag(), src: dst, dst: src}
	e.setNonce(c, e.allocNonce())
	c.state = StateI2bisSent
	c.retries = 0
	c.ex = nil
	c.reap = StaOperational
	e.sendI2bis(c)
	e.schedule(c, nt(e.now)+e.backoff(e.t.I2bisTimeout, 0))
}

// initiate starts a context with an I1 (RFC 5533 §7.7).
func (e *Engine) initiate(local, peer netip.Addr) {
	h := e.byULID[local]
	if h == nil || !validUnicast(peer) || e.byULID[peer] != nil {
		return
	}
	if c := e.byPair[pairKey{local, peer, 0}]; c != nil {
		return // exists, or held down (E-FAILED / NO-SUPPORT)
	}
	tag := e.allocTag()
	if tag == 0 || !e.roomFor(local, peer, "initiate", true) {
		return
	}
	c := &context{host: h, peerULID: peer, created: nt(e.now), flags: flagInitiator, localTag: tag}
	e.insert(c)
	e.restartI1(c)
}

// restartI1 (re)starts the setup with an I1 (RFC 5533 §7.12, §7.19).
func (e *Engine) restartI1(c *context) {
	if c.canSend() && c.flags&flagPublished != 0 {
		// Stop payload until the new setup completes (RFC 5533 §11).
		e.out.Updates = append(e.out.Updates, ContextUpdate{LocalULID: c.host.ulid, PeerULID: c.peerULID,
			FII: c.fii, LocalTag: c.localTag, PeerTag: c.peerTag, Removed: true})
		c.flags &^= flagPublished
	}
	e.pathForget(c)
	c.state = StateI1Sent
	c.retries = 0
	c.ex = nil
	c.reap = StaOperational
	src := e.initiatorSource(c.host)
	c.hs = &handshake{src: src, dst: c.peerULID}
	e.setNonce(c, e.allocNonce())
	e.sendI1(c)
	e.schedule(c, nt(e.now)+e.backoff(e.t.I1Timeout, 0))
}

func (e *Engine) locUsable(h *host, i int) bool {
	if i < 0 {
		return false
	}
	u := h.uplink[i]
	return (u < 0 || !e.down[u]) && h.prefs[i].Flags&FlagBroken == 0
}

// initiatorSource picks the locator to send an I1 from: the ULID, or, when
// its uplink is down, a locator on a live one, with the ULID Pair option
// (RFC 5533 §5.4).
func (e *Engine) initiatorSource(h *host) netip.Addr {
	if e.locUsable(h, h.index(h.ulid)) {
		return h.ulid
	}
	for i, l := range h.locs {
		if e.locUsable(h, i) {
			return l
		}
	}
	return h.ulid
}

func (e *Engine) sendI1(c *context) {
	if !e.locUsable(c.host, c.host.index(c.hs.src)) {
		c.hs.src = e.initiatorSource(c.host) // the uplink went down meanwhile
	}
	start := len(e.out.buf)
	e.out.buf = AppendI1(e.out.buf, c.localTag, c.inonce)
	if c.hs.src != c.host.ulid || c.hs.dst != c.peerULID {
		e.out.buf = AppendULIDPair(e.out.buf, c.host.ulid, c.peerULID)
	}
	if c.fii != 0 {
		e.out.buf = AppendFII(e.out.buf, c.fii) // RFC 5533 §7.7
	}
	e.emit(c.hs.src, c.hs.dst, start)
}

func (e *Engine) sendI2(c *context) {
	if c.hs == nil {
		return
	}
	start := len(e.out.buf)
	e.out.buf = AppendI2(e.out.buf, c.localTag, c.inonce, c.hs.rnonce)
	e.out.buf = AppendResponderValidator(e.out.buf, c.hs.validator)
	if c.hs.src != c.host.ulid || c.hs.dst != c.peerULID {
		e.out.buf = AppendULIDPair(e.out.buf, c.host.ulid, c.peerULID)
	}
	if c.fii != 0 {
		e.out.buf = AppendFII(e.out.buf, c.fii) // RFC 5533 §7.11
	}
	e.appendLocatorOptions(c.host)
	e.emit(c.hs.src, c.hs.dst, start)
}

func (e *Engine) sendI2bis(c *context) {
	if c.hs == nil {
		return
	}
	start := len(e.out.buf)
	e.out.buf = AppendI2bis(e.out.buf, c.localTag, c.inonce, c.hs.rnonce, c.hs.packetTag)
	e.out.buf = AppendResponderValidator(e.out.buf, c.hs.validator)
	if c.hs.src != c.host.ulid || c.hs.dst != c.peerULID {
		e.out.buf = AppendULIDPair(e.out.buf, c.host.ulid, c.peerULID)
	}
	if c.fii != 0 {
		e.out.buf = AppendFII(e.out.buf, c.fii)
	}
	e.appendLocatorOptions(c.host)
	e.emit(c.hs.src, c.hs.dst, start)
}

// sendError sends an Error message quoting the invoking packet from its
// IPv6 header (RFC 5533 §5.14), rate-limited.
func (e *Engine) sendError(src, dst netip.Addr, code ErrorCode, ptr int, msg []byte) {
	if len(msg) > offType && msg[offType]&0x80 == 0 && Type(msg[offType]&0x7f) == TypeError {
		// Error messages are unacknowledged (RFC 5533 §5.14); answering
		// one could loop between two implementations (cf. RFC 4443
		// §2.4(e)).
		return
	}
	if !e.errAllowed(dst) {
		return
	}
	q := e.scratch[:0]
	q = append(q, make([]byte, IPv6HeaderLen)...)
	PutIPv6Header(q, dst, src, ProtocolNumber, len(msg))
	q = append(q, msg...)
	e.scratch = q
	start := len(e.out.buf)
	e.out.buf = AppendError(e.out.buf, code, uint16(ptr+IPv6HeaderLen), q)
	e.emit(src, dst, start)
}

// quotedShim6 finds the Shim6 header in a quoted packet that starts at the
// IPv6 header (or, leniently, at the Shim6 header).
func quotedShim6(q []byte) (src, dst netip.Addr, shim []byte, ok bool) {
	if len(q) >= IPv6HeaderLen && q[0]>>4 == 6 && q[6] == ProtocolNumber {
		src = netip.AddrFrom16([16]byte(q[8:24]))
		dst = netip.AddrFrom16([16]byte(q[24:40]))
		return src, dst, q[IPv6HeaderLen:], true
	}
	if len(q) >= 8 && q[0] == NoNextHeader {
		return netip.Addr{}, netip.Addr{}, q, true
	}
	return netip.Addr{}, netip.Addr{}, nil, false
}

// peerValidator returns the Responder Validator an R1 or R1bis carries, for
// the I2 or I2bis to echo (RFC 5533 §7.11, §7.18), counting why it is not
// usable.
func (e *Engine) peerValidator(m Message) ([]byte, bool) {
	o, _, ok := m.Option(OptResponderValidator)
	if !ok {
		e.stats.Drops[DropMalformed]++
		return nil, false
	}
	v, _ := o.ResponderValidator()
	if len(v) > maxPeerValidator {
		e.stats.Drops[DropBadValidatorLen]++
		return nil, false
	}
	return v, true
}

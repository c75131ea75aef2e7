package shim6

import (
	"net/netip"
	"time"
)

// State is a context state (RFC 5533 §6.2). IDLE contexts are not stored.
type State uint8

// Context states.
const (
	StateIdle State = iota
	StateI1Sent
	StateI2Sent
	StateI2bisSent
	StateEstablished
	StateEFailed
	StateNoSupport
)

var stateNames = [...]string{"IDLE", "I1-SENT", "I2-SENT", "I2BIS-SENT", "ESTABLISHED", "E-FAILED", "NO-SUPPORT"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// nanotime is a time as Unix nanoseconds; 8 bytes instead of time.Time's 24
// keeps contexts small.
type nanotime int64

func nt(t time.Time) nanotime { return nanotime(t.UnixNano()) }

func (n nanotime) time() time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

// pairKey identifies a context by ULID pair and FII (RFC 5533 §12.4).
type pairKey struct {
	local, peer netip.Addr
	fii         uint32
}

// peerSet is the peer's locator set Ls(peer) with its preferences and PDS.
// It is immutable once built: updates make a new one, so published
// ContextUpdate slices stay valid.
type peerSet struct {
	locs       []netip.Addr
	methods    []uint8
	prefs      []LocatorPreference
	generation uint32
	hasGen     bool // a Locator List was received (else the set is {ULID})
	pds        []byte
}

func (p *peerSet) index(a netip.Addr) int {
	for i, l := range p.locs {
		if l == a {
			return i
		}
	}
	return -1
}

func (p *peerSet) broken(i int) bool {
	return i >= 0 && i < len(p.prefs) && p.prefs[i].Flags&FlagBroken != 0
}

// handshake is the setup state kept only while I1/I2/I2bis are pending.
type handshake struct {
	validator []byte
	rnonce    uint32
	packetTag ContextTag // I2bis: Packet Context Tag from the R1bis
	src, dst  netip.Addr // locator pair the exchange runs on
}

// context is one Shim6 context (RFC 5533 §6.1). Rarely used parts live
// behind pointers allocated only while needed, to keep it small.
type context struct {
	host     *host
	peerULID netip.Addr
	fii      uint32

	state   State
	reap    Sta
	retries uint8
	flags   uint8

	localTag ContextTag
	peerTag  ContextTag
	inonce   uint32 // Initiator Nonce of our pending I1/I2/I2bis

	lp, pp netip.Addr // current locator pair Lp(local), Lp(peer)
	peer   *peerSet

	kaTimeout time.Duration // peer's Send Timeout (RFC 5534 §5.3)

	// Traffic stamps from the data plane (RFC 5534 §4.1).
	lastSent, lastRecv nanotime
	lastRecvPayload    nanotime // payload only, starts the Keepalive timer
	sendStart          nanotime // Send timer start; 0 = stopped
	sendStopped        nanotime // when a Keepalive or Probe last stopped it (payloadOut)
	lastKA             nanotime
	kaStart            nanotime // Keepalive timer start: first payload received since we last sent
	created            nanotime
	lastFailover       nanotime

	deadline nanotime // next timer of any kind; 0 = none
	heapIdx  int32
	hs       *handshake
	ex       *exploration
	upd      *pendingUpdate

	nextPeerTag *context // chain of contexts sharing a CT(peer)

	origin           netip.Addr // the peer locator whose I2/I2bis created it (quotas)
	lruPrev, lruNext *context   // least-recently-used order (engine_quota.go)

	path               *pathEntry // site-wide path of the current pair
	pathPrev, pathNext *context
	rttMicros          uint32
}

func (c *context) rtt() time.Duration { return time.Duration(c.rttMicros) * time.Microsecond }

func (c *context) keepaliveTimeout(t *Timers) time.Duration {
	if c.kaTimeout > 0 {
		return c.kaTimeout
	}
	return t.KeepaliveTimeout
}

const (
	flagPublished uint8 = 1 << iota // a ContextUpdate for it is in the fast table
	flagInitiator                   // we sent the I1
)

func (c *context) key() pairKey { return pairKey{c.host.ulid, c.peerULID, c.fii} }

// canSend reports whether payload may flow (RFC 5533 §11).
func (c *context) canSend() bool {
	return c.state == StateEstablished || c.state == StateI2bisSent
}

// localOK reports whether a is one of this context's local locators.
func (c *context) localOK(a netip.Addr) bool { return c.host.index(a) >= 0 }

// peerOK reports whether a is in Ls(peer).
func (c *context) peerOK(a netip.Addr) bool {
	if c.peer == nil {
		return a == c.peerULID
	}
	return c.peer.index(a) >= 0
}

func (c *context) peerLocs() []netip.Addr {
	if c.peer == nil {
		return nil
	}
	return c.peer.locs
}

// host is a LocalHost with indexes, shared by all its contexts.
type host struct {
	ulid       netip.Addr
	locs       []netip.Addr
	methods    []uint8
	uplink     []int // uplink index of each locator, -1 if none
	pds        []byte
	generation uint32
	prefs      []LocatorPreference
	dirty      bool // changed; Update Requests pending
}

func (h *host) index(a netip.Addr) int {
	for i, l := range h.locs {
		if l == a {
			return i
		}
	}
	return -1
}

// timerHeap orders contexts by deadline; Tick pops the due ones.
type timerHeap []*context

func (h timerHeap) less(i, j int) bool { return h[i].deadline < h[j].deadline }

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}

func (h timerHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h timerHeap) down(i int) bool {
	i0 := i
	n := len(h)
	for {
		j1 := 2*i + 1
		if j1 >= n {
			break
		}
		j := j1
		if j2 := j1 + 1; j2 < n && h.less(j2, j1) {
			j = j2
		}
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}

// schedule sets c's deadline (0 removes it from the heap).
func (e *Engine) schedule(c *context, d nanotime) {
	h := &e.timers
	if c.heapIdx >= 0 {
		if d == 0 {
			i := int(c.heapIdx)
			last := len(*h) - 1
			if i != last {
				h.swap(i, last)
			}
			(*h)[last] = nil
			*h = (*h)[:last]
			c.heapIdx = -1
			c.deadline = 0
			if i != last {
				if !h.down(i) {
					h.up(i)
				}
			}
			return
		}
		c.deadline = d
		if !h.down(int(c.heapIdx)) {
			h.up(int(c.heapIdx))
		}
		return
	}
	if d == 0 {
		c.deadline = 0
		return
	}
	c.deadline = d
	c.heapIdx = int32(len(*h))
	*h = append(*h, c)
	h.up(int(c.heapIdx))
}

// allocTag returns a random, unused, non-zero tag (RFC 5533 §4.1, §7.1),
// or 0 when the (test-narrowed) tag space is full.
func (e *Engine) allocTag() ContextTag {
	mask := uint64(MaxTag)
	if e.cfg.TagBits > 0 && e.cfg.TagBits < 47 {
		mask = 1<<e.cfg.TagBits - 1
	}
	for range 64 {
		t := ContextTag(e.rng.Uint64() & mask)
		if _, used := e.byTag[t]; !used && t != 0 {
			return t
		}
	}
	if mask > 1<<20 {
		return 0 // 64 collisions in 2^47: the table cannot be that full
	}
	for t := ContextTag(1); uint64(t) <= mask; t++ {
		if _, used := e.byTag[t]; !used {
			return t
		}
	}
	return 0
}

// allocNonce returns a random Initiator Nonce not used by a pending setup,
// since R1 and R2 are looked up by it (RFC 5533 §12.4).
func (e *Engine) allocNonce() uint32 {
	for {
		n := e.rng.Uint32()
		if _, used := e.byNonce[n]; !used && n != 0 {
			return n
		}
	}
}

// insert adds a new context to the tables.
func (e *Engine) insert(c *context) {
	c.heapIdx = -1
	e.byPair[c.key()] = c
	e.lru.pushBack(c)
	if c.localTag != 0 {
		e.byTag[c.localTag] = c
	}
}

// setPeerTag records CT(peer) and keeps the peer-tag index (R1bis lookup,
// RFC 5533 §7.18) in step.
func (e *Engine) setPeerTag(c *context, t ContextTag) {
	if c.peerTag == t && t != 0 && e.peerTagLinked(c) {
		return
	}
	e.unlinkPeerTag(c)
	c.peerTag = t
	if t == 0 {
		return
	}
	c.nextPeerTag = e.byPeerTag[t]
	e.byPeerTag[t] = c
}

func (e *Engine) peerTagLinked(c *context) bool {
	for x := e.byPeerTag[c.peerTag]; x != nil; x = x.nextPeerTag {
		if x == c {
			return true
		}
	}
	return false
}

func (e *Engine) unlinkPeerTag(c *context) {
	if c.peerTag == 0 {
		return
	}
	head := e.byPeerTag[c.peerTag]
	if head == c {
		if c.nextPeerTag == nil {
			delete(e.byPeerTag, c.peerTag)
		} else {
			e.byPeerTag[c.peerTag] = c.nextPeerTag
		}
	} else {
		for x := head; x != nil; x = x.nextPeerTag {
			if x.nextPeerTag == c {
				x.nextPeerTag = c.nextPeerTag
				break
			}
		}
	}
	c.nextPeerTag = nil
}

func (e *Engine) setNonce(c *context, n uint32) {
	if c.inonce != 0 && e.byNonce[c.inonce] == c {
		delete(e.byNonce, c.inonce)
	}
	c.inonce = n
	if n != 0 {
		e.byNonce[n] = c
	}
}

// remove discards a context (RFC 5533 §9: unilateral, no message).
func (e *Engine) remove(c *context, reason string) {
	if c.flags&flagPublished != 0 {
		e.out.Updates = append(e.out.Updates, ContextUpdate{
			LocalULID: c.host.ulid, PeerULID: c.peerULID, FII: c.fii,
			LocalTag: c.localTag, PeerTag: c.peerTag, Removed: true,
		})
		c.flags &^= flagPublished
	}
	if c.state == StateEstablished || c.state == StateI2bisSent {
		e.event(EventContextDown, c, 0, reason)
		e.stats.Removed++
	}
	e.schedule(c, 0)
	e.setNonce(c, 0)
	e.unlinkPeerTag(c)
	if c.localTag != 0 && e.byTag[c.localTag] == c {
		delete(e.byTag, c.localTag)
	}
	if e.byPair[c.key()] == c {
		delete(e.byPair, c.key())
		e.lru.unlink(c)
	}
	e.clearOrigin(c)
	e.pathForget(c)
	c.state = StateIdle
	c.hs, c.ex, c.upd = nil, nil, nil
}

// publish emits the fast-table entry of a context that may carry payload.
func (e *Engine) publish(c *context) {
	if !c.canSend() {
		return
	}
	c.flags |= flagPublished
	e.out.Updates = append(e.out.Updates, ContextUpdate{
		LocalULID: c.host.ulid, PeerULID: c.peerULID, FII: c.fii,
		LocalTag: c.localTag, PeerTag: c.peerTag,
		LocalLocator: c.lp, PeerLocator: c.pp,
		LocalLocators: c.host.locs, PeerLocators: c.peerLocs(),
	})
}

func (e *Engine) event(k EventKind, c *context, d time.Duration, reason string) {
	ev := Event{Kind: k, Duration: d, Reason: reason}
	if c != nil {
		ev.LocalULID, ev.PeerULID, ev.LocalTag = c.host.ulid, c.peerULID, c.localTag
		ev.LocalLocator, ev.PeerLocator = c.lp, c.pp
	}
	e.out.Events = append(e.out.Events, ev)
}

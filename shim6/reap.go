package shim6

import (
	"net/netip"
	"time"
)

// REAP (RFC 5534): failure detection with the Send and Keepalive timers
// driven by the data plane's traffic stamps, and path exploration with
// Probe messages. Beyond the RFC, a gateway shares path knowledge between
// contexts: every current pair belongs to a site-wide path (local uplink,
// peer prefix); a failure one context detects starts exploration in every
// context on the same path, and a working pair one of them finds is tried
// first by the others.

// pathKey is a site-wide path: the local uplink prefix (or the locator's
// /64 when it is on no uplink) and the peer locator's prefix.
type pathKey struct {
	local, peer netip.Prefix
}

// pathEntry is the shared state of a path and the list of contexts whose
// current pair is on it.
type pathEntry struct {
	key      pathKey
	uplink   int
	head     *context
	n        int
	brokenAt nanotime
	goodAt   nanotime
}

func (pe *pathEntry) broken() bool { return pe != nil && pe.brokenAt > pe.goodAt }
func (pe *pathEntry) good() bool   { return pe != nil && pe.goodAt > pe.brokenAt }

// exploration is REAP state kept only outside Operational (RFC 5534 §6).
type exploration struct {
	active   bool     // false: ended, records kept until linger
	linger   nanotime // when an ended exploration's records are dropped
	start    nanotime
	next     nanotime // next probe
	interval time.Duration
	probes   int
	rr       int
	startLp  netip.Addr
	startPp  netip.Addr
	sent     [4]ProbeRecord // newest first
	sentAt   [4]nanotime
	nsent    int
	rcvd     [4]ProbeRecord // received since the last entry into Exploring, newest first
	nrcvd    int
	rtt      time.Duration
}

const maxRecords = 4

// probeLinger is how long probe reports are kept after an exploration
// ends, so late probes of the peer still match (LinShim6 keeps 10 s).
const probeLinger = 10 * time.Second

// beginExploration makes c.ex active, reporting a new exploration.
func (e *Engine) beginExploration(c *context, reason string) *exploration {
	now := nt(e.now)
	if c.ex == nil {
		c.ex = &exploration{}
	}
	ex := c.ex
	if !ex.active {
		ex.active = true
		ex.start, ex.startLp, ex.startPp = now, c.lp, c.pp
		ex.interval = e.t.InitialProbeTimeout
		ex.probes, ex.rr = 0, 0
		e.stats.Explorations++
		e.event(EventExplorationStarted, c, 0, reason)
	}
	return ex
}

func (e *Engine) pathKeyOf(h *host, l, p netip.Addr) (pathKey, int) {
	u := -1
	if i := h.index(l); i >= 0 {
		u = h.uplink[i]
	}
	var k pathKey
	if u >= 0 {
		k.local = e.uplinks[u].Prefix
	} else {
		k.local, _ = l.Prefix(64)
	}
	k.peer, _ = p.Prefix(e.cfg.HintPrefixLen)
	return k, u
}

func (e *Engine) pathFor(h *host, l, p netip.Addr) *pathEntry {
	k, u := e.pathKeyOf(h, l, p)
	pe := e.paths[k]
	if pe == nil {
		pe = &pathEntry{key: k, uplink: u}
		e.paths[k] = pe
	}
	return pe
}

// setPair sets the current locator pair and moves c to its path.
func (e *Engine) setPair(c *context, l, p netip.Addr) {
	if c.path != nil && c.lp == l && c.pp == p {
		return
	}
	e.pathForget(c)
	c.lp, c.pp = l, p
	pe := e.pathFor(c.host, l, p)
	c.path = pe
	c.pathPrev = nil
	c.pathNext = pe.head
	if pe.head != nil {
		pe.head.pathPrev = c
	}
	pe.head = c
	pe.n++
	if pe.n == 1 {
		e.livePaths++
	}
}

func (e *Engine) pathForget(c *context) {
	pe := c.path
	if pe == nil {
		return
	}
	if c.pathPrev != nil {
		c.pathPrev.pathNext = c.pathNext
	} else {
		pe.head = c.pathNext
	}
	if c.pathNext != nil {
		c.pathNext.pathPrev = c.pathPrev
	}
	c.path, c.pathPrev, c.pathNext = nil, nil, nil
	pe.n--
	if pe.n > 0 {
		return
	}
	e.livePaths--
	if pe.brokenAt == 0 && pe.goodAt == 0 {
		delete(e.paths, pe.key)
	} else if len(e.paths)-e.livePaths > maxIdlePaths {
		e.sweepPaths()
	}
}

// maxIdlePaths bounds the path hints kept without a context on them: the
// peer prefixes come from remote parties (an HBA set may name any
// prefixes), so they must not accumulate for ever.
const maxIdlePaths = 1024

// sweepPaths drops the hints of paths no context uses: those not marked
// within IdleTimeout, then arbitrary ones down to half the bound.
func (e *Engine) sweepPaths() {
	old := nt(e.now) - nanotime(e.t.IdleTimeout)
	idle := len(e.paths) - e.livePaths
	for k, pe := range e.paths {
		if pe.n == 0 && max(pe.brokenAt, pe.goodAt) < old {
			delete(e.paths, k)
			idle--
		}
	}
	for k, pe := range e.paths {
		if idle <= maxIdlePaths/2 {
			break
		}
		if pe.n == 0 {
			delete(e.paths, k)
			idle--
		}
	}
}

// ObserveTraffic feeds the data plane's stamps for a context (by its
// CT(local)): when payload was last sent and last received (RFC 5534 §4.1;
// Shim6 control messages other than Keepalive and Probe count as payload,
// §6.1, and the engine notes those itself). The gateway calls it whenever
// a stamp has moved; the Send timer starts at the first sent stamp seen
// after the last received one.
func (e *Engine) ObserveTraffic(now time.Time, localTag ContextTag, lastSent, lastRecv time.Time) *Actions {
	e.begin(now)
	if c := e.byTag[localTag]; c != nil && c.state == StateEstablished {
		s, r := nanotime(0), nanotime(0)
		if !lastSent.IsZero() {
			s = nt(lastSent)
		}
		if !lastRecv.IsZero() {
			r = nt(lastRecv)
		}
		if s > r {
			e.payloadIn(c, r)
			e.payloadOut(c, s)
		} else {
			e.payloadOut(c, s)
			e.payloadIn(c, r)
		}
		e.reschedule(c)
	}
	return e.end()
}

// payloadIn applies "payload received" (RFC 5534 §6.2 table).
func (e *Engine) payloadIn(c *context, r nanotime) {
	if r <= c.lastRecv {
		return
	}
	c.lastRecv, c.lastRecvPayload = r, r
	e.touch(c)
	if c.kaStart <= c.lastSent {
		c.kaStart = r
	}
	switch c.reap {
	case StaOperational, StaInboundOk:
		c.sendStart = 0
	case StaExploring:
		c.reap = StaInboundOk
		c.sendStart = nt(e.now)
		e.sendProbe(c, StaInboundOk, netip.Addr{}, netip.Addr{})
	}
}

// payloadOut applies "payload sent": start the Send timer if stopped.
// The data plane's stamps are polled, so a packet sent before a Probe or
// Keepalive stopped the timer (RFC 5534 §6.7, §6.9) may be seen after it:
// in event order that packet started the timer and the message stopped
// it, so it must not start it now. Otherwise a segment a host sent on
// the old pair just before a failover makes both sides explore again one
// Send Timeout later (reap_failover_test.go).
func (e *Engine) payloadOut(c *context, s nanotime) {
	if s <= c.lastSent {
		return
	}
	c.lastSent = s
	e.touch(c)
	if s <= c.sendStopped {
		return
	}
	if c.reap != StaExploring && c.sendStart == 0 && s > c.lastRecv {
		c.sendStart = s
	}
}

// reschedule sets the deadline of an established context to its earliest
// timer.
func (e *Engine) reschedule(c *context) {
	if c.state != StateEstablished {
		return
	}
	var d nanotime
	add := func(t nanotime) {
		if t != 0 && (d == 0 || t < d) {
			d = t
		}
	}
	add(e.idleDeadline(c))
	if c.upd != nil {
		add(c.upd.next)
	}
	if c.reap != StaExploring && c.sendStart != 0 {
		add(c.sendStart + nanotime(e.t.SendTimeout))
	}
	add(e.kaDue(c))
	if c.ex != nil {
		if c.reap != StaOperational {
			add(c.ex.next)
		} else if !c.ex.active {
			add(c.ex.linger)
		}
	}
	e.schedule(c, d)
}

// idleDeadline is when an unused context is discarded (RFC 5533 §9), or a
// context that has explored without success for as long (RFC 5534 §4.3).
func (e *Engine) idleDeadline(c *context) nanotime {
	last := max(c.lastSent, c.lastRecv, c.created)
	d := last + nanotime(e.t.IdleTimeout)
	if c.ex != nil && c.reap == StaExploring {
		d = min(d, c.ex.start+nanotime(e.t.IdleTimeout))
	}
	return d
}

// kaDue is when the next Keepalive is due (RFC 5534 §4.1, §6.2): while
// the Keepalive timer runs (payload received, nothing sent since), every
// Keepalive Timeout/3, and once more when it expires.
func (e *Engine) kaDue(c *context) nanotime {
	if c.reap != StaOperational || c.kaStart == 0 || c.kaStart <= c.lastSent {
		return 0
	}
	kat := e.kaPacing(c)
	expiry := c.lastRecvPayload + nanotime(kat)
	if c.lastKA >= expiry {
		return 0
	}
	return min(max(c.lastKA, c.kaStart)+nanotime(kat/3), expiry)
}

// kaPacing is the Keepalive Timeout our Keepalives are paced by: the
// peer's advertised one (RFC 5534 §5.3, §7), but no longer than our own
// KeepaliveTimeout. The option carries whole seconds, so a peer with a
// sub-second Send Timeout advertises 1 s (Timers.KeepaliveOptionSeconds);
// two gateways configured alike keep each other's Send timers quiet only
// if each paces by its own shorter value. Sending Keepalives sooner than
// the Keepalive Interval is allowed (§4.1 item 5).
func (e *Engine) kaPacing(c *context) time.Duration {
	return min(c.keepaliveTimeout(&e.t), e.t.KeepaliveTimeout)
}

// establishedTimers runs the due timers of an ESTABLISHED context.
func (e *Engine) establishedTimers(c *context, now nanotime) {
	if now >= e.idleDeadline(c) {
		e.remove(c, "idle")
		return
	}
	if c.upd != nil && now >= c.upd.next {
		e.sendUpdate(c)
	}
	if c.reap != StaExploring && c.sendStart != 0 && now >= c.sendStart+nanotime(e.t.SendTimeout) {
		// RFC 5534 §6.5: Send timer expiry → Exploring.
		e.startExploring(c, "send timeout", true)
	}
	if d := e.kaDue(c); d != 0 && now >= d {
		start := len(e.out.buf)
		e.out.buf = AppendKeepalive(e.out.buf, c.peerTag)
		e.emit(c.lp, c.pp, start)
		c.lastKA = now
	}
	if c.ex != nil && c.reap == StaOperational && !c.ex.active && now >= c.ex.linger {
		c.ex = nil
	}
	if c.ex != nil && c.reap != StaOperational && now >= c.ex.next {
		sta := c.reap
		if sta == StaInboundOk && c.sendStart == 0 {
			c.sendStart = now // RFC 5534 §6.5: a retransmission starts Send if stopped
		}
		e.sendProbe(c, sta, netip.Addr{}, netip.Addr{})
	}
	e.reschedule(c)
}

// startExploring enters Exploring (RFC 5534 §6.5). broken says the current
// path failed here; the hint then moves every context on it (site-wide).
func (e *Engine) startExploring(c *context, reason string, broken bool) {
	if c.state != StateEstablished || c.reap == StaExploring {
		return
	}
	now := nt(e.now)
	e.beginExploration(c, reason)
	c.reap = StaExploring
	c.sendStart = 0
	c.ex.probes = 0
	c.ex.rr = 0
	c.ex.nrcvd = 0
	c.ex.interval = e.t.InitialProbeTimeout
	pe := c.path
	if broken && pe != nil {
		pe.brokenAt = now
		for x := pe.head; x != nil; x = x.pathNext {
			if x != c && x.state == StateEstablished && x.reap == StaOperational {
				e.startExploring(x, "site path hint", false)
			}
		}
	}
	e.sendProbe(c, StaExploring, netip.Addr{}, netip.Addr{})
	e.reschedule(c)
}

type cand struct {
	li, pi int
	score  int
}

// candidates orders the usable locator pairs for probing (RFC 5534 §4.3):
// uplinks that are down and peer locators marked BROKEN are left out;
// pairs on paths known to work come first, then pairs disjoint from the
// current pair, then by peer priority; paths known broken and the current
// pair last.
func (e *Engine) candidates(c *context) []cand {
	out := e.cands[:0]
	for li := range c.host.locs {
		if !e.locUsable(c.host, li) {
			continue
		}
		for pi, p := range c.peerLocs() {
			if c.peer.broken(pi) {
				continue
			}
			l := c.host.locs[li]
			k, _ := e.pathKeyOf(c.host, l, p)
			pe := e.paths[k]
			s := 0
			if pe.good() {
				s -= 1000
			}
			if pe.broken() {
				s += 1000
			}
			if l == c.lp && p == c.pp {
				s += 100
			}
			// A pair sharing no locator with the current one goes first:
			// it works whenever one provider of either site failed, which
			// silence (a blackhole) cannot tell apart.
			if l == c.lp {
				s += 40
			}
			if p == c.pp {
				s += 40
			}
			if pi < len(c.peer.prefs) {
				s += int(c.peer.prefs[pi].Priority)
			}
			out = append(out, cand{li, pi, s})
		}
	}
	for i := 1; i < len(out); i++ { // insertion sort: stable, few pairs
		for j := i; j > 0 && out[j].score < out[j-1].score; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	e.cands = out
	return out
}

// sendProbe sends a Probe with state sta on the pair (l, p), or on the next
// candidate pair when l is invalid, and sets the probe timer (RFC 5534
// §5.2, §7: NumInitialProbes at InitialProbeTimeout, then doubling up to
// MaxProbeTimeout).
func (e *Engine) sendProbe(c *context, sta Sta, l, p netip.Addr) {
	now := nt(e.now)
	var ex *exploration
	if sta == StaOperational {
		// A reply that confirms the pair (RFC 5534 §6.8): no exploration.
		if c.ex == nil {
			c.ex = &exploration{}
		}
		ex = c.ex
	} else {
		ex = e.beginExploration(c, "probe")
	}
	if !l.IsValid() {
		cs := e.candidates(c)
		if len(cs) > 0 {
			k := cs[ex.rr%len(cs)]
			ex.rr++
			l, p = c.host.locs[k.li], c.peer.locs[k.pi]
		}
	}
	if l.IsValid() {
		rec := ProbeRecord{Src: l, Dst: p, Nonce: e.rng.Uint32(), Data: uint32(ex.probes)}
		copy(ex.sent[1:], ex.sent[:maxRecords-1])
		copy(ex.sentAt[1:], ex.sentAt[:maxRecords-1])
		ex.sent[0], ex.sentAt[0] = rec, now
		ex.nsent = min(ex.nsent+1, maxRecords)
		start := len(e.out.buf)
		e.out.buf = AppendProbe(e.out.buf, c.peerTag, sta, ex.sent[:ex.nsent], ex.rcvd[:ex.nrcvd])
		e.emit(l, p, start)
	}
	ex.probes++
	if ex.probes > e.t.NumInitialProbes {
		ex.interval = min(ex.interval*2, e.t.MaxProbeTimeout)
		// Randomize the backed-off probes by ±20% (RFC 5534 §4.1).
		ex.next = now + nanotime(float64(ex.interval)*(0.8+0.4*rngFloat(e.rng)))
	} else {
		ex.next = now + nanotime(e.t.InitialProbeTimeout)
	}
}

// onKeepalive: a Keepalive stops the Send timer (RFC 5534 §6.7).
func (e *Engine) onKeepalive(src, dst netip.Addr, m Message) {
	c := e.contextFor(src, dst, m.Type(), Keepalive(m).ReceiverTag(), true)
	if c == nil {
		return
	}
	switch c.reap {
	case StaOperational, StaInboundOk:
		e.stopSend(c)
	case StaExploring:
		c.reap = StaInboundOk
		c.sendStart = nt(e.now)
		e.sendProbe(c, StaInboundOk, dst, src)
	}
	e.reschedule(c)
}

// stopSend stops the Send timer on a Keepalive or Probe and notes when,
// for payloadOut's event-order check.
func (e *Engine) stopSend(c *context) {
	c.sendStart = 0
	c.sendStopped = nt(e.now)
}

// contextFor finds the context of a control message carrying our tag
// (RFC 5533 §12.4): unknown tag or addresses outside the locator sets →
// R1bis; I2-SENT/I2BIS-SENT repeat their I2/I2bis. Only ESTABLISHED
// contexts are returned unless bisOK allows I2BIS-SENT too. Only message
// types 64–127 may trigger the R1bis (RFC 5533 §5.3, §7.17).
func (e *Engine) contextFor(src, dst netip.Addr, t Type, tag ContextTag, estOnly bool) *context {
	c := e.byTag[tag]
	if c == nil || ((c.state == StateEstablished || c.state == StateI2bisSent) && (!c.peerOK(src) || !c.localOK(dst))) {
		e.stats.Drops[DropNoContext]++
		if t.TriggersR1bis() {
			e.unknownTag(src, dst, tag)
		}
		return nil
	}
	switch c.state {
	case StateEstablished:
		return c
	case StateI2Sent:
		e.sendI2(c)
	case StateI2bisSent:
		e.sendI2bis(c)
		if !estOnly {
			return c
		}
	}
	e.stats.Drops[DropWrongState]++
	return nil
}

// onProbe runs the REAP receive rules (RFC 5534 §6.8, §6.9).
func (e *Engine) onProbe(src, dst netip.Addr, m Message) {
	p := Probe(m)
	c := e.contextFor(src, dst, m.Type(), p.ReceiverTag(), true)
	if c == nil {
		return
	}
	now := nt(e.now)
	if c.ex == nil {
		c.ex = &exploration{}
	}
	ex := c.ex
	rec := p.Sent(0)
	copy(ex.rcvd[1:], ex.rcvd[:maxRecords-1])
	ex.rcvd[0] = rec
	ex.nrcvd = min(ex.nrcvd+1, maxRecords)

	// Which of our probes did the peer get? That pair works outbound.
	var nl, np netip.Addr
	for i := 0; i < p.Precvd() && !nl.IsValid(); i++ {
		r := p.Rcvd(i)
		for j := 0; j < ex.nsent; j++ {
			if ex.sent[j].Nonce == r.Nonce && ex.sent[j].Src == r.Src && ex.sent[j].Dst == r.Dst &&
				c.localOK(r.Src) && c.peerOK(r.Dst) {
				nl, np = r.Src, r.Dst
				ex.rtt = time.Duration(now - ex.sentAt[j])
				c.rttMicros = uint32(min(ex.rtt/time.Microsecond, 1<<32-1))
				break
			}
		}
	}
	switch p.Sta() {
	case StaExploring:
		e.beginExploration(c, "peer exploring")
		c.reap = StaInboundOk
		c.sendStart = now
		ex.probes = 0
		e.sendProbe(c, StaInboundOk, dst, src) // the reverse of what reached us first
	case StaInboundOk:
		if nl.IsValid() {
			e.switchPair(c, nl, np)
		}
		c.reap = StaOperational
		c.sendStart = now
		c.kaStart = 0 // RFC 5534 §6.8: STOP Keepalive, RESTART Send
		e.sendProbeOnCurrent(c, StaOperational)
		e.endExploration(c)
	case StaOperational:
		moved := nl.IsValid() && (nl != c.lp || np != c.pp)
		if nl.IsValid() {
			e.switchPair(c, nl, np)
		}
		e.stopSend(c)
		wasOp := c.reap == StaOperational
		c.reap = StaOperational
		// RFC 5534 §6.9: START Keepalive (if not running). The peer
		// restarted its Send timer when it sent this probe (§6.8) and
		// needs traffic from us.
		if e.kaDue(c) == 0 {
			c.kaStart, c.lastRecvPayload = now, now
		}
		if !wasOp || ex.active {
			e.endExploration(c)
		} else if moved {
			// A late confirmation moved an ended exploration's pair.
			e.stats.Failovers++
			c.lastFailover = now
			e.event(EventFailover, c, time.Duration(now-ex.start), "late probe report")
		}
	}
	e.reschedule(c)
}

func (e *Engine) sendProbeOnCurrent(c *context, sta Sta) {
	e.sendProbe(c, sta, c.lp, c.pp)
}

// switchPair moves the context to a pair a probe proved (RFC 5534 §6.9).
func (e *Engine) switchPair(c *context, l, p netip.Addr) {
	if c.lp == l && c.pp == p {
		return
	}
	old := c.path
	e.setPair(c, l, p)
	c.path.goodAt = nt(e.now)
	e.publish(c)
	if old != nil && old != c.path {
		// Site-wide: others still probing from the old path try this one first.
		for x := old.head; x != nil; x = x.pathNext {
			if x.ex != nil && x.reap != StaOperational {
				x.ex.rr = 0
				x.ex.next = nt(e.now)
				e.reschedule(x)
			}
		}
	}
}

// endExploration leaves exploration and reports it.
func (e *Engine) endExploration(c *context) {
	ex := c.ex
	if ex == nil {
		return
	}
	now := nt(e.now)
	d := time.Duration(now - ex.start)
	if c.path != nil {
		c.path.goodAt = now
	}
	if !ex.active {
		return
	}
	if c.lp != ex.startLp || c.pp != ex.startPp {
		e.stats.Failovers++
		c.lastFailover = now
		e.event(EventFailover, c, d, "")
	} else {
		e.event(EventExplorationEnded, c, d, "")
	}
	ex.active = false
	ex.linger = now + nanotime(probeLinger)
}

// UplinkDown moves every context whose current pair uses the uplink off it
// at once: they start exploring without waiting for the Send timer.
func (e *Engine) UplinkDown(now time.Time, name string) *Actions {
	e.begin(now)
	u := e.uplinkIndex(name)
	if u >= 0 && !e.down[u] {
		e.down[u] = true
		var hit []*context
		for _, pe := range e.paths {
			if pe.uplink != u {
				continue
			}
			pe.brokenAt = nt(now)
			for x := pe.head; x != nil; x = x.pathNext {
				hit = append(hit, x)
			}
		}
		for _, x := range hit {
			if x.state == StateEstablished {
				if x.reap == StaExploring {
					x.ex.rr, x.ex.next = 0, nt(now)
					e.reschedule(x)
				} else {
					e.startExploring(x, "uplink down", false)
				}
			}
		}
	}
	return e.end()
}

// UplinkUp makes the uplink's locators usable again. Contexts stay on the
// pair they use while it works.
func (e *Engine) UplinkUp(now time.Time, name string) *Actions {
	e.begin(now)
	if u := e.uplinkIndex(name); u >= 0 {
		e.down[u] = false
		for _, pe := range e.paths {
			if pe.uplink == u {
				pe.brokenAt = 0
			}
		}
	}
	return e.end()
}

func (e *Engine) uplinkIndex(name string) int {
	for i, u := range e.uplinks {
		if u.Name == name {
			return i
		}
	}
	return -1
}

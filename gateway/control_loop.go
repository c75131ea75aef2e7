package gateway

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/shim6gw/shim6gw/internal/ip6"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
	"github.com/shim6gw/shim6gw/tunnel"
)

// maxTableDelay bounds how long a burst of inputs may hold back a fast
// table rebuild (one costs about 1.3 µs per context).
const maxTableDelay = 10 * time.Millisecond

// controlLoop is the state of one Controller.Run; only its goroutine
// touches it (and the engine).
type controlLoop struct {
	c       *Controller
	cfg     *config.Config
	log     *slog.Logger
	metrics *metrics.Metrics
	eng     *shim6.Engine
	site    *site
	pipes   []*tunnel.Pipeline

	// entries are the engine's published fast-table entries; stamps the
	// per-context traffic stamps by CT(local), kept across tables; seen
	// the stamps last given to the engine.
	entries map[ctxKey]shim6.ContextUpdate
	stamps  map[shim6.ContextTag]*rewrite.Stamps
	seen    map[shim6.ContextTag][2]int64
	down    map[string]bool
	// noShim6 are peers in an E-FAILED or NO-SUPPORT hold-down, with the
	// local ULID the engine keyed it on (docs/architecture.md §7).
	noShim6 map[netip.Addr]netip.Addr
	lastRTT map[shim6.ContextTag]time.Duration

	// linkDown is the monitor's view of the uplinks; down (what the
	// engine and the fast table see) adds the withdrawn ones.
	linkDown map[string]bool

	// observeEvery is the traffic-stamp poll interval; a reload of the
	// timers may change it.
	observeEvery time.Duration

	tableDirty bool
	dirtySince time.Time // first unpublished change
	snapDirty  bool
	snapForce  bool
	lastSnap   time.Time
	pkt        []byte // scratch for whole control packets
	quote      [ip6.HeaderLen + shim6.PayloadHeaderLen]byte
}

func newControlLoop(c *Controller, cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*controlLoop, error) {
	if a := c.opts.ICMPSource; a.IsValid() && (!a.Is6() || a.Is4In6() || a.IsMulticast() || a.IsUnspecified() || a.IsLoopback()) {
		return nil, fmt.Errorf("gateway: icmp source %v is not a unicast ipv6 address", a)
	}
	book, err := c.siteBook(cfg)
	if err != nil {
		return nil, err
	}
	s := siteOf(book)
	ec, err := engineConfig(cfg, s, c.opts.Seed)
	if err != nil {
		return nil, err
	}
	eng, err := shim6.NewEngine(ec)
	if err != nil {
		return nil, err
	}
	l := &controlLoop{
		c: c, cfg: cfg, log: log, metrics: m, eng: eng, site: s,
		entries: map[ctxKey]shim6.ContextUpdate{}, stamps: map[shim6.ContextTag]*rewrite.Stamps{},
		seen: map[shim6.ContextTag][2]int64{}, down: map[string]bool{}, noShim6: map[netip.Addr]netip.Addr{},
		lastRTT:  map[shim6.ContextTag]time.Duration{},
		linkDown: map[string]bool{},
		pkt:      make([]byte, 0, ip6.HeaderLen+shim6.MaxMessageLen),
	}
	c.uplinkUp.Store(int32(len(cfg.Uplinks)))
	// No context exists yet: this only trims the hosts' locator lists.
	l.withdraw(time.Now(), nil)
	l.publishTable()
	return l, nil
}

// serve is the event loop: it returns nil when ctx ends, or a pipeline's
// error.
func (l *controlLoop) serve(ctx context.Context, in ControlInputs, divert *tunnel.DivertQueue, errc <-chan error) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	interval := l.c.opts.ObserveInterval
	if interval <= 0 {
		interval = observeInterval(l.cfg.Timers)
	}
	l.observeEvery = interval
	observe := time.NewTicker(interval)
	defer observe.Stop()
	l.log.Info("control loop running", "hosts", len(l.site.hosts), "uplinks", len(l.cfg.Uplinks),
		"tun_queues", len(l.pipes), "observe_interval", interval.String())
	defer func() {
		// A final snapshot, so a last scrape sees the end state.
		l.snapForce, l.snapDirty = true, true
		l.snapshot(time.Now(), true)
	}()
	uplinks, reloads := in.Uplinks, in.Reloads
	l.c.round.Store(time.Now().UnixNano())
	if in.Running != nil {
		in.Running()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if err != nil {
				return err
			}
		case d := <-divert.C():
			l.received(time.Now(), d.Bytes())
			d.Release()
		case n := <-l.c.dp.notices:
			l.notice(time.Now(), n)
		case e, ok := <-uplinks:
			if !ok {
				uplinks = nil // closed: no more events
				continue
			}
			l.uplink(time.Now(), e)
		case r, ok := <-reloads:
			if !ok {
				reloads = nil
				continue
			}
			l.reload(time.Now(), r)
			if l.observeEvery != interval {
				interval = l.observeEvery
				observe.Reset(interval)
			}
		case <-timer.C:
			l.apply(l.eng.Tick(time.Now()))
		case <-observe.C:
			now := time.Now()
			l.observe(now)
			l.expireHolds(now)
		}
		// Under a burst (a mass failover) rebuild the fast table and the
		// snapshots once for many inputs: only when no input waits, or
		// when the oldest change is maxTableDelay old.
		now := time.Now()
		l.c.round.Store(now.UnixNano())
		idle := len(divert.C()) == 0 && len(l.c.dp.notices) == 0 && len(uplinks) == 0 && len(reloads) == 0
		if l.tableDirty {
			if l.dirtySince.IsZero() {
				l.dirtySince = now
			}
			if idle || now.Sub(l.dirtySince) >= maxTableDelay {
				l.publishTable()
			}
		}
		l.snapshot(now, idle)
		if d := l.eng.NextDeadline(); d.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(max(d.Sub(now), 0))
		}
	}
}

// received handles a diverted packet: a Shim6 control message (possibly
// behind routing-related extension headers) or an ICMPv6 error about one.
func (l *controlLoop) received(now time.Time, pkt []byte) {
	h := ip6.Header(pkt)
	if !h.Valid() {
		return
	}
	pkt = pkt[:h.End()]
	// Routing-related headers may precede a control message (RFC 5533
	// §5); anything else ends the walk.
	it := ip6.NewIter(pkt)
	for p := it.Proto(); p == ip6.ProtoHopByHop || p == ip6.ProtoRouting || p == ip6.ProtoDstOpts; p = it.Proto() {
		if !it.Next() {
			return
		}
	}
	off := it.Offset()
	switch it.Proto() {
	case shim6.ProtocolNumber:
		if l.log.Enabled(context.Background(), slog.LevelDebug) {
			l.log.Debug("control message received", "type", messageType(pkt[off:]), "src", h.Src(), "dst", h.Dst(), "len", len(pkt)-off)
		}
		l.c.opts.Capture.WritePacket(now, pkt)
		l.apply(l.eng.HandleControl(now, h.Src(), h.Dst(), pkt[off:]))
	case ip6.ProtoICMPv6:
		if len(pkt)-off >= 8 {
			l.apply(l.eng.HandleICMP(now, pkt[off], pkt[off+1], pkt[off+8:]))
		}
	}
}

// messageType names the type of control message msg for the debug log.
func messageType(msg []byte) string {
	if len(msg) < 3 {
		return "truncated"
	}
	return metrics.TypeLabel(shim6.Type(msg[2] & 0x7f))
}

// notice hands a data-plane notice to the engine.
func (l *controlLoop) notice(now time.Time, n rewrite.Notice) {
	switch n.Kind {
	case rewrite.NoticeTrafficSeen:
		l.apply(l.eng.HandleTraffic(now, n.Local, n.Peer))
	case rewrite.NoticeUnknownTag:
		// Local is the packet's destination, Peer its source.
		l.apply(l.eng.HandleUnknownTag(now, n.Peer, n.Local, n.Tag))
	case rewrite.NoticePathError:
		// The engine matches ICMPv6 errors by the quoted payload header
		// (CT(peer)) and locators (RFC 5533 §8); the notice names the
		// context by CT(local), so rebuild that quote.
		ctx := l.c.rw.Table().LookupTag(n.Tag)
		if ctx == nil {
			return
		}
		q := l.quote[:]
		shim6.PutIPv6Header(q, n.Local, n.Peer, shim6.ProtocolNumber, shim6.PayloadHeaderLen)
		shim6.PutPayloadHeader(q[ip6.HeaderLen:], shim6.NoNextHeader, ctx.Config().PeerTag)
		const destUnreachable, noRoute = 1, 0
		l.apply(l.eng.HandleICMP(now, destUnreachable, noRoute, q))
	}
}

// uplink turns a monitor event into the engine's uplink event.
func (l *controlLoop) uplink(now time.Time, e plumbing.UplinkEvent) {
	if l.linkDown[e.Uplink] == !e.Up {
		return
	}
	l.linkDown[e.Uplink] = !e.Up
	// One line per change, with the monitor's reason: admin down, no
	// carrier, no global address, no default route, interface missing.
	if e.Up {
		l.log.Info("uplink up", "uplink", e.Uplink)
	} else {
		l.log.Info("uplink down", "uplink", e.Uplink, "reason", e.Reason)
	}
	l.setDown(now, e.Uplink)
}

// setDown brings the engine and the fast table to an uplink's state:
// down while the monitor reports it down or the configuration withdraws
// it, so a withdrawn uplink gets no new flows (path choice, the fallback
// of docs/architecture.md §7) exactly like a dead one.
func (l *controlLoop) setDown(now time.Time, name string) {
	down := l.linkDown[name]
	for _, u := range l.cfg.Uplinks {
		if u.Name == name && u.Withdrawn {
			down = true
		}
	}
	if l.down[name] == down {
		return
	}
	l.down[name] = down
	l.tableDirty = true
	up := 0
	for _, u := range l.cfg.Uplinks {
		if !l.down[u.Name] {
			up++
		}
	}
	l.c.uplinkUp.Store(int32(up))
	if down {
		l.apply(l.eng.UplinkDown(now, name))
	} else {
		l.apply(l.eng.UplinkUp(now, name))
	}
}

// withdraw applies the configuration's withdrawn uplinks; old is the
// previous configuration (nil at start: nothing withdrawn). The hosts'
// locator lists lose the withdrawn uplinks' addresses, and the engine
// sends the new lists to the peer of every established context and moves
// contexts off a removed locator (RFC 5533 §10.1, RFC 5534 §6.5).
// Restoring puts the addresses back: they are still in the HBA set, so
// the peers' HBA check accepts them (RFC 5535 §7.2). A ULID stays in the
// list (RFC 5533 §2: ULID(A) is always one member of Ls(A)); on a
// withdrawn uplink it is flagged BROKEN instead (RFC 5533 §5.15.3), so
// the peers stop sending to it.
func (l *controlLoop) withdraw(now time.Time, old *config.Config) {
	was := func(i int) bool { return old != nil && i < len(old.Uplinks) && old.Uplinks[i].Withdrawn }
	changed := false
	for i, u := range l.cfg.Uplinks {
		changed = changed || u.Withdrawn != was(i)
	}
	if !changed {
		return
	}
	// Restored uplinks first, so contexts leaving a withdrawn locator
	// may explore onto them.
	for i, u := range l.cfg.Uplinks {
		if !u.Withdrawn && was(i) {
			l.setDown(now, u.Name)
		}
	}
	hosts := make([]shim6.LocalHost, len(l.site.hosts))
	for i, h := range l.site.hosts {
		hosts[i] = h
		hosts[i].Locators = l.liveLocators(h)
	}
	a, err := l.eng.UpdateLocalHosts(now, hosts)
	l.apply(a)
	if err != nil {
		l.log.Error("locator update not applied", "err", err)
	}
	for i, u := range l.cfg.Uplinks {
		if u.Withdrawn {
			l.apply(l.eng.SetUplinkPreference(now, u.Name, shim6.LocatorPreference{Flags: shim6.FlagBroken}))
			l.setDown(now, u.Name)
		}
		if u.Withdrawn != was(i) {
			l.log.Info("uplink locators", "uplink", u.Name, "withdrawn", u.Withdrawn)
		}
	}
}

// liveLocators returns h's locators without those of withdrawn uplinks
// (its ULID always stays); the book lists a host's addresses in uplink
// order, one per LAN prefix.
func (l *controlLoop) liveLocators(h shim6.LocalHost) []netip.Addr {
	out := make([]netip.Addr, 0, len(h.Locators))
	for i, a := range h.Locators {
		if a == h.ULID || i >= len(l.cfg.Uplinks) || !l.cfg.Uplinks[i].Withdrawn {
			out = append(out, a)
		}
	}
	return out
}

// reload applies an accepted SIGHUP configuration: timers and policy go
// to the engine at once (open contexts stay), a changed provider prefix
// reaches the fast table (the daemon already moved the rules), a
// withdrawn or restored uplink becomes a locator update. PlanReload
// refuses a changed LAN prefix (a new HBA book, RFC 5535 §8.1), so the
// engine's hosts and ULIDs never change here.
func (l *controlLoop) reload(now time.Time, r Reload) {
	old := l.cfg
	l.cfg = r.Config
	l.tableDirty = true
	if r.Plan.WithdrawnChanged {
		l.withdraw(now, old)
	}
	if r.Plan.TimersChanged {
		if err := l.eng.SetTimers(r.Config.Timers); err != nil {
			l.log.Error("timers not applied", "err", err)
		} else if l.c.opts.ObserveInterval <= 0 {
			l.observeEvery = observeInterval(r.Config.Timers)
		}
	}
	if r.Plan.PolicyChanged {
		if err := l.eng.SetPolicy(r.Config.Policy); err != nil {
			l.log.Error("policy not applied", "err", err)
		}
	}
	// The engine's deadlines may have moved.
	l.apply(l.eng.Tick(now))
	l.log.Info("control plane reloaded", "prefixes_changed", r.Plan.PrefixesChanged,
		"withdrawn_changed", r.Plan.WithdrawnChanged, "timers_changed", r.Plan.TimersChanged,
		"policy_changed", r.Plan.PolicyChanged)
}

// observe feeds the engine the contexts' traffic stamps that moved since
// the last call (RFC 5534 §4.1: REAP's Send and Keepalive timers).
func (l *controlLoop) observe(now time.Time) {
	l.c.fp.Harvest(l.c.clock.nanos()) // the kernel fast path's stamps first
	for tag, st := range l.stamps {
		s, r := st.LastSent.Load(), st.LastReceived.Load()
		v := [2]int64{s, r}
		if v == l.seen[tag] {
			continue
		}
		l.seen[tag] = v
		l.apply(l.eng.ObserveTraffic(now, tag, l.c.clock.at(s), l.c.clock.at(r)))
	}
}

// expireHolds drops peers whose hold-down ended from the no-Shim6 set.
func (l *controlLoop) expireHolds(time.Time) {
	for peer, local := range l.noShim6 {
		if _, _, held := l.eng.PeerHeld(local, peer); !held {
			delete(l.noShim6, peer)
			l.tableDirty = true
		}
	}
}

// apply carries out an engine call's actions: send its packets, update the
// fast-table entries, log and count its events.
func (l *controlLoop) apply(a *shim6.Actions) {
	if a == nil {
		return
	}
	l.snapDirty = true
	now := time.Now()
	debug := l.log.Enabled(context.Background(), slog.LevelDebug)
	for _, p := range a.Packets {
		if debug {
			l.log.Debug("control message sent", "type", messageType(p.Payload), "src", p.Src, "dst", p.Dst, "len", len(p.Payload))
		}
		l.pkt = shim6.AppendIPv6Control(l.pkt[:0], p.Src, p.Dst, p.Payload)
		l.c.opts.Capture.WritePacket(now, l.pkt)
		// The kernel routes it out of the uplink of its source (docs/architecture.md §3).
		if err := l.pipes[0].Inject(l.pkt); err != nil {
			if l.c.InjectErrors.Add(1) == 1 {
				l.log.Warn("cannot write control packet to tun", "err", err)
			}
		}
	}
	for _, u := range a.Updates {
		k := ctxKey{u.LocalULID, u.PeerULID, u.FII}
		if u.Removed {
			if old, ok := l.entries[k]; ok {
				delete(l.stamps, old.LocalTag)
				delete(l.seen, old.LocalTag)
				delete(l.lastRTT, old.LocalTag)
			}
			delete(l.entries, k)
		} else {
			if old, ok := l.entries[k]; ok && old.LocalTag != u.LocalTag {
				delete(l.stamps, old.LocalTag)
				delete(l.seen, old.LocalTag)
			}
			l.entries[k] = u
		}
		l.tableDirty = true
		l.snapForce = true
	}
	for i := range a.Events {
		l.event(&a.Events[i])
	}
}

// event logs one engine event (one line per event that matters) and
// feeds the metrics it carries.
func (l *controlLoop) event(e *shim6.Event) {
	l.snapForce = true
	attrs := []any{"local_ulid", e.LocalULID, "peer_ulid", e.PeerULID}
	loc := func() []any {
		return append(attrs, "local_locator", e.LocalLocator, "peer_locator", e.PeerLocator,
			"context_tag", metrics.TagHex(uint64(e.LocalTag)))
	}
	switch e.Kind {
	case shim6.EventContextUp:
		l.log.Info("context up", loc()...)
	case shim6.EventContextDown:
		l.log.Info("context down", append(attrs, "reason", e.Reason)...)
	case shim6.EventEstablishFailed, shim6.EventNoSupport:
		l.noShim6[e.PeerULID] = e.LocalULID
		l.tableDirty = true
		l.log.Info("peer without shim6", append(attrs, "state", e.Kind.String(), "reason", e.Reason)...)
	case shim6.EventExplorationStarted:
		l.log.Info("path exploration started", append(loc(), "reason", e.Reason)...)
	case shim6.EventFailover:
		if l.metrics != nil {
			l.metrics.FailoverDuration.Observe(e.Duration.Seconds())
		}
		l.log.Info("failover", append(loc(), "duration_seconds", e.Duration.Seconds())...)
	case shim6.EventExplorationEnded:
		l.log.Debug("path exploration ended", loc()...)
	case shim6.EventRecovery:
		l.log.Info("context recovered", loc()...)
	case shim6.EventLocatorsUpdated:
		l.log.Debug("peer locators updated", attrs...)
	case shim6.EventPeerError:
		l.log.Info("peer sent error", append(attrs, "code", uint8(e.Code), "reason", e.Reason)...)
	case shim6.EventContextLimit:
		// The engine reports this at most once per 10 s.
		l.log.Warn("context refused: context limit reached", append(attrs, "reason", e.Reason)...)
	}
}

// snapshot publishes the contexts and counters for the HTTP goroutines:
// after a notable change as soon as no input waits, and otherwise at most
// every SnapshotInterval.
func (l *controlLoop) snapshot(now time.Time, idle bool) {
	if !l.snapDirty || !(l.snapForce && idle) && now.Sub(l.lastSnap) < l.c.opts.SnapshotInterval {
		return
	}
	l.snapDirty, l.snapForce, l.lastSnap = false, false, now
	infos := l.eng.Contexts()
	out := make([]metrics.ContextInfo, len(infos))
	for i, ci := range infos {
		out[i] = metrics.ContextInfoFrom(ci)
		if ci.RTT > 0 && l.metrics != nil && l.lastRTT[ci.LocalTag] != ci.RTT {
			// Contexts report their last probe round trip.
			l.lastRTT[ci.LocalTag] = ci.RTT
			l.metrics.PathRTT.Observe(ci.RTT.Seconds())
		}
	}
	st := l.eng.Stats()
	cs := metrics.ControlStatsFrom(&st, infos)
	l.c.contexts.Store(&out)
	l.c.stats.Store(&cs)
}

// The rest turns the configuration and the HBA book into what the engine
// and the rewrite table take.

// validatorInfo labels the HKDF derivation of the engine's validator
// secret from the site secret; changing it breaks R1/R1bis validation
// across an HA pair running different versions.
const validatorInfo = "shim6gw responder validator v1"

// ValidatorSecret derives the engine's responder-validator secret (RFC
// 5533 §7.10) from the HBA site secret, so that the two gateways of an HA
// pair accept each other's R1 and R1bis (docs/architecture.md §11) without using the
// HBA secret itself as a MAC key.
func ValidatorSecret(siteSecret []byte) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, siteSecret, nil, validatorInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("gateway: validator secret: %w", err)
	}
	return k, nil
}

// site is the local side as the engine sees it: the HBA book's hosts.
type site struct {
	book  *hba.Book
	hosts []shim6.LocalHost
	// fallback maps every host's ULID to its other locators (docs/architecture.md §7).
	fallback []rewrite.FallbackEntry
}

// newSite derives the HBA book of cfg (RFC 5535 §6, docs/architecture.md §2): entry
// i's address under the first LAN prefix is its ULID, and its addresses
// under every LAN prefix are its locators, verified by HBA.
func newSite(cfg *config.Config) (*site, error) {
	book, err := hba.NewBook(cfg.HBA.Secret, cfg.LANPrefixes(), cfg.HBA.Hosts, hba.WithSec(uint8(cfg.HBA.Sec)))
	if err != nil {
		return nil, fmt.Errorf("gateway: hba book: %w", err)
	}
	return siteOf(book), nil
}

// siteOf is the site of an HBA book.
func siteOf(book *hba.Book) *site {
	s := &site{book: book, hosts: make([]shim6.LocalHost, book.Len())}
	for i := range book.Len() {
		e := book.Entry(i)
		s.hosts[i] = shim6.LocalHost{ULID: e.ULID(), Locators: e.Addresses, PDS: e.PDS(0)}
		for _, a := range e.Addresses[1:] {
			s.fallback = append(s.fallback, rewrite.FallbackEntry{ULID: e.ULID(), Locator: a})
		}
	}
	return s
}

// engineConfig builds the engine's configuration.
func engineConfig(cfg *config.Config, s *site, seed [32]byte) (shim6.EngineConfig, error) {
	secret, err := ValidatorSecret(cfg.HBA.Secret)
	if err != nil {
		return shim6.EngineConfig{}, err
	}
	ec := shim6.EngineConfig{
		Hosts: s.hosts, Uplinks: cfg.EngineUplinks(), Timers: cfg.Timers, Policy: cfg.Policy,
		SiteSecret: secret, Seed: seed, Verifier: hba.Verifier{},
	}
	cfg.Limits.Apply(&ec)
	return ec, nil
}

// observeInterval is how often the loop polls traffic stamps: a tenth of
// the shorter REAP timer, so detection is late by at most 10 %.
func observeInterval(t shim6.Timers) time.Duration {
	d := min(t.SendTimeout, t.KeepaliveTimeout)
	if d <= 0 {
		d = max(t.SendTimeout, t.KeepaliveTimeout)
	}
	return min(max(d/10, 10*time.Millisecond), time.Second)
}

// ctxKey names a context the way the engine does (ULID pair and FII).
type ctxKey struct {
	local, peer netip.Addr
	fii         uint32
}

// tableConfig describes the fast table for the current state: the
// published contexts (forked ones inbound-only, with the Stamps they keep
// across tables), uplink states, the book's fallback locators and the
// peers known not to speak Shim6.
func (l *controlLoop) tableConfig() rewrite.Config {
	rc := rewrite.Config{
		SitePrefixes: l.cfg.LANPrefixes(),
		DefaultMTU:   max(l.cfg.TUN.MTU, shim6.MinMTU),
		Fallback:     l.site.fallback,
		ICMPSource:   l.c.opts.ICMPSource,
	}
	for _, u := range l.cfg.Uplinks {
		rc.Uplinks = append(rc.Uplinks, rewrite.Uplink{Prefix: u.Prefix, MTU: u.MTU, Down: l.down[u.Name]})
	}
	for k, u := range l.entries {
		st := l.stamps[u.LocalTag]
		if st == nil {
			st = new(rewrite.Stamps)
			l.stamps[u.LocalTag] = st
		}
		rc.Contexts = append(rc.Contexts, rewrite.ContextConfig{
			LocalULID: u.LocalULID, PeerULID: u.PeerULID, LocalTag: u.LocalTag, PeerTag: u.PeerTag,
			LocalLocator: u.LocalLocator, PeerLocator: u.PeerLocator,
			LocalLocators: u.LocalLocators, PeerLocators: u.PeerLocators, Stamps: st,
			// A forked context (FII ≠ 0, RFC 5533 §4.2) shares the ULID
			// pair of the FII 0 one. LAN hosts cannot pick a fork, so it
			// only strips and stamps what the peer sends on its tag.
			InboundOnly: k.fii != 0,
		})
	}
	for p := range l.noShim6 {
		rc.NoShim6Peers = append(rc.NoShim6Peers, p)
	}
	return rc
}

// publishTable rebuilds and publishes the fast table (docs/architecture.md §6).
func (l *controlLoop) publishTable() {
	l.tableDirty, l.dirtySince = false, time.Time{}
	rc := l.tableConfig()
	t, err := rewrite.NewTable(rc)
	if err != nil {
		// Keep forwarding with the previous table.
		l.log.Error("fast table rejected", "err", err)
		return
	}
	l.c.rw.Publish(t)
	l.c.fp.Publish(rc, t) // the kernel fast path in the same step
}

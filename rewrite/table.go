package rewrite

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/shim6gw/shim6gw/shim6"
)

// Sentinel errors of NewTable.
var (
	// ErrBadConfig: an address, prefix, tag or MTU in the Config is invalid.
	ErrBadConfig = errors.New("rewrite: bad table config")
	// ErrDuplicate: two contexts that are not InboundOnly share a ULID
	// pair, two contexts share a local context tag, or two fallback
	// entries share a ULID or locator.
	ErrDuplicate = errors.New("rewrite: duplicate table key")
)

// MaxAlternates is the largest number of fallback locators per ULID.
const MaxAlternates = 4

// Stamps are the per-context traffic counters the data plane updates and
// the control plane reads for REAP (RFC 5534 §5) and garbage collection
// (RFC 5533 §9). Times are the caller's monotonic nanoseconds. Keep one
// Stamps per context across republished tables.
type Stamps struct {
	LastSent, LastReceived       atomic.Int64
	SentPackets, ReceivedPackets atomic.Uint64
}

// ContextConfig describes one ULID-pair context as the engine sees it.
type ContextConfig struct {
	LocalULID, PeerULID netip.Addr
	// LocalTag is CT(local), expected in received payload headers;
	// PeerTag is CT(peer), written into sent ones (RFC 5533 §5.2).
	LocalTag, PeerTag shim6.ContextTag
	// LocalLocator and PeerLocator are the current pair. When they equal
	// the ULIDs, packets go out unchanged (RFC 5533 §11).
	LocalLocator, PeerLocator netip.Addr
	// LocalLocators and PeerLocators are the locators accepted in
	// received payload packets (Ls(local), Ls(peer)); the current pair is
	// always accepted.
	LocalLocators, PeerLocators []netip.Addr
	// Stamps are shared with the control plane; nil allocates fresh ones.
	Stamps *Stamps
	// InboundOnly marks a forked context (FII ≠ 0, RFC 5533 §4.2): it
	// shares its ULID pair with the default context, so it is found only
	// by CT(local) for received payload. Forking applies to sending only
	// and LAN hosts cannot choose a fork, so outbound packets of the pair
	// use the pair's other context.
	InboundOnly bool
}

// Uplink is one provider link: the prefix its locators live under, its
// MTU and whether the monitor considers it down.
type Uplink struct {
	Prefix netip.Prefix
	MTU    int
	Down   bool
}

// FallbackEntry maps a host's ULID to its locator under another uplink
// prefix (from the HBA address book). Translation between them is 1:1.
type FallbackEntry struct {
	ULID, Locator netip.Addr
}

// Config is everything a Table is built from.
type Config struct {
	// SitePrefixes are the LAN prefixes (the /64s under every uplink
	// prefix); a packet whose source is inside one is outbound.
	SitePrefixes []netip.Prefix
	Uplinks      []Uplink
	// DefaultMTU applies to locators under no uplink; 0 means 1500.
	DefaultMTU int
	// ClampMTU is the MTU TCP MSS clamping assumes (MSS = ClampMTU − 40 −
	// 20 − 8); 0 means the smallest uplink MTU (or DefaultMTU).
	ClampMTU int
	// ICMPSource is the gateway's global address used as the source of
	// the Packet Too Big messages it generates; invalid disables them.
	ICMPSource netip.Addr
	Contexts   []ContextConfig
	// Fallback lists every book host's alternate locators; NoShim6Peers
	// are peers known not to speak Shim6 (docs/architecture.md §7).
	Fallback     []FallbackEntry
	NoShim6Peers []netip.Addr
}

// Context is one published context; it never changes after NewTable.
type Context struct {
	cfg                 ContextConfig
	localULID, peerULID [16]byte
	localLoc, peerLoc   [16]byte
	localLocs, peerLocs [][16]byte
	shimmed             bool
	mtu                 int
	stamps              *Stamps
	samePeerTag         *Context // chain of contexts sharing CT(peer)
	inboundOnly         bool
}

// Config returns the context's description (slices shared; don't modify).
func (c *Context) Config() ContextConfig { return c.cfg }

// Stamps returns the context's traffic stamps.
func (c *Context) Stamps() *Stamps { return c.stamps }

// Shimmed reports whether the current locator pair differs from the ULID
// pair, so that packets carry the payload header.
func (c *Context) Shimmed() bool { return c.shimmed }

// InboundOnly reports whether the context is only found by CT(local).
func (c *Context) InboundOnly() bool { return c.inboundOnly }

// MTU is the MTU of the uplink of the current local locator.
func (c *Context) MTU() int { return c.mtu }

func (c *Context) acceptsLocal(a [16]byte) bool {
	if a == c.localLoc {
		return true
	}
	for _, l := range c.localLocs {
		if l == a {
			return true
		}
	}
	return false
}

func (c *Context) acceptsPeer(a [16]byte) bool {
	if a == c.peerLoc {
		return true
	}
	for _, l := range c.peerLocs {
		if l == a {
			return true
		}
	}
	return false
}

type pairKey [32]byte

func makePairKey(local, peer []byte) (k pairKey) {
	copy(k[:16], local)
	copy(k[16:], peer)
	return k
}

type altLocator struct {
	addr   [16]byte
	uplink int // index in Table.uplinks, -1 if under none
}

type fallbackHost struct {
	ulidUplink int
	alts       [MaxAlternates]altLocator
	n          int
}

// Table is an immutable snapshot of everything the data plane needs. Build
// it with NewTable and publish it with Rewriter.Publish.
type Table struct {
	sites      []netip.Prefix
	uplinks    []Uplink
	defaultMTU int
	mss        uint16
	icmpSrc    netip.Addr
	byPair     map[pairKey]*Context
	byTag      map[shim6.ContextTag]*Context
	byPeerTag  map[shim6.ContextTag]*Context
	fbOut      map[[16]byte]*fallbackHost
	fbIn       map[[16]byte][16]byte // locator → ULID
	noShim6    map[[16]byte]struct{}
}

func validUnicast(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && !a.IsUnspecified() && !a.IsMulticast() && a.Zone() == ""
}

// NewTable checks cfg and builds a Table. Slices in cfg are not retained
// except through Context.Config.
func NewTable(cfg Config) (*Table, error) {
	t := &Table{
		sites:      append([]netip.Prefix(nil), cfg.SitePrefixes...),
		uplinks:    append([]Uplink(nil), cfg.Uplinks...),
		defaultMTU: cfg.DefaultMTU,
		icmpSrc:    cfg.ICMPSource,
		byPair:     make(map[pairKey]*Context, len(cfg.Contexts)),
		byTag:      make(map[shim6.ContextTag]*Context, len(cfg.Contexts)),
		byPeerTag:  make(map[shim6.ContextTag]*Context, len(cfg.Contexts)),
		fbOut:      make(map[[16]byte]*fallbackHost),
		fbIn:       make(map[[16]byte][16]byte, len(cfg.Fallback)),
		noShim6:    make(map[[16]byte]struct{}, len(cfg.NoShim6Peers)),
	}
	if t.defaultMTU == 0 {
		t.defaultMTU = 1500
	}
	if t.defaultMTU < minMTU {
		return nil, fmt.Errorf("%w: default mtu %d below %d", ErrBadConfig, t.defaultMTU, minMTU)
	}
	for _, p := range t.sites {
		if !p.IsValid() || !p.Addr().Is6() {
			return nil, fmt.Errorf("%w: site prefix %v", ErrBadConfig, p)
		}
	}
	clamp := cfg.ClampMTU
	for i, u := range t.uplinks {
		if !u.Prefix.IsValid() || !u.Prefix.Addr().Is6() || u.MTU < minMTU || u.MTU > 65535 {
			return nil, fmt.Errorf("%w: uplink %d: prefix %v mtu %d", ErrBadConfig, i, u.Prefix, u.MTU)
		}
		if cfg.ClampMTU == 0 && (clamp == 0 || u.MTU < clamp) {
			clamp = u.MTU
		}
	}
	if clamp == 0 {
		clamp = t.defaultMTU
	}
	if clamp < minMTU {
		return nil, fmt.Errorf("%w: clamp mtu %d below %d", ErrBadConfig, clamp, minMTU)
	}
	t.mss = uint16(min(clamp, 65535) - ipv6HeaderLen - tcpMinLen - shimLen)
	if t.icmpSrc.IsValid() && !validUnicast(t.icmpSrc) {
		return nil, fmt.Errorf("%w: icmp source %v", ErrBadConfig, t.icmpSrc)
	}
	for i := range cfg.Contexts {
		if err := t.addContext(&cfg.Contexts[i]); err != nil {
			return nil, err
		}
	}
	for _, e := range cfg.Fallback {
		if err := t.addFallback(e); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.NoShim6Peers {
		if !validUnicast(p) {
			return nil, fmt.Errorf("%w: no-shim6 peer %v", ErrBadConfig, p)
		}
		t.noShim6[p.As16()] = struct{}{}
	}
	return t, nil
}

func (t *Table) addContext(cc *ContextConfig) error {
	for _, a := range [...]netip.Addr{cc.LocalULID, cc.PeerULID, cc.LocalLocator, cc.PeerLocator} {
		if !validUnicast(a) {
			return fmt.Errorf("%w: context address %v", ErrBadConfig, a)
		}
	}
	if !cc.LocalTag.Valid() || !cc.PeerTag.Valid() {
		return fmt.Errorf("%w: context tag beyond 47 bits", ErrBadConfig)
	}
	c := &Context{
		cfg:         *cc,
		localULID:   cc.LocalULID.As16(),
		peerULID:    cc.PeerULID.As16(),
		localLoc:    cc.LocalLocator.As16(),
		peerLoc:     cc.PeerLocator.As16(),
		stamps:      cc.Stamps,
		inboundOnly: cc.InboundOnly,
	}
	if c.stamps == nil {
		c.stamps = new(Stamps)
		c.cfg.Stamps = c.stamps
	}
	for _, a := range cc.LocalLocators {
		if !validUnicast(a) {
			return fmt.Errorf("%w: local locator %v", ErrBadConfig, a)
		}
		c.localLocs = append(c.localLocs, a.As16())
	}
	for _, a := range cc.PeerLocators {
		if !validUnicast(a) {
			return fmt.Errorf("%w: peer locator %v", ErrBadConfig, a)
		}
		c.peerLocs = append(c.peerLocs, a.As16())
	}
	c.shimmed = c.localLoc != c.localULID || c.peerLoc != c.peerULID
	c.mtu = t.defaultMTU
	if u := t.uplinkOf(cc.LocalLocator); u >= 0 {
		c.mtu = t.uplinks[u].MTU
	}
	k := makePairKey(c.localULID[:], c.peerULID[:])
	if _, dup := t.byPair[k]; dup && !c.inboundOnly {
		return fmt.Errorf("%w: ulid pair %v %v", ErrDuplicate, cc.LocalULID, cc.PeerULID)
	}
	if _, dup := t.byTag[cc.LocalTag]; dup {
		return fmt.Errorf("%w: local context tag %#x", ErrDuplicate, uint64(cc.LocalTag))
	}
	t.byTag[cc.LocalTag] = c
	if c.inboundOnly {
		// Never in byPeerTag either: ICMPv6 errors quote packets we sent
		// (RFC 5533 §8), and none is sent on this context.
		return nil
	}
	t.byPair[k] = c
	c.samePeerTag = t.byPeerTag[cc.PeerTag]
	t.byPeerTag[cc.PeerTag] = c
	return nil
}

func (t *Table) addFallback(e FallbackEntry) error {
	if !validUnicast(e.ULID) || !validUnicast(e.Locator) || e.ULID == e.Locator {
		return fmt.Errorf("%w: fallback %v ↔ %v", ErrBadConfig, e.ULID, e.Locator)
	}
	u, l := e.ULID.As16(), e.Locator.As16()
	if _, dup := t.fbIn[l]; dup {
		return fmt.Errorf("%w: fallback locator %v", ErrDuplicate, e.Locator)
	}
	if _, isLoc := t.fbIn[u]; isLoc {
		return fmt.Errorf("%w: fallback ulid %v is also a locator", ErrDuplicate, e.ULID)
	}
	if _, isULID := t.fbOut[l]; isULID {
		return fmt.Errorf("%w: fallback locator %v is also a ulid", ErrDuplicate, e.Locator)
	}
	h := t.fbOut[u]
	if h == nil {
		h = &fallbackHost{ulidUplink: t.uplinkOf(e.ULID)}
		t.fbOut[u] = h
	}
	if h.n == MaxAlternates {
		return fmt.Errorf("%w: more than %d fallback locators for %v", ErrBadConfig, MaxAlternates, e.ULID)
	}
	h.alts[h.n] = altLocator{addr: l, uplink: t.uplinkOf(e.Locator)}
	h.n++
	t.fbIn[l] = u
	return nil
}

// uplinkOf returns the index of the uplink whose prefix holds a, or -1.
func (t *Table) uplinkOf(a netip.Addr) int {
	for i := range t.uplinks {
		if t.uplinks[i].Prefix.Contains(a) {
			return i
		}
	}
	return -1
}

// UplinkOf returns the index of the uplink (in Config.Uplinks order)
// whose prefix holds a, or -1.
func (t *Table) UplinkOf(a netip.Addr) int { return t.uplinkOf(a) }

func (t *Table) uplinkUp(i int) bool { return i < 0 || !t.uplinks[i].Down }

// IsLocalAddr reports whether a lies in one of the site prefixes, i.e. is
// a LAN host's address.
func (t *Table) IsLocalAddr(a netip.Addr) bool {
	for _, p := range t.sites {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// DirectionOf returns Outbound if pkt (an IPv6 packet) has its source in a
// site prefix and Inbound otherwise (also for packets too short to tell).
func (t *Table) DirectionOf(pkt []byte) Direction {
	if len(pkt) >= ipv6HeaderLen && t.IsLocalAddr(addrAt(pkt, offSrc)) {
		return Outbound
	}
	return Inbound
}

// LookupPair returns the context that sends for a ULID pair (never an
// InboundOnly one), or nil.
func (t *Table) LookupPair(local, peer netip.Addr) *Context {
	l, p := local.As16(), peer.As16()
	return t.byPair[makePairKey(l[:], p[:])]
}

// LookupTag returns the context whose CT(local) is tag, or nil.
func (t *Table) LookupTag(tag shim6.ContextTag) *Context { return t.byTag[tag] }

// MSS is the value TCP MSS options are clamped to.
func (t *Table) MSS() int { return int(t.mss) }

// Len returns the number of contexts, InboundOnly ones included.
func (t *Table) Len() int { return len(t.byTag) }

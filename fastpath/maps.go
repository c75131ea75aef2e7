package fastpath

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
)

// MaxContexts is the default capacity of the context maps and stamp
// slots (MAX_CONTEXTS in bpf/fastpath.c; Options.MaxContexts changes it
// at load); MaxFallback that of the fallback locators (MAX_FALLBACK).
const (
	MaxContexts = 65536
	MaxFallback = 1 << 20
)

// locatorsPerContext is the locators map's entries per context (8 *
// MAX_CONTEXTS in bpf/fastpath.c).
const locatorsPerContext = 8

// ErrTooMany: the table has more contexts than the maps hold. Apply then
// mirrors as many as fit; the others stay on the TUN path, which is
// still correct.
var ErrTooMany = errors.New("fastpath: more contexts than the maps hold")

type locKey = fastpathLocKey

// Maps mirrors the published rewrite.Table into the program's maps. The
// gateway calls Apply with the same Config and Table it publishes to the
// rewrite.Rewriter, so a locator change reaches the kernel in the same
// step as the TUN path; Harvest folds the kernel's traffic stamps into the
// contexts' rewrite.Stamps before the control loop reads them. Methods are
// safe for concurrent use.
type Maps struct {
	mu   sync.Mutex
	objs *fastpathMaps

	// What the kernel holds: per context (by CT(local)) the entries last
	// written for it, the owner of each ULID pair, and the site prefixes
	// and fallback locators of the last Config.
	ctxs      map[uint64]*ctxMirror
	pairOwner map[fastpathPairKey]uint64
	gen       uint64
	sites     map[fastpathLpmKey]struct{}
	fallback  map[[16]byte]struct{}
	lastSites []netip.Prefix
	lastFB    []rewrite.FallbackEntry

	slots     map[*rewrite.Stamps]uint32
	refs      map[*rewrite.Stamps]int // contexts using each slot
	free      []uint32
	next      uint32
	maxSlots  uint32 // Options.MaxContexts
	seen      map[uint32]fastpathStamp
	stampsMem *ebpf.Memory
}

// ctxMirror is what Apply last wrote for one context.
type ctxMirror struct {
	in     fastpathInCtx
	hasOut bool // not InboundOnly
	pair   fastpathPairKey
	out    fastpathOutCtx
	locs   []locKey
	stamps *rewrite.Stamps
	gen    uint64 // Apply round that last saw the context
}

func newMaps(objs *fastpathMaps, maxContexts int) (*Maps, error) {
	m := &Maps{
		objs: objs,
		ctxs: map[uint64]*ctxMirror{}, pairOwner: map[fastpathPairKey]uint64{},
		sites: map[fastpathLpmKey]struct{}{}, fallback: map[[16]byte]struct{}{},
		slots: map[*rewrite.Stamps]uint32{}, refs: map[*rewrite.Stamps]int{},
		seen: map[uint32]fastpathStamp{}, maxSlots: uint32(maxContexts),
	}
	mem, err := objs.Stamps.Memory()
	if err != nil {
		return nil, fmt.Errorf("fastpath: map stamps: %w", err)
	}
	m.stampsMem = mem
	return m, nil
}

// Apply makes the maps describe t, which the caller built from cfg with
// rewrite.NewTable: the site prefixes, every context (its current
// locators, CT(peer), uplink MTU, the accepted locator sets and a stamp
// slot shared by every table that uses the same rewrite.Stamps) and the
// fallback locators. Only entries that changed are written, so a publish
// costs one lookup per unchanged context and a few syscalls per changed
// one; new entries go in before the ones they replace are deleted.
func (m *Maps) Apply(cfg rewrite.Config, t *rewrite.Table) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(cfg.Fallback) > MaxFallback {
		return fmt.Errorf("fastpath: %d fallback locators, the map holds %d", len(cfg.Fallback), MaxFallback)
	}
	m.gen++
	var errs []error
	put := func(mp *ebpf.Map, k, v any) {
		if err := mp.Put(k, v); err != nil {
			errs = append(errs, err)
		}
	}
	del := func(mp *ebpf.Map, k any) {
		if err := mp.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	var one uint8 = 1
	// Referenced entries first: site prefixes and fallback locators.
	var sites map[fastpathLpmKey]struct{}
	var fb map[[16]byte]struct{}
	if !slices.Equal(cfg.SitePrefixes, m.lastSites) {
		sites = make(map[fastpathLpmKey]struct{}, len(cfg.SitePrefixes))
		for _, p := range cfg.SitePrefixes {
			p = p.Masked()
			sites[fastpathLpmKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}] = struct{}{}
		}
		errs = append(errs, sync1(m.objs.Sites, m.sites, sites, func(fastpathLpmKey) any { return one }, true))
	}
	if !slices.Equal(cfg.Fallback, m.lastFB) {
		fb = make(map[[16]byte]struct{}, len(cfg.Fallback))
		for _, e := range cfg.Fallback {
			fb[e.Locator.As16()] = struct{}{}
		}
		errs = append(errs, sync1(m.objs.FallbackLocs, m.fallback, fb, func([16]byte) any { return one }, true))
	}
	if len(m.free) == 0 && m.next >= m.maxSlots {
		m.freeUnused(cfg, t) // at capacity: reuse the slots of gone contexts now
	}
	type pairDel struct {
		key fastpathPairKey
		tag uint64
	}
	var delPairs []pairDel
	var delTags []uint64
	var delLocs, locs []locKey
	var release []*rewrite.Stamps // after the loop: another context may take them over
	left, kept := 0, 0
	for _, cc := range cfg.Contexts {
		c := t.LookupTag(cc.LocalTag)
		if c == nil {
			return errors.Join(append(errs, fmt.Errorf("fastpath: context %#x not in the table", uint64(cc.LocalTag)))...)
		}
		cc = c.Config()
		tag := uint64(cc.LocalTag)
		old := m.ctxs[tag]
		st := c.Stamps()
		var slot uint32
		if old != nil && old.stamps == st {
			slot = old.in.Slot
		} else {
			var err error
			if slot, err = m.slot(st); errors.Is(err, ErrTooMany) {
				left++ // an old mirror of the tag goes in the sweep below
				continue
			} else if err != nil {
				return errors.Join(append(errs, err)...)
			}
		}
		e := ctxMirror{
			in:     fastpathInCtx{LocalUlid: cc.LocalULID.As16(), PeerUlid: cc.PeerULID.As16(), Slot: slot},
			hasOut: !cc.InboundOnly,
			stamps: st, gen: m.gen,
		}
		locs = addLocs(locs[:0], tag, 0, cc.LocalLocator, cc.LocalLocators)
		locs = addLocs(locs, tag, 1, cc.PeerLocator, cc.PeerLocators)
		if e.hasOut {
			var ph [8]byte
			shim6.PutPayloadHeader(ph[:], 0, cc.PeerTag)
			e.pair = fastpathPairKey{Local: cc.LocalULID.As16(), Peer: cc.PeerULID.As16()}
			e.out = fastpathOutCtx{
				LocalLoc: cc.LocalLocator.As16(), PeerLoc: cc.PeerLocator.As16(),
				PeerTag: [6]uint8(ph[2:]), Mtu: uint32(c.MTU()), Slot: slot,
			}
			if c.Shimmed() {
				e.out.Shimmed = 1
			}
		}
		kept++
		if old != nil && old.stamps == st && old.in == e.in && old.hasOut == e.hasOut &&
			old.pair == e.pair && old.out == e.out && slices.Equal(old.locs, locs) {
			old.gen = m.gen
			continue
		}
		// Locators, then the tag, then the pair that refers to the slot.
		for _, k := range locs {
			if old == nil || !slices.Contains(old.locs, k) {
				put(m.objs.Locators, k, one)
			}
		}
		if old == nil || old.in != e.in {
			put(m.objs.ByTag, tag, e.in)
		}
		if e.hasOut && (old == nil || !old.hasOut || old.pair != e.pair || old.out != e.out) {
			put(m.objs.ByPair, e.pair, e.out)
			m.pairOwner[e.pair] = tag
		}
		if old != nil {
			for _, k := range old.locs {
				if !slices.Contains(locs, k) {
					delLocs = append(delLocs, k)
				}
			}
			if old.hasOut && (!e.hasOut || old.pair != e.pair) {
				delPairs = append(delPairs, pairDel{old.pair, tag})
			}
			if old.stamps != st {
				release = append(release, old.stamps)
			}
		}
		e.locs = slices.Clone(locs)
		stored := new(ctxMirror)
		*stored = e
		m.ctxs[tag] = stored
	}
	if kept != len(m.ctxs) {
		for tag, old := range m.ctxs {
			if old.gen == m.gen {
				continue
			}
			if old.hasOut {
				delPairs = append(delPairs, pairDel{old.pair, tag})
			}
			delTags = append(delTags, tag)
			delLocs = append(delLocs, old.locs...)
			release = append(release, old.stamps)
			delete(m.ctxs, tag)
		}
	}
	for _, st := range release {
		m.release(st)
	}
	// Removals in the reverse order: a pair only if no other context
	// took it over in this round.
	for _, d := range delPairs {
		if owner, ok := m.pairOwner[d.key]; ok && owner == d.tag {
			del(m.objs.ByPair, d.key)
			delete(m.pairOwner, d.key)
		}
	}
	for _, tag := range delTags {
		del(m.objs.ByTag, tag)
	}
	for _, k := range delLocs {
		del(m.objs.Locators, k)
	}
	if fb != nil {
		errs = append(errs, sync1(m.objs.FallbackLocs, m.fallback, fb, nil, false))
		m.fallback, m.lastFB = fb, slices.Clone(cfg.Fallback)
	}
	if sites != nil {
		errs = append(errs, sync1(m.objs.Sites, m.sites, sites, nil, false))
		m.sites, m.lastSites = sites, slices.Clone(cfg.SitePrefixes)
	}
	err := errors.Join(errs...)
	if err == nil && left > 0 {
		err = fmt.Errorf("%w: %d of %d left to the TUN path", ErrTooMany, left, len(cfg.Contexts))
	}
	return err
}

// release drops one context's use of the slot of st, freeing it with the
// last.
func (m *Maps) release(st *rewrite.Stamps) {
	slot, ok := m.slots[st]
	if !ok {
		return // freed at capacity already
	}
	if m.refs[st]--; m.refs[st] > 0 {
		return
	}
	delete(m.slots, st)
	delete(m.refs, st)
	delete(m.seen, slot)
	m.free = append(m.free, slot)
}

// freeUnused frees the slots of stamps no context of t uses. Until the
// maps are synced, packets of a removed context may stamp the slot's new
// owner; only at capacity is that better than leaving contexts out.
func (m *Maps) freeUnused(cfg rewrite.Config, t *rewrite.Table) {
	keep := make(map[*rewrite.Stamps]bool, len(cfg.Contexts))
	for _, cc := range cfg.Contexts {
		if c := t.LookupTag(cc.LocalTag); c != nil {
			keep[c.Stamps()] = true
		}
	}
	for st, slot := range m.slots {
		if !keep[st] {
			delete(m.slots, st)
			delete(m.refs, st)
			delete(m.seen, slot)
			m.free = append(m.free, slot)
		}
	}
}

// addLocs appends the locator keys of one side of a context, each once.
func addLocs(dst []locKey, tag uint64, side uint8, cur netip.Addr, set []netip.Addr) []locKey {
	for i := -1; i < len(set); i++ {
		a := cur
		if i >= 0 {
			a = set[i]
		}
		k := locKey{Tag: tag, Side: side, Addr: a.As16()}
		if !slices.Contains(dst, k) {
			dst = append(dst, k)
		}
	}
	return dst
}

// sync1 writes the keys of want missing from have (put) or deletes the
// keys of have missing from want (!put) in a set-like map.
func sync1[K comparable](m *ebpf.Map, have, want map[K]struct{}, val func(K) any, put bool) error {
	var errs []error
	if put {
		for k := range want {
			if _, ok := have[k]; !ok {
				errs = append(errs, m.Put(k, val(k)))
			}
		}
		return errors.Join(errs...)
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// slot returns the stamp slot of st, taking and zeroing a free one for
// stamps not seen before.
func (m *Maps) slot(st *rewrite.Stamps) (uint32, error) {
	if s, ok := m.slots[st]; ok {
		m.refs[st]++
		return s, nil
	}
	var s uint32
	switch {
	case len(m.free) > 0:
		s, m.free = m.free[len(m.free)-1], m.free[:len(m.free)-1]
	case m.next < m.maxSlots:
		s = m.next
		m.next++
	default:
		return 0, ErrTooMany
	}
	var zero fastpathStamp
	if err := m.writeStamp(s, &zero); err != nil {
		return 0, err
	}
	m.slots[st] = s
	m.refs[st] = 1
	m.seen[s] = zero
	return s, nil
}

const (
	stampSize   = int64(unsafe.Sizeof(fastpathStamp{}))
	stampShards = 4 // STAMP_SHARDS in bpf/fastpath.c
)

// writeStamp sets every shard of slot to st.
func (m *Maps) writeStamp(slot uint32, st *fastpathStamp) error {
	b := unsafe.Slice((*byte)(unsafe.Pointer(st)), stampSize)
	for i := range int64(stampShards) {
		if _, err := m.stampsMem.WriteAt(b, (int64(slot)*stampShards+i)*stampSize); err != nil {
			return err
		}
	}
	return nil
}

// readStamp returns the shards of slot added up: counts summed, the
// latest times.
func (m *Maps) readStamp(slot uint32, st *fastpathStamp) error {
	*st = fastpathStamp{}
	var sh fastpathStamp
	b := unsafe.Slice((*byte)(unsafe.Pointer(&sh)), stampSize)
	for i := range int64(stampShards) {
		if _, err := m.stampsMem.ReadAt(b, (int64(slot)*stampShards+i)*stampSize); err != nil {
			return err
		}
		st.Sent += sh.Sent
		st.Recv += sh.Recv
		st.LastSent = max(st.LastSent, sh.LastSent)
		st.LastRecv = max(st.LastRecv, sh.LastRecv)
	}
	return nil
}

// Harvest adds what the program saw since the last call to the contexts'
// rewrite.Stamps: packet counts, and last-sent / last-received times
// converted to the caller's clock, of which now is the current reading,
// when they are later than what the TUN path stamped. Call it right
// before the control loop reads the stamps for REAP.
func (m *Maps) Harvest(now int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return
	}
	offset := now - ts.Nano() // kernel monotonic → caller's clock
	for st, slot := range m.slots {
		var k fastpathStamp
		if m.readStamp(slot, &k) != nil {
			continue
		}
		old := m.seen[slot]
		// Counts only grow; a smaller one is a read torn by a writer.
		if k.Sent < old.Sent || k.Recv < old.Recv {
			continue
		}
		if k.Sent != old.Sent {
			st.SentPackets.Add(k.Sent - old.Sent)
			storeMax(&st.LastSent, int64(k.LastSent)+offset)
		}
		if k.Recv != old.Recv {
			st.ReceivedPackets.Add(k.Recv - old.Recv)
			storeMax(&st.LastReceived, int64(k.LastRecv)+offset)
		}
		m.seen[slot] = k
	}
}

// Stats returns the program's counters per verdict, summed over CPUs.
func (m *Maps) Stats() ([NumVerdicts]Stat, error) {
	var out [NumVerdicts]Stat
	for v := range NumVerdicts {
		var per []fastpathStat
		if err := m.objs.Stats.Lookup(uint32(v), &per); err != nil {
			return out, err
		}
		for _, s := range per {
			out[v].Packets += s.Packets
			out[v].Bytes += s.Bytes
		}
	}
	return out, nil
}

// Len returns the number of contexts found by tag and by pair.
func (m *Maps) Len() (byTag, byPair int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ctxs), len(m.pairOwner)
}

// storeMax raises a to v unless it is already later.
func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if old >= v || a.CompareAndSwap(old, v) {
			return
		}
	}
}

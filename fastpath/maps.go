package fastpath

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
)

// MaxContexts is the capacity of the context maps and stamp slots
// (MAX_CONTEXTS in bpf/fastpath.c); MaxFallback that of the fallback
// locators (MAX_FALLBACK).
const (
	MaxContexts = 65536
	MaxFallback = 1 << 20
)

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

	sites    map[fastpathLpmKey]struct{}
	byPair   map[fastpathPairKey]fastpathOutCtx
	byTag    map[uint64]fastpathInCtx
	locators map[locKey]struct{}
	fallback map[[16]byte]struct{}

	slots     map[*rewrite.Stamps]uint32
	free      []uint32
	next      uint32
	maxSlots  uint32 // MaxContexts; less in tests
	seen      map[uint32]fastpathStamp
	stampsMem *ebpf.Memory
}

func newMaps(objs *fastpathMaps) (*Maps, error) {
	m := &Maps{
		objs:  objs,
		sites: map[fastpathLpmKey]struct{}{}, byPair: map[fastpathPairKey]fastpathOutCtx{},
		byTag: map[uint64]fastpathInCtx{}, locators: map[locKey]struct{}{},
		fallback: map[[16]byte]struct{}{}, slots: map[*rewrite.Stamps]uint32{},
		seen: map[uint32]fastpathStamp{}, maxSlots: MaxContexts,
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
// fallback locators. Only entries that changed are written; new ones go in
// before the ones they replace are deleted.
func (m *Maps) Apply(cfg rewrite.Config, t *rewrite.Table) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(cfg.Fallback) > MaxFallback {
		return fmt.Errorf("fastpath: %d fallback locators, the map holds %d", len(cfg.Fallback), MaxFallback)
	}
	sites := make(map[fastpathLpmKey]struct{}, len(cfg.SitePrefixes))
	for _, p := range cfg.SitePrefixes {
		p = p.Masked()
		sites[fastpathLpmKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}] = struct{}{}
	}
	byPair := make(map[fastpathPairKey]fastpathOutCtx, len(cfg.Contexts))
	byTag := make(map[uint64]fastpathInCtx, len(cfg.Contexts))
	locs := make(map[locKey]struct{}, 4*len(cfg.Contexts))
	if len(m.free) == 0 && m.next >= m.maxSlots {
		m.freeUnused(cfg, t) // at capacity: reuse the slots of gone contexts now
	}
	left := 0 // contexts without a stamp slot, left to the TUN path
	for _, cc := range cfg.Contexts {
		c := t.LookupTag(cc.LocalTag)
		if c == nil {
			return fmt.Errorf("fastpath: context %#x not in the table", uint64(cc.LocalTag))
		}
		cc = c.Config()
		slot, err := m.slot(c.Stamps())
		if errors.Is(err, ErrTooMany) {
			left++
			continue
		}
		if err != nil {
			return err
		}
		tag := uint64(cc.LocalTag)
		byTag[tag] = fastpathInCtx{LocalUlid: cc.LocalULID.As16(), PeerUlid: cc.PeerULID.As16(), Slot: slot}
		addLocs(locs, tag, 0, cc.LocalLocator, cc.LocalLocators)
		addLocs(locs, tag, 1, cc.PeerLocator, cc.PeerLocators)
		if cc.InboundOnly {
			continue
		}
		var ph [8]byte
		shim6.PutPayloadHeader(ph[:], 0, cc.PeerTag)
		oc := fastpathOutCtx{
			LocalLoc: cc.LocalLocator.As16(), PeerLoc: cc.PeerLocator.As16(),
			PeerTag: [6]uint8(ph[2:]), Mtu: uint32(c.MTU()), Slot: slot,
		}
		if c.Shimmed() {
			oc.Shimmed = 1
		}
		byPair[fastpathPairKey{Local: cc.LocalULID.As16(), Peer: cc.PeerULID.As16()}] = oc
	}
	fb := make(map[[16]byte]struct{}, len(cfg.Fallback))
	for _, e := range cfg.Fallback {
		fb[e.Locator.As16()] = struct{}{}
	}
	// Referenced entries first, then what refers to them, then removals
	// in the reverse order.
	var one uint8 = 1
	err := errors.Join(
		sync1(m.objs.Sites, m.sites, sites, func(fastpathLpmKey) any { return one }, true),
		sync1(m.objs.Locators, m.locators, locs, func(locKey) any { return one }, true),
		sync1(m.objs.FallbackLocs, m.fallback, fb, func([16]byte) any { return one }, true),
		sync2(m.objs.ByTag, m.byTag, byTag, true),
		sync2(m.objs.ByPair, m.byPair, byPair, true),
		sync2(m.objs.ByPair, m.byPair, byPair, false),
		sync2(m.objs.ByTag, m.byTag, byTag, false),
		sync1(m.objs.FallbackLocs, m.fallback, fb, nil, false),
		sync1(m.objs.Locators, m.locators, locs, nil, false),
		sync1(m.objs.Sites, m.sites, sites, nil, false),
	)
	m.sites, m.locators, m.fallback, m.byTag, m.byPair = sites, locs, fb, byTag, byPair
	m.freeUnused(cfg, t)
	if err == nil && left > 0 {
		err = fmt.Errorf("%w: %d of %d left to the TUN path", ErrTooMany, left, len(cfg.Contexts))
	}
	return err
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
			delete(m.seen, slot)
			m.free = append(m.free, slot)
		}
	}
}

func addLocs(dst map[locKey]struct{}, tag uint64, side uint8, cur netip.Addr, set []netip.Addr) {
	dst[locKey{Tag: tag, Side: side, Addr: cur.As16()}] = struct{}{}
	for _, a := range set {
		dst[locKey{Tag: tag, Side: side, Addr: a.As16()}] = struct{}{}
	}
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

// sync2 is sync1 for maps whose values may change.
func sync2[K, V comparable](m *ebpf.Map, have, want map[K]V, put bool) error {
	var errs []error
	if put {
		for k, v := range want {
			if old, ok := have[k]; !ok || old != v {
				errs = append(errs, m.Put(k, v))
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
	return len(m.byTag), len(m.byPair)
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

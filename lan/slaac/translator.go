package slaac

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/lan/bucket"
	"github.com/shim6gw/shim6gw/lan/statefile"
)

// mapping is one host address translated to one book entry. host and
// entry never change; seen is the caller's monotonic clock of the last
// packet.
type mapping struct {
	host  [16]byte
	entry int32
	seen  atomic.Int64
}

// hostIndex is the published, read-only map of host addresses; it is
// copied on every change (rare, rate-limited) so packets read it without
// a lock.
type hostIndex struct {
	m map[[16]byte]*mapping
}

// Refusal says why a host address got no mapping.
type Refusal uint8

// Refusals, a closed set (metric label values).
const (
	RefusedPoolExhausted Refusal = iota
	RefusedRateLimited
	NumRefusals
)

var refusalNames = [...]string{"pool_exhausted", "rate_limited"}

func (r Refusal) String() string { return refusalNames[r] }

// Stats are the translator's counters (atomics: the data plane adds to
// them) and gauges (filled by Translator.Stats).
type Stats struct {
	Mappings, PoolSize int
	// TranslatedOut and TranslatedIn count packets rewritten.
	TranslatedOut, TranslatedIn atomic.Uint64
	// DroppedOut: outbound packets from a host address that got no
	// mapping (see Refused); DroppedIn: inbound packets to an entry of
	// the pool that is mapped to nobody.
	DroppedOut, DroppedIn atomic.Uint64
	Created, Expired      atomic.Uint64
	Refused               [NumRefusals]atomic.Uint64
	PersistErrors         atomic.Uint64
}

// StatsSnapshot is a copy of Stats for status and metrics.
type StatsSnapshot struct {
	Mappings, PoolSize          int
	TranslatedOut, TranslatedIn uint64
	DroppedOut, DroppedIn       uint64
	Created, Expired            uint64
	Refused                     [NumRefusals]uint64
	PersistErrors               uint64
}

// Mapping is one row of the table as status and /debug show it.
type Mapping struct {
	Host     netip.Addr `json:"host"`
	ULID     netip.Addr `json:"ulid"`
	Entry    int        `json:"entry"`
	LastSeen time.Time  `json:"last_seen"`
}

// Options are the run-time inputs of a Translator.
type Options struct {
	Logger *slog.Logger
	// Now is the monotonic clock, in nanoseconds, that the caller passes
	// to Outbound and Inbound; nil means nanoseconds since New.
	Now func() int64
}

// Translator maps the hosts of the SLAAC prefix 1:1 onto book entries and
// rewrites their packets. Outbound and Inbound may be called from any
// number of goroutines; everything else takes the lock.
type Translator struct {
	cfg        Config
	book       *hba.Book
	log        *slog.Logger
	now        func() int64
	prefix     [8]byte // the SLAAC /64
	ulidPrefix [8]byte // the book's first /64
	first      int32
	ulids      [][16]byte         // ulids[e-first]: entry e's ULID
	byULID     map[[16]byte]int32 // the inverse: e-first by ULID
	idle       int64
	kick       chan struct{} // a new mapping wants saving

	hosts   atomic.Pointer[hostIndex]
	byEntry []atomic.Pointer[mapping] // by e-first
	stats   Stats

	mu     sync.Mutex
	free   []int32 // entries to hand out (lazy: check isFree)
	isFree []bool
	nFree  int
	// last[e-first] is the host entry e was mapped to before it expired,
	// so the same address gets the same entry back (prev indexes it).
	last    [][16]byte
	prev    map[[16]byte]int32
	bucket  bucket.Bucket
	dirty   bool
	lastErr time.Time
}

// New returns a translator for cfg (which must be enabled) over book,
// loading the state file. A state file that does not parse is renamed to
// <file>.bad and the translator starts empty (logged at Error).
func New(cfg Config, book *hba.Book, o Options) (*Translator, error) {
	ulidPrefix := book.Prefixes()[0]
	if !cfg.Enabled() {
		return nil, fmt.Errorf("slaac: no prefix configured")
	}
	if err := cfg.Validate("slaac_prefix", "slaac", book.Len(), ulidPrefix); err != nil {
		return nil, fmt.Errorf("slaac: %w", err)
	}
	first, end := cfg.poolRange(book.Len())
	n := end - first
	tr := &Translator{
		cfg: cfg, book: book, log: o.Logger, now: o.Now,
		first: int32(first), ulids: make([][16]byte, n), idle: int64(cfg.IdleTimeout),
		kick: make(chan struct{}, 1), byEntry: make([]atomic.Pointer[mapping], n),
		free: make([]int32, 0, n), isFree: make([]bool, n), last: make([][16]byte, n), prev: map[[16]byte]int32{},
		bucket: bucket.New(cfg.NewMappingsPerSecond, cfg.NewMappingsBurst),
	}
	copy(tr.prefix[:], cfg.Prefix.Addr().AsSlice()[:8])
	copy(tr.ulidPrefix[:], ulidPrefix.Addr().AsSlice()[:8])
	if tr.log == nil {
		tr.log = slog.New(slog.DiscardHandler)
	}
	tr.log = tr.log.With("component", "slaac")
	if tr.now == nil {
		base := time.Now()
		tr.now = func() int64 { return int64(time.Since(base)) }
	}
	tr.byULID = make(map[[16]byte]int32, n)
	for i := range n {
		tr.ulids[i] = book.Entry(first + i).ULID().As16()
		tr.byULID[tr.ulids[i]] = int32(i)
	}
	for i := n - 1; i >= 0; i-- {
		tr.free = append(tr.free, int32(first+i)) // lowest entry on top
		tr.isFree[i] = true
	}
	tr.nFree = n
	tr.stats.PoolSize = n
	tr.hosts.Store(&hostIndex{m: map[[16]byte]*mapping{}})
	if err := tr.load(); err != nil {
		return nil, err
	}
	return tr, nil
}

// Prefix returns the SLAAC /64.
func (tr *Translator) Prefix() netip.Prefix { return tr.cfg.Prefix }

// newMapping maps host at now, or refuses (nil). It is the data plane's
// slow path: a lock, a token and a copy of the host index.
func (tr *Translator) newMapping(host [16]byte, now int64) *mapping {
	tr.mu.Lock()
	if m := tr.hosts.Load().m[host]; m != nil { // another worker was first
		tr.mu.Unlock()
		return m
	}
	if tr.nFree == 0 {
		tr.mu.Unlock()
		tr.stats.Refused[RefusedPoolExhausted].Add(1)
		return nil
	}
	if !tr.bucket.Take(time.Unix(0, now)) {
		tr.mu.Unlock()
		tr.stats.Refused[RefusedRateLimited].Add(1)
		return nil
	}
	m := tr.addLocked(host, tr.pickLocked(host), now)
	tr.mu.Unlock()
	tr.stats.Created.Add(1)
	select {
	case tr.kick <- struct{}{}:
	default:
	}
	return m
}

// pickLocked takes a free entry for host: the one it had before if still
// free, else the top of the free stack. nFree must be > 0.
func (tr *Translator) pickLocked(host [16]byte) int32 {
	if e, ok := tr.prev[host]; ok && tr.isFree[e-tr.first] {
		return e
	}
	for {
		e := tr.free[len(tr.free)-1]
		tr.free = tr.free[:len(tr.free)-1]
		if tr.isFree[e-tr.first] {
			return e
		}
	}
}

// addLocked maps host to free entry e and publishes the new index.
func (tr *Translator) addLocked(host [16]byte, e int32, seen int64) *mapping {
	i := e - tr.first
	tr.isFree[i] = false
	tr.nFree--
	if old := tr.last[i]; tr.prev[old] == e {
		delete(tr.prev, old)
	}
	delete(tr.prev, host)
	m := &mapping{host: host, entry: e}
	m.seen.Store(seen)
	tr.byEntry[i].Store(m)
	tr.publishLocked(func(idx map[[16]byte]*mapping) { idx[host] = m })
	tr.dirty = true
	return m
}

func (tr *Translator) publishLocked(edit func(map[[16]byte]*mapping)) {
	old := tr.hosts.Load().m
	idx := make(map[[16]byte]*mapping, len(old)+1)
	for k, v := range old {
		idx[k] = v
	}
	edit(idx)
	tr.hosts.Store(&hostIndex{m: idx})
}

// Expire removes the mappings idle for longer than the idle timeout at
// now and returns how many.
func (tr *Translator) Expire(now int64) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var gone []*mapping
	for i := range tr.byEntry {
		if m := tr.byEntry[i].Load(); m != nil && now-m.seen.Load() > tr.idle {
			gone = append(gone, m)
		}
	}
	if len(gone) == 0 {
		return 0
	}
	for _, m := range gone {
		i := m.entry - tr.first
		tr.byEntry[i].Store(nil)
		tr.isFree[i] = true
		tr.nFree++
		tr.free = append(tr.free, m.entry)
		tr.last[i] = m.host
		tr.prev[m.host] = m.entry
		tr.log.Debug("mapping expired", "host", netip.AddrFrom16(m.host), "entry", m.entry)
	}
	tr.publishLocked(func(idx map[[16]byte]*mapping) {
		for _, m := range gone {
			delete(idx, m.host)
		}
	})
	tr.dirty = true
	tr.stats.Expired.Add(uint64(len(gone)))
	return len(gone)
}

// Mappings returns the table in entry order.
func (tr *Translator) Mappings() []Mapping {
	now, wall := tr.now(), time.Now()
	var out []Mapping
	for i := range tr.byEntry {
		if m := tr.byEntry[i].Load(); m != nil {
			out = append(out, Mapping{Host: netip.AddrFrom16(m.host), ULID: netip.AddrFrom16(tr.ulids[i]),
				Entry: int(m.entry), LastSeen: wall.Add(time.Duration(m.seen.Load() - now)).UTC().Round(time.Second)})
		}
	}
	return out
}

// Stats returns a snapshot of the counters and gauges.
func (tr *Translator) Stats() StatsSnapshot {
	s := &tr.stats
	out := StatsSnapshot{PoolSize: s.PoolSize, TranslatedOut: s.TranslatedOut.Load(), TranslatedIn: s.TranslatedIn.Load(),
		DroppedOut: s.DroppedOut.Load(), DroppedIn: s.DroppedIn.Load(), Created: s.Created.Load(), Expired: s.Expired.Load(),
		PersistErrors: s.PersistErrors.Load()}
	for r := range NumRefusals {
		out.Refused[r] = s.Refused[r].Load()
	}
	out.Mappings = len(tr.hosts.Load().m)
	return out
}

// stateFile is the JSON document of the state file.
type stateFile struct {
	Version  int       `json:"version"`
	Mappings []Mapping `json:"mappings"`
}

const stateVersion = 1

// Save writes the state file if the table changed since the last write.
func (tr *Translator) Save() {
	tr.mu.Lock()
	if !tr.dirty {
		tr.mu.Unlock()
		return
	}
	tr.dirty = false
	tr.mu.Unlock()
	f := stateFile{Version: stateVersion, Mappings: tr.Mappings()}
	sort.Slice(f.Mappings, func(i, j int) bool { return f.Mappings[i].Entry < f.Mappings[j].Entry })
	data, err := json.MarshalIndent(f, "", "\t")
	if err == nil {
		err = statefile.Write(tr.cfg.StateFile, data)
	}
	if err != nil {
		tr.stats.PersistErrors.Add(1)
		tr.mu.Lock()
		tr.dirty = true
		logIt := time.Since(tr.lastErr) > time.Minute
		if logIt {
			tr.lastErr = time.Now()
		}
		tr.mu.Unlock()
		if logIt {
			tr.log.Error("writing the state file", "file", tr.cfg.StateFile, "err", err)
		}
	}
}

func (tr *Translator) load() error {
	data, err := statefile.Read(tr.cfg.StateFile)
	if err != nil || data == nil {
		return err
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != stateVersion {
		bad := tr.cfg.StateFile + ".bad"
		tr.log.Error("state file unreadable, starting without mappings", "file", tr.cfg.StateFile, "moved_to", bad, "err", err, "version", f.Version)
		if err := os.Rename(tr.cfg.StateFile, bad); err != nil {
			return fmt.Errorf("slaac: %w", err)
		}
		return nil
	}
	now, wall := tr.now(), time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	loaded, skipped := 0, 0
	for _, m := range f.Mappings {
		i := m.Entry - int(tr.first)
		if i < 0 || i >= len(tr.ulids) || !tr.isFree[i] || netip.AddrFrom16(tr.ulids[i]) != m.ULID ||
			!tr.cfg.Prefix.Contains(m.Host) || tr.hosts.Load().m[m.Host.As16()] != nil {
			skipped++
			continue
		}
		tr.addLocked(m.Host.As16(), int32(m.Entry), now-int64(wall.Sub(m.LastSeen)))
		loaded++
	}
	tr.dirty = false
	tr.log.Info("mappings loaded", "file", tr.cfg.StateFile, "mappings", loaded, "skipped", skipped)
	return nil
}

// Run expires idle mappings every interval and writes the state file
// soon after every change (at most once a second), until ctx ends; then
// it writes the file a last time.
func (tr *Translator) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			tr.Save()
			return
		case <-t.C:
			tr.Expire(tr.now())
		case <-tr.kick:
			select { // let a burst of new mappings share one write
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
		tr.Save()
	}
}

// InPool reports whether ulid is one of the book entries the translation
// maps hosts to: packets to and from it must cross the translator.
func (tr *Translator) InPool(ulid netip.Addr) bool {
	_, ok := tr.byULID[ulid.As16()]
	return ok
}

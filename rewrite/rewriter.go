package rewrite

import (
	"hash/maphash"
	"sync/atomic"
	"time"
)

// RewriterConfig tunes the state a Rewriter keeps across tables.
type RewriterConfig struct {
	// NoticeInterval is the least time between two notices with the same
	// key (ULID pair or tag); 0 means 1 s.
	NoticeInterval time.Duration
	// FlowIdle is how long a fallback-translated flow stays pinned to its
	// path without packets; 0 means 5 minutes.
	FlowIdle time.Duration
	// FlowSlots is the capacity of the fallback flow table, rounded up to
	// a power of two; 0 means 16384.
	FlowSlots int
}

const noticeSlots = 1024

// Rewriter holds the published Table, the counters and the small bounded
// state that must outlive a table (notice rate limiter, fallback flows).
// Process may be called from any number of goroutines at once.
type Rewriter struct {
	table          atomic.Pointer[Table]
	stats          Stats
	seed           maphash.Seed
	noticeInterval int64
	notices        [noticeSlots]atomic.Int64
	flows          flowTable
}

// NewRewriter returns a Rewriter with an empty table published.
func NewRewriter(cfg RewriterConfig) *Rewriter {
	r := &Rewriter{seed: maphash.MakeSeed(), noticeInterval: int64(cfg.NoticeInterval)}
	if r.noticeInterval <= 0 {
		r.noticeInterval = int64(time.Second)
	}
	idle := int64(cfg.FlowIdle)
	if idle <= 0 {
		idle = int64(5 * time.Minute)
	}
	slots := cfg.FlowSlots
	if slots <= 0 {
		slots = 16384
	}
	r.flows.init(slots, idle, r.seed)
	t, err := NewTable(Config{})
	if err != nil {
		panic("rewrite: empty table: " + err.Error()) // cannot happen
	}
	r.table.Store(t)
	return r
}

// Publish makes t the table that subsequent Process calls use. Tables are
// never modified after publishing; build a new one for every change.
func (r *Rewriter) Publish(t *Table) {
	if t == nil {
		panic("rewrite: Publish(nil)")
	}
	r.table.Store(t)
}

// Table returns the published table.
func (r *Rewriter) Table() *Table { return r.table.Load() }

// Stats returns the live counters.
func (r *Rewriter) Stats() *Stats { return &r.stats }

// Process handles one packet in place. The packet is buf[start:end]; bytes
// buf[:start] are headroom (at least 8 are needed to insert the payload
// header) and bytes after end may be used to build a reply. now is the
// caller's monotonic clock in nanoseconds (one reading per batch is
// enough); it stamps contexts and drives rate limits. Process writes only
// inside buf, never retains it and never allocates.
func (r *Rewriter) Process(dir Direction, buf []byte, start, end int, now int64) (res Result) {
	t := r.table.Load()
	if start < 0 || end > len(buf) || start > end {
		res.drop(DropMalformed, start, end)
		r.count(Inbound, &res)
		return res
	}
	pkt := buf[start:end]
	if dir >= NumDirections {
		dir = t.DirectionOf(pkt)
	}
	var l layout
	n := checkIPv6(pkt)
	if n != 0 {
		end = start + n
		walk(buf[start:end], &l)
	}
	switch {
	case n == 0 || l.truncated:
		res.drop(DropMalformed, start, end)
	case dir == Outbound:
		r.outbound(t, buf, start, end, &l, now, &res)
	default:
		r.inbound(t, buf, start, end, &l, now, &res)
	}
	r.count(dir, &res)
	return res
}

func (r *Rewriter) count(dir Direction, res *Result) {
	if res.Reason != NotDropped {
		r.stats.Drops[dir][res.Reason].Add(1)
	}
	r.stats.Packets[dir][res.Path].Add(1)
	if res.Notice.Kind != NoNotice {
		r.stats.Notices.Add(1)
	}
}

func (res *Result) drop(reason DropReason, start, end int) {
	res.Verdict, res.Reason, res.Path, res.Start, res.End = Drop, reason, PathDropped, start, end
}

func (res *Result) set(v Verdict, path PathKind, start, end int) {
	res.Verdict, res.Path, res.Start, res.End = v, path, start, end
}

// allowNotice rate-limits notices per hashed key: at most one per
// NoticeInterval per slot. Colliding keys share a slot, which only delays
// a notice; the control plane sees the traffic again later.
func (r *Rewriter) allowNotice(key []byte, now int64) bool {
	s := &r.notices[maphash.Bytes(r.seed, key)%noticeSlots]
	last := s.Load()
	if last != 0 && now-last < r.noticeInterval {
		r.stats.Suppressed.Add(1)
		return false
	}
	if now == 0 {
		now = 1 // 0 means "never"
	}
	if !s.CompareAndSwap(last, now) {
		r.stats.Suppressed.Add(1)
		return false // another worker just sent it
	}
	return true
}

package gateway

import (
	"math"
	"sync/atomic"
)

// Histogram is a fixed-bucket histogram that hot and control paths feed
// with one atomic add per observation (no locks, no allocations); the
// metrics collector reads it at scrape time.
type Histogram struct {
	bounds []float64       // upper bounds, ascending; +Inf is implicit
	counts []atomic.Uint64 // len(bounds)+1, the last for +Inf
	sum    atomic.Uint64   // float64 bits
}

// NewHistogram returns a histogram with the given ascending upper bounds.
func NewHistogram(bounds []float64) *Histogram {
	for i := 1; i < len(bounds); i++ {
		if !(bounds[i] > bounds[i-1]) {
			panic("gateway: histogram bounds not ascending")
		}
	}
	return &Histogram{bounds: append([]float64(nil), bounds...), counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records one value. Safe for concurrent use; 0 allocs.
func (h *Histogram) Observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// snapshot returns the count, sum and cumulative bucket counts. The count
// is the sum of the buckets, so the three agree even while Observe runs
// (the sum may lag by the observations in flight).
func (h *Histogram) snapshot() (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(h.bounds))
	for i, b := range h.bounds {
		count += h.counts[i].Load()
		buckets[b] = count
	}
	count += h.counts[len(h.bounds)].Load()
	return count, math.Float64frombits(h.sum.Load()), buckets
}

// Bucket layouts of the gateway's histograms.
var (
	// FailoverBuckets spans REAP failovers: probes start after 0.5 s and
	// back off to 60 s (RFC 5534 §4.3, §7), plus the Send Timeout.
	FailoverBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120}
	// RTTBuckets spans path round-trip times from a LAN lab to satellites.
	RTTBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
	// BatchBuckets spans TUN batch sizes (wireguard-go reads up to 128).
	BatchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128}
)

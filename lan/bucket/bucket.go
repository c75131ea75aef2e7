// Package bucket is the token bucket that rate-limits new DHCPv6 bindings
// and new SLAAC translation mappings: the state that a stranger on the LAN
// can make the gateway create grows at most Rate per second after a burst.
package bucket

import "time"

// Bucket holds up to Burst tokens, refilled at Rate per second. It is not
// safe for concurrent use; callers hold their own lock.
type Bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// New returns a full bucket. A rate ≤ 0 never refills.
func New(rate float64, burst int) Bucket {
	return Bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// Take removes one token at now and reports whether there was one.
func (b *Bucket) Take(now time.Time) bool {
	if !b.last.IsZero() && b.rate > 0 {
		if dt := now.Sub(b.last).Seconds(); dt > 0 {
			b.tokens = min(b.burst, b.tokens+dt*b.rate)
		}
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

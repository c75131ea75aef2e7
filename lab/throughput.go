package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shim6gw/shim6gw/gateway/metrics"
)

// Helpers for throughput runs against the daemon: wait until a context
// has the locators a measurement needs, and read which path (kernel fast
// path or TUN) carried the traffic.

// OnULIDPair reports an established context whose locators are its
// ULIDs: its packets cross the gateways unchanged (passthrough).
func OnULIDPair(c metrics.ContextInfo) bool {
	return c.State == "established" && c.LocalLocator == c.LocalULID && c.PeerLocator == c.PeerULID
}

// LocatorIn returns a condition: established, with the local locator (or
// the peer's, if peer) in p.
func LocatorIn(p netip.Prefix, peer bool) func(metrics.ContextInfo) bool {
	return func(c metrics.ContextInfo) bool {
		loc := c.LocalLocator
		if peer {
			loc = c.PeerLocator
		}
		return c.State == "established" && p.Contains(loc)
	}
}

// WaitContext polls gateway gw's /debug/contexts until the context of
// ULID pair local–peer satisfies cond, and returns it. It gives up after
// limit (or when ctx ends) with an error naming what it saw last.
func (l *Lab) WaitContext(ctx context.Context, gw Node, local, peer netip.Addr, cond func(metrics.ContextInfo) bool, limit time.Duration) (metrics.ContextInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last := "no context"
	for {
		cs, err := l.Contexts(ctx, gw)
		if err != nil {
			last = err.Error()
		} else if c, ok := FindContext(cs, local, peer); ok {
			if cond(c) {
				return c, nil
			}
			last = FormatPair(c)
		}
		select {
		case <-ctx.Done():
			return metrics.ContextInfo{}, fmt.Errorf("lab: %s: context %s–%s not as wanted after %v: %s", gw, local, peer, limit, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PathCount is what a gateway's kernel fast path counted for one path
// label ("fast", "tun" or "drop"), summed over the verdicts.
type PathCount struct {
	Packets, Bytes float64
}

// FastpathCounts reads shim6gw_fastpath_packets_total and
// shim6gw_fastpath_bytes_total from gateway gw's /metrics, by path. The
// map is empty when the gateway runs without the fast path.
func (l *Lab) FastpathCounts(ctx context.Context, gw Node) (map[string]PathCount, error) {
	body, err := l.AdminGet(ctx, gw, "/metrics")
	if err != nil {
		return nil, err
	}
	return parseFastpathCounts(body)
}

// parseFastpathCounts extracts FastpathCounts from a Prometheus text
// exposition.
func parseFastpathCounts(body []byte) (map[string]PathCount, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("lab: /metrics: %w", err)
	}
	out := map[string]PathCount{}
	for name, add := range map[string]func(*PathCount, float64){
		"shim6gw_fastpath_packets_total": func(c *PathCount, v float64) { c.Packets += v },
		"shim6gw_fastpath_bytes_total":   func(c *PathCount, v float64) { c.Bytes += v },
	} {
		fam := fams[name]
		if fam == nil {
			continue
		}
		for _, m := range fam.GetMetric() {
			path := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "path" {
					path = lp.GetValue()
				}
			}
			c := out[path]
			add(&c, m.GetCounter().GetValue())
			out[path] = c
		}
	}
	return out, nil
}

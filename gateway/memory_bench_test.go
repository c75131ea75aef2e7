package gateway

import (
	"flag"
	"net/netip"
	"runtime"
	"testing"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
)

var benchTableContexts = flag.Int("gateway.contexts", 1<<17, "contexts BenchmarkTableMemory puts in the fast table")

// BenchmarkTableMemory measures the data plane's share of a context: the
// fast table's entry and maps, with two locators each side (what the
// control loop publishes next to the engine's context, shim6
// BenchmarkContextMemory). "build bytes/context" is the peak while a new
// table is built and the old one still serves.
func BenchmarkTableMemory(b *testing.B) {
	n := *benchTableContexts
	addr := func(p byte, i int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, p, 0, 0, 1, 0, 0, 0, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
	}
	for i := 0; i < b.N; i++ {
		cfg := rewrite.Config{
			SitePrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")},
			Uplinks:      []rewrite.Uplink{{Prefix: netip.MustParsePrefix("2001:db8:a::/48"), MTU: 1500}, {Prefix: netip.MustParsePrefix("2001:db8:b::/48"), MTU: 1500}},
		}
		runtime.GC()
		var m0, m1, m2 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for j := 0; j < n; j++ {
			lu, lb, pu, pb := addr(0x0a, j), addr(0x0b, j), addr(0x0c, j), addr(0x0d, j)
			cfg.Contexts = append(cfg.Contexts, rewrite.ContextConfig{LocalULID: lu, PeerULID: pu,
				LocalTag: shim6.ContextTag(2 * j), PeerTag: shim6.ContextTag(2*j + 1), LocalLocator: lu, PeerLocator: pu,
				LocalLocators: []netip.Addr{lu, lb}, PeerLocators: []netip.Addr{pu, pb}, Stamps: new(rewrite.Stamps)})
		}
		t, err := rewrite.NewTable(cfg)
		if err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&m1)
		cfg.Contexts = nil
		runtime.GC()
		runtime.ReadMemStats(&m2)
		if t.Len() != n {
			b.Fatalf("table holds %d", t.Len())
		}
		b.ReportMetric(float64(m2.HeapAlloc-m0.HeapAlloc)/float64(n), "bytes/context")
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/float64(n), "build-bytes/context")
		runtime.KeepAlive(t)
	}
}

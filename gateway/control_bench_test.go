package gateway

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/shim6"
)

// BenchmarkPublishTable measures a fast-table rebuild, which the control
// loop does once per loop turn that changed a context, for a site of
// `hosts` book entries (their fallback locators) and `contexts` contexts.
func BenchmarkPublishTable(b *testing.B) {
	for _, bc := range []struct{ hosts, contexts int }{{256, 100}, {256, 10000}, {4096, 10000}} {
		b.Run(fmt.Sprintf("hosts=%d/contexts=%d", bc.hosts, bc.contexts), func(b *testing.B) {
			dir := b.TempDir()
			writeSecret(b, dir)
			text := strings.Replace(siteYAML(1), "hosts: 4", fmt.Sprintf("hosts: %d", bc.hosts), 1)
			cfg, err := config.Parse([]byte(text), dir, "bench.yaml")
			if err != nil {
				b.Fatal(err)
			}
			l, err := newControlLoop(NewController(ControllerOptions{}), cfg, nil, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			for i := range bc.contexts {
				h := l.site.hosts[i%len(l.site.hosts)]
				peer := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xc, 0, 0, 1, 0, 0, 0, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
				l.entries[ctxKey{h.ULID, peer, 0}] = shim6.ContextUpdate{LocalULID: h.ULID, PeerULID: peer,
					LocalTag: shim6.ContextTag(i + 1), PeerTag: shim6.ContextTag(i + 1), LocalLocator: h.ULID, PeerLocator: peer,
					LocalLocators: h.Locators, PeerLocators: []netip.Addr{peer}}
			}
			b.ReportAllocs()
			for b.Loop() {
				l.publishTable()
			}
			if got := l.c.rw.Table().Len(); got != bc.contexts {
				b.Fatalf("table has %d contexts", got)
			}
		})
	}
}

package gateway

import (
	"net/netip"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/shim6"
)

// TestLimitsReachEngine: limits.max_contexts from the YAML is the engine's
// cap: with 1, a second local initiation evicts the first, unestablished
// context.
func TestLimitsReachEngine(t *testing.T) {
	cfg, err := config.Load(writeConfig(t, goodConfig+"limits:\n  max_contexts: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSite(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := engineConfig(cfg, s, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if ec.MaxContexts != 1 {
		t.Fatalf("EngineConfig.MaxContexts = %d, want 1", ec.MaxContexts)
	}
	eng, err := shim6.NewEngine(ec)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	peer := netip.MustParseAddr("2001:db8:ff:1::1")
	eng.Initiate(now, s.hosts[0].ULID, peer)
	eng.Initiate(now, s.hosts[1].ULID, peer)
	if n := len(eng.Contexts()); n != 1 {
		t.Errorf("%d contexts, want 1", n)
	}
	if st := eng.Stats(); st.Evictions != 1 {
		t.Errorf("evictions %d, want 1", st.Evictions)
	}
}

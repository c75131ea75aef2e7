package gateway

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shim6gw/shim6gw/shim6"
)

// TestTimersEngineCoversEveryField fails when shim6.Timers gains a field
// that the configuration cannot set.
func TestTimersEngineCoversEveryField(t *testing.T) {
	cfgT := reflect.TypeOf(Timers{})
	engT := reflect.TypeOf(shim6.Timers{})
	if cfgT.NumField() != engT.NumField() {
		t.Fatalf("gateway.Timers has %d fields, shim6.Timers %d", cfgT.NumField(), engT.NumField())
	}
	// Distinct values per field show that each one lands in its namesake.
	var in Timers
	v := reflect.ValueOf(&in).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.Int64:
			f.SetInt(int64(i+1) * int64(time.Millisecond))
		case reflect.Int:
			f.SetInt(int64(i + 1))
		}
	}
	out := reflect.ValueOf(in.Engine())
	for i := range v.NumField() {
		name := cfgT.Field(i).Name
		got := out.FieldByName(name)
		if !got.IsValid() {
			t.Errorf("shim6.Timers has no field %s", name)
			continue
		}
		if got.Interface() != v.Field(i).Interface() {
			t.Errorf("%s = %v, want %v", name, got.Interface(), v.Field(i).Interface())
		}
	}
	if DefaultTimers().Engine() != shim6.DefaultTimers() {
		t.Errorf("defaults differ:\n%+v\n%+v", DefaultTimers().Engine(), shim6.DefaultTimers())
	}
}

func TestPolicyAndUplinksEngine(t *testing.T) {
	p := PolicyConfig{InitiateAfterNotices: 3, InitiateAfter: 2 * time.Second, Window: time.Minute, MaxPending: 9}
	if got, want := p.Engine(), (shim6.Policy{Packets: 3, After: 2 * time.Second, Window: time.Minute, MaxPending: 9}); got != want {
		t.Errorf("policy %+v, want %+v", got, want)
	}
	c, err := LoadConfig(writeConfig(t, goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := []shim6.Uplink{{Name: "a", Prefix: netip.MustParsePrefix("2001:db8:a::/48")}, {Name: "b", Prefix: netip.MustParsePrefix("2001:db8:b::/48")}}
	if diff := cmp.Diff(want, c.EngineUplinks(), netipCmp); diff != "" {
		t.Errorf("uplinks (-want +got):\n%s", diff)
	}
}

func TestLabelsAreInVocabulary(t *testing.T) {
	for s := shim6.StateI1Sent; s <= shim6.StateNoSupport; s++ {
		if !slices.Contains(ContextStateLabels, StateLabel(s)) {
			t.Errorf("state %v → %q not in ContextStateLabels", s, StateLabel(s))
		}
	}
	for ty := range shim6.Type(128) {
		if l := TypeLabel(ty); !slices.Contains(MessageTypeLabels, l) || (ty.Known() && l == "unknown") {
			t.Errorf("type %d → %q", ty, l)
		}
	}
	for d := range shim6.NumDropReasons {
		if !slices.Contains(ControlDropLabels, d.String()) {
			t.Errorf("drop reason %q not in ControlDropLabels", d.String())
		}
	}
}

func TestControlStatsFrom(t *testing.T) {
	var s shim6.Stats
	s.Tx[shim6.TypeI1] = 4
	s.Rx[shim6.TypeR1] = 3
	s.Rx[99] = 2 // unknown types add up under "unknown"
	s.Rx[100] = 1
	s.Drops[shim6.DropBadValidator] = 5
	s.Established, s.Failed, s.NoSupport, s.Recoveries = 7, 1, 2, 3
	s.Explorations, s.Failovers = 6, 2
	ctxs := []shim6.ContextInfo{{State: shim6.StateEstablished}, {State: shim6.StateEstablished}, {State: shim6.StateI1Sent}}
	got := ControlStatsFrom(&s, ctxs)
	want := ControlStats{
		ContextsByState: map[string]uint64{"established": 2, "i1_sent": 1},
		Establishments:  map[string]uint64{"established": 7, "failed": 1, "no_support": 2, "recovered": 3},
		Messages:        map[MessageKey]uint64{{"i1", "tx"}: 4, {"r1", "rx"}: 3, {"unknown", "rx"}: 3},
		Drops:           map[string]uint64{"bad_validator": 5},
		Explorations:    6,
		Failovers:       2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestContextInfoFrom(t *testing.T) {
	at := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	in := shim6.ContextInfo{
		LocalULID: netip.MustParseAddr("2001:db8:a:1::1"), PeerULID: netip.MustParseAddr("2001:db8:c::1"),
		State: shim6.StateI2bisSent, LocalTag: 0x1234, PeerTag: shim6.MaxTag,
		LocalLocator: netip.MustParseAddr("2001:db8:b:1::1"), PeerLocator: netip.MustParseAddr("2001:db8:d::1"),
		RTT: 3 * time.Millisecond, LastFailover: at,
	}
	want := ContextInfo{
		LocalULID: in.LocalULID, PeerULID: in.PeerULID, State: "i2bis_sent",
		LocalLocator: in.LocalLocator, PeerLocator: in.PeerLocator,
		LocalTag: 0x1234, PeerTag: 1<<47 - 1, RTT: 3 * time.Millisecond, LastFailover: at,
	}
	if diff := cmp.Diff(want, ContextInfoFrom(in), netipCmp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestLimitsReachEngine: limits.max_contexts from the YAML is the engine's
// cap: with 1, a second local initiation evicts the first, unestablished
// context (shim6 engine_quota.go).
func TestLimitsReachEngine(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, goodConfig+"limits:\n  max_contexts: 1\n"))
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

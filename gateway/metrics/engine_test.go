package metrics

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/shim6"
)

func TestControlStatsFrom(t *testing.T) {
	var s shim6.Stats
	s.Tx[shim6.TypeI1] = 4
	s.Rx[shim6.TypeR1] = 3
	s.Rx[99] = 2 // unknown types add up under "unknown"
	s.Rx[100] = 1
	s.Drops[shim6.DropBadValidator] = 5
	s.Established, s.Failed, s.NoSupport, s.Recoveries = 7, 1, 2, 3
	s.Explorations, s.Failovers, s.Evictions = 6, 2, 9
	ctxs := []shim6.ContextInfo{{State: shim6.StateEstablished}, {State: shim6.StateEstablished}, {State: shim6.StateI1Sent}}
	got := ControlStatsFrom(&s, ctxs)
	want := ControlStats{
		ContextsByState: map[string]uint64{"established": 2, "i1_sent": 1},
		Establishments:  map[string]uint64{"established": 7, "failed": 1, "no_support": 2, "recovered": 3},
		Messages:        map[MessageKey]uint64{{"i1", "tx"}: 4, {"r1", "rx"}: 3, {"unknown", "rx"}: 3},
		Drops:           map[string]uint64{"bad_validator": 5},
		Explorations:    6,
		Failovers:       2,
		Evictions:       9,
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
	if diff := cmp.Diff(want, ContextInfoFrom(in), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

package lab

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
)

// TestIntegrationE2ERulesFlushed: what systemd-networkd does to foreign
// rules, done to gw1 while a TCP stream runs each way: gw1 puts its rules
// back, both streams carry on, and with ebpf the program keeps forwarding
// through the same attachment (its route lookups go through those rules).
func TestIntegrationE2ERulesFlushed(t *testing.T) {
	forEachFastpath(t, testRulesFlushed)
}

func testRulesFlushed(t *testing.T, fp string) {
	e := upE2EFastpath(t, fp)
	s1, s2 := e.twoStreams(5661)
	attached := attachedFastpath(t, e.Lab, GW1)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rules := func() string {
		out, err := e.Exec(ctx, GW1, "ip", "-6", "rule", "show", "proto", strconv.Itoa(config.DefaultRouteProtocol))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	want := rules()
	if _, err := e.Exec(ctx, GW1, "ip", "-6", "rule", "flush", "protocol", strconv.Itoa(config.DefaultRouteProtocol)); err != nil {
		t.Fatal(err)
	}
	flushedAt := time.Now()
	for rules() != want {
		if time.Since(flushedAt) > 5*time.Second {
			t.Fatalf("gw1's rules not restored after 5 s:\n%s\nwant\n%s", rules(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("gw1's rules restored %v after the flush", time.Since(flushedAt).Round(time.Millisecond))
	fast := fastPackets(t, e.Lab, GW1)
	waitMore(t, s1, s1.Tracker.Bytes())
	waitMore(t, s2, s2.Tracker.Bytes())
	t.Logf("gap since the flush: h1->h2 %v, h2->h1 %v",
		s1.Tracker.MaxGapAfter(flushedAt, time.Now()).Len(), s2.Tracker.MaxGapAfter(flushedAt, time.Now()).Len())
	if n := e.metric(GW1, "shim6gw_plumbing_repairs_total", `kind="rule"`); n < 1 {
		t.Errorf("gw1 counted %v rule repairs", n)
	}
	checkFastPath(t, e.Lab, fp, "after the repair", GW1, fast)
	// The repair touched rules only: the same links, no re-attachment.
	if after := attachedFastpath(t, e.Lab, GW1); !maps.EqualFunc(after, attached, slices.Equal) {
		t.Errorf("gw1's fast-path programs %v before the flush, %v after the repair", attached, after)
	}
	checkAttached(t, e.Lab, fp, "after the repair", GW1)
	checkAlive(t, s1, s2)
}

package lab

// The end-to-end tests run once per fast-path mode (issue 12): with the
// kernel fast path required (ebpf: the daemon fails if it cannot attach)
// and with it off. Where traffic flowed through established contexts,
// the ebpf run checks that the program really forwarded packets, so that
// it cannot silently be a TUN run.

import (
	"context"
	"strings"
	"testing"
	"time"

	ebpflink "github.com/cilium/ebpf/link"

	"github.com/shim6gw/shim6gw/fastpath"
	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/internal/nstest"
)

// fastpathModes are the dataplane.fastpath values every end-to-end test
// runs with.
var fastpathModes = []string{config.FastpathEBPF, config.FastpathOff}

// forEachFastpath runs f as subtest "fastpath-<mode>" for each of
// fastpathModes.
func forEachFastpath(t *testing.T, f func(t *testing.T, fp string)) {
	t.Helper()
	for _, fp := range fastpathModes {
		t.Run("fastpath-"+fp, func(t *testing.T) { f(t, fp) })
	}
}

// fastPackets returns what gateway gw's kernel fast path forwarded itself
// (shim6gw_fastpath_packets_total{path="fast"}), of every verdict or of
// those labels name; 0 when the fast path is off (no such metric).
func fastPackets(t *testing.T, l *Lab, gw Node, labels ...string) float64 {
	t.Helper()
	return fastpathPackets(t, l, gw, append([]string{`path="fast"`}, labels...)...)
}

// fastpathPackets sums shim6gw_fastpath_packets_total of gw with labels.
func fastpathPackets(t *testing.T, l *Lab, gw Node, labels ...string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := l.AdminGet(ctx, gw, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return sumMetric(body, "shim6gw_fastpath_packets_total", labels...)
}

// checkFastPath checks the fast-path packets gw counted since before
// (fastPackets with labels): some with ebpf, none with off. It polls
// (at most 5 s), as the counters are read live and the traffic that
// should move them may just be resuming.
func checkFastPath(t *testing.T, l *Lab, fp, what string, gw Node, before float64, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := fastPackets(t, l, gw, labels...) - before
		switch {
		case fp == config.FastpathOff && n != 0:
			t.Errorf("%s: fast path off, yet %s's fast path forwarded %.0f packets %v", what, gw, n, labels)
			return
		case fp == config.FastpathOff:
			return
		case n > 0:
			t.Logf("%s: %s's fast path forwarded %.0f packets %v", what, gw, n, labels)
			return
		case time.Now().After(deadline):
			t.Errorf("%s: fast path %s, yet %s's fast path forwarded no packets %v; its counters:\n%s",
				what, fp, gw, labels, fastpathCounters(t, l, gw))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fastpathCounters renders gw's non-zero fast-path counters for a failure
// message.
func fastpathCounters(t *testing.T, l *Lab, gw Node) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := l.AdminGet(ctx, gw, "/metrics")
	if err != nil {
		return err.Error()
	}
	return nonZeroLines(body, "shim6gw_fastpath_packets_total")
}

// attachedFastpath lists, per interface of gateway gw (its LAN and both
// uplinks), the links of the programs named fastpath.ProgramName at TCX
// ingress.
func attachedFastpath(t *testing.T, l *Lab, gw Node) map[string][]ebpflink.ID {
	t.Helper()
	progs, err := nstest.TCXIngress(l.NS(gw), []string{LANIf, UplinkAIf, UplinkBIf})
	if err != nil {
		t.Fatalf("%s: tcx programs: %v", gw, err)
	}
	got := map[string][]ebpflink.ID{}
	for name, ps := range progs {
		got[name] = []ebpflink.ID{}
		for _, p := range ps {
			// The kernel keeps 15 bytes of the name.
			if p.Name != "" && strings.HasPrefix(fastpath.ProgramName, p.Name) {
				got[name] = append(got[name], p.Link)
			}
		}
	}
	return got
}

// checkAttached checks that gateway gw has exactly one fast-path program
// on each of its interfaces with ebpf, none with off.
func checkAttached(t *testing.T, l *Lab, fp, what string, gw Node) {
	t.Helper()
	want := 0
	if fp == config.FastpathEBPF {
		want = 1
	}
	for name, ids := range attachedFastpath(t, l, gw) {
		if len(ids) != want {
			t.Errorf("%s: %s has %d fast-path programs on %s, want %d", what, gw, len(ids), name, want)
		}
	}
}

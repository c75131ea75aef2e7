package fastpath

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"
)

// iperf3 runs the client in ns against addr and returns the received
// rate in Mbit/s.
func iperf3(t testing.TB, ns string, addr netip.Addr, secs, streams int) float64 {
	t.Helper()
	var last string
	for attempt := range 20 {
		if attempt > 0 {
			time.Sleep(200 * time.Millisecond) // server still starting
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+20)*time.Second)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "iperf3", "-c", addr.String(),
			"-t", strconv.Itoa(secs), "-P", strconv.Itoa(streams), "-J", "--connect-timeout", "3000").Output()
		cancel()
		var r struct {
			Error string
			End   struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			}
		}
		if jerr := json.Unmarshal(out, &r); jerr != nil || r.Error != "" || err != nil {
			last = fmt.Sprintf("%v %v %s", err, jerr, r.Error)
			continue
		}
		return r.End.SumReceived.BitsPerSecond / 1e6
	}
	t.Fatalf("iperf3 in %s: %s", ns, last)
	return 0
}

// startIperf3Server runs `iperf3 -s` in ns until the test ends.
func startIperf3Server(t testing.TB, ns string, addr netip.Addr) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "iperf3", "-s", "-B", addr.String())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // `ip netns exec` execs iperf3: same pid
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("iperf3 server pid %d did not exit", cmd.Process.Pid)
		}
	})
}

// offloads turns TSO, GSO and GRO on or off on every veth of n.
func (n *topo) offloads(t testing.TB, on bool) {
	t.Helper()
	v := map[bool]string{true: "on", false: "off"}[on]
	for _, e := range n.all {
		nsExec(t, e[0], "ethtool", "-K", e[1], "tso", v, "gso", v, "gro", v)
	}
}

// benchRow is one measurement, in the shape of `shim6gw lab --throughput
// --json` rows.
type benchRow struct {
	Mode      string  `json:"mode"` // kernel, kernel-per-packet, tun (the Go data plane), fastpath (offloads off when shimmed)
	PathKind  string  `json:"path_kind"`
	Fastpath  bool    `json:"fastpath"`
	Streams   int     `json:"streams"`
	MbitPerS  float64 `json:"mbit_per_s"`
	FastShare float64 `json:"fast_share"` // packets the program forwarded / all it saw (gw1)
}

// TestThroughput measures iperf3 from client to server through one
// gateway (passthrough: context on the ULID pair) and two gateways
// (shimmed between them): kernel forwarding with offloads, kernel
// forwarding with TSO/GSO/GRO off on every veth (kernel-per-packet), the
// TUN path (offload backend and rewrite.Rewriter, as the daemon runs
// them) and the fast path, all in one run. It is a benchmark, not a check: set
// SHIM6GW_BENCH=1 (SHIM6GW_BENCH_SECONDS, default 5; SHIM6GW_BENCH_ROUNDS,
// default 1). Rows are logged and, with SHIM6GW_BENCH_JSON=file, written
// as JSON. See docs/benchmarks.md.
func TestThroughput(t *testing.T) {
	skipUnlessNetns(t)
	if os.Getenv("SHIM6GW_BENCH") != "1" {
		t.Skip("throughput benchmark: set SHIM6GW_BENCH=1 to run")
	}
	for _, tool := range []string{"iperf3", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	secs, rounds := 5, 1
	if v, err := strconv.Atoi(os.Getenv("SHIM6GW_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	if v, err := strconv.Atoi(os.Getenv("SHIM6GW_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	one, two := newTopo(t, 1), newTopo(t, 2)
	// The hosts' MTU leaves room for the payload header, as the TUN
	// path's MSS clamping would (SYNs cross unshimmed here).
	for _, n := range []*topo{one, two} {
		ipn(t, n.c, "link", "set", "c0", "mtu", "1492")
		ipn(t, n.s, "link", "set", "s0", "mtu", "1492")
		n.warmUp(t)
		startIperf3Server(t, n.s, peerULID)
	}
	var rows []benchRow
	measure := func(n *topo, mode, kind string, offloads, fast bool) {
		n.offloads(t, offloads)
		if fast {
			n.attach(t)
			defer n.detach(t)
		}
		if mode == "tun" {
			defer n.startTUN(t)()
		}
		for _, streams := range []int{1, 4} {
			var before [NumVerdicts]Stat
			if fast {
				before, _ = n.gws[0].prog.Maps().Stats()
			}
			r := benchRow{Mode: mode, PathKind: kind, Fastpath: fast, Streams: streams,
				MbitPerS: iperf3(t, n.c, peerULID, secs, streams)}
			if fast {
				after, _ := n.gws[0].prog.Maps().Stats()
				var fastN, all uint64
				for v := range NumVerdicts {
					d := after[v].Packets - before[v].Packets
					all += d
					if v.Fast() {
						fastN += d
					}
				}
				if all > 0 {
					r.FastShare = float64(fastN) / float64(all)
				}
			}
			t.Logf("%-18s %-11s fastpath=%-5v streams=%d %9.0f Mbit/s fast share %.3f", r.Mode, r.PathKind, r.Fastpath, r.Streams, r.MbitPerS, r.FastShare)
			rows = append(rows, r)
		}
	}
	for range rounds {
		// Each fast-path figure right after the kernel figures it is
		// compared with, so that the ratio survives a shared machine's
		// drifting load.
		measure(one, "kernel", "passthrough", true, false)
		measure(one, "fastpath", "passthrough", true, true)
		measure(one, "kernel-per-packet", "passthrough", false, false)
		measure(one, "tun", "passthrough", true, false)
		measure(two, "kernel", "shimmed", true, false)
		measure(two, "kernel-per-packet", "shimmed", false, false)
		measure(two, "fastpath", "shimmed", false, true)
		measure(two, "tun", "shimmed", true, false)
	}
	med := func(mode, kind string, streams int) float64 {
		var v []float64
		for _, r := range rows {
			if r.Mode == mode && r.PathKind == kind && r.Streams == streams {
				v = append(v, r.MbitPerS)
			}
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	for _, streams := range []int{1, 4} {
		t.Logf("median, %d stream(s): passthrough fastpath/kernel %.2f, tun/kernel %.2f; shimmed fastpath/kernel-per-packet %.2f, fastpath/kernel %.2f, fastpath/tun %.2f",
			streams, med("fastpath", "passthrough", streams)/med("kernel", "passthrough", streams),
			med("tun", "passthrough", streams)/med("kernel", "passthrough", streams),
			med("fastpath", "shimmed", streams)/med("kernel-per-packet", "shimmed", streams),
			med("fastpath", "shimmed", streams)/med("kernel", "shimmed", streams),
			med("fastpath", "shimmed", streams)/med("tun", "shimmed", streams))
	}
	if f := os.Getenv("SHIM6GW_BENCH_JSON"); f != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

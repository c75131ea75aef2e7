package tunnel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/tunnel"
)

// forwarder runs one pipeline per queue of a TUN in a gateway namespace.
type forwarder struct {
	pipes    []*tunnel.Pipeline
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errs     chan error
	maxBatch maxObserver // the largest read, over all pipelines
}

// maxObserver keeps the largest value observed.
type maxObserver struct{ v atomic.Uint64 }

func (m *maxObserver) Observe(v float64) {
	for {
		old := m.v.Load()
		if uint64(v) <= old || m.v.CompareAndSwap(old, uint64(v)) {
			return
		}
	}
}

// startForwarder runs a pipeline on each of devs, each with a Processor
// from proc, until stop or the end of the test.
func startForwarder(t testing.TB, devs []tunnel.Device, proc func() tunnel.Processor) *forwarder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &forwarder{cancel: cancel, errs: make(chan error, len(devs))}
	for _, d := range devs {
		p, err := tunnel.NewPipeline(d, tunnel.Config{Processor: proc(), BatchSizes: &f.maxBatch})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		f.pipes = append(f.pipes, p)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := p.Run(ctx); err != nil {
				f.errs <- err
			}
		}()
	}
	t.Cleanup(func() { f.stop(t) })
	return f
}

// openForwarder opens backend b's TUN in ns and starts a forwarder on it;
// tune, if not nil, adjusts the devices first.
func openForwarder(t testing.TB, ns string, b backend, proc func() tunnel.Processor, tune func(tunnel.Device)) *forwarder {
	t.Helper()
	devs := openIn(t, ns, b)
	if tune != nil {
		for _, d := range devs {
			tune(d)
		}
	}
	return startForwarder(t, devs, proc)
}

// passthrough is the Processor factory of the pass-through forwarders.
func passthrough() tunnel.Processor { return tunnel.Passthrough{} }

// stop ends the pipelines (closing the devices) and reports Run errors.
func (f *forwarder) stop(t testing.TB) {
	t.Helper()
	f.cancel()
	f.wg.Wait()
	for {
		select {
		case err := <-f.errs:
			t.Errorf("forwarder: %v", err)
		default:
			return
		}
	}
}

// sum adds a counter over every pipeline.
func (f *forwarder) sum(get func(*tunnel.Stats) *atomic.Uint64) uint64 {
	var n uint64
	for _, p := range f.pipes {
		n += get(p.Stats()).Load()
	}
	return n
}

// readRecorder remembers the largest number of bytes one Read returned:
// above the MTU, the kernel handed over a GSO super-packet that the
// wireguard backend split into a batch.
type readRecorder struct {
	tunnel.Device
	maxRead atomic.Int64
}

func (r *readRecorder) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := r.Device.Read(bufs, sizes, offset)
	total := 0
	for _, s := range sizes[:n] {
		total += s
	}
	if int64(total) > r.maxRead.Load() {
		r.maxRead.Store(int64(total))
	}
	return n, err
}

type txCounters struct{ Bytes, Packets, Dropped uint64 }

// txStats returns the transmit counters of dev in ns.
func txStats(t testing.TB, ns, dev string) txCounters {
	t.Helper()
	var links []struct {
		Stats64 struct{ Tx txCounters }
	}
	if err := json.Unmarshal([]byte(ipn(t, ns, "-s", "-j", "link", "show", dev)), &links); err != nil || len(links) != 1 {
		t.Fatalf("link stats of %s: %v", dev, err)
	}
	return links[0].Stats64.Tx
}

// TestIntegrationWireGuardGSO sends a TCP stream client → server through
// a wireguard-backed forwarder in the gateway: reads must return GSO
// super-packets (more than one MTU per read, split into a batch), writes
// must coalesce them again (the gateway sends frames larger than the MTU
// towards the server), and the bytes must arrive intact.
func TestIntegrationWireGuardGSO(t *testing.T) {
	skipUnlessRoot(t)
	tp := newTopo(t, "gso")
	devs := openIn(t, tp.g, backends[0])
	rec := &readRecorder{Device: devs[0]}
	fw := startForwarder(t, []tunnel.Device{rec}, passthrough)
	tp.divert(t)
	tx0 := txStats(t, tp.g, "g1")
	const size = 16 << 20
	streamSHA(t, tp.c, tp.s, size)
	if m := rec.maxRead.Load(); m <= 1500 {
		t.Errorf("largest read %d bytes, want a GSO super-packet > MTU 1500", m)
	} else {
		t.Logf("largest read: %d bytes", m)
	}
	if big := fw.maxBatch.v.Load(); big <= 16 {
		t.Errorf("largest batch %d packets, want more than 16: GSO reads were not split into batches", big)
	}
	tx1 := txStats(t, tp.g, "g1")
	if rx := fw.sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.RxBytes }); rx < size {
		t.Errorf("forwarder read %d bytes, want ≥ %d: traffic bypassed the TUN", rx, size)
	}
	bytes, frames := tx1.Bytes-tx0.Bytes, tx1.Packets-tx0.Packets
	if avg := bytes / max(frames, 1); avg <= 3000 {
		t.Errorf("gateway sent %d bytes in %d frames (avg %d): writes were not coalesced", bytes, frames, avg)
	} else {
		t.Logf("gateway → server: %d bytes in %d frames (avg %d)", bytes, frames, avg)
	}
}

// iperf3 runs the client in ns against addr for secs seconds with streams
// parallel streams and returns the received rate in bit/s and the bytes.
func iperf3(t testing.TB, ns string, addr netip.Addr, secs, streams int) (float64, uint64) {
	t.Helper()
	var lastErr string
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
					Bytes         uint64
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			}
		}
		if jerr := json.Unmarshal(out, &r); jerr != nil {
			lastErr = fmt.Sprintf("%v / %v: %.200s", err, jerr, out)
			continue
		}
		if r.Error != "" || err != nil {
			lastErr = fmt.Sprintf("%v %s", err, r.Error)
			continue
		}
		return r.End.SumReceived.BitsPerSecond, r.End.SumReceived.Bytes
	}
	t.Fatalf("iperf3 in %s: %s", ns, lastErr)
	return 0, 0
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

// fwMode is one way of forwarding between client and server through the
// gateways' TUNs: a backend and, per gateway, a Processor.
type fwMode struct {
	name    string
	backend *backend
	proc    func(gw int) tunnel.Processor
	// shim runs the mode on the two-gateway topology (shimTopo).
	shim bool
	// noGRO turns the offload backend's write coalescing off.
	noGRO bool
}

// fwResult is one paired measurement: kernel forwarding, then the TUN
// forwarder, seconds apart, so that the ratio survives the load of a
// shared machine drifting between runs.
type fwResult struct {
	round     int
	mode      string
	streams   int
	kernelBPS float64
	bps       float64
	avgBatch  float64
	tunDrops  uint64
}

func (r fwResult) ratio() float64 { return r.bps / r.kernelBPS }

// TestIntegrationForwardThroughput measures iperf3 between client and
// server, each TUN figure paired with plain kernel forwarding through the
// same namespaces: tun-* modes through one gateway with a pass-through
// forwarder per backend; pass2-* and shim-* modes through two gateways
// (shimTopo), pass2 with pass-through forwarders, shim with the rewrite
// forwarders that shim the client/server context between the gateways.
// It is a benchmark, not a check: set SHIM6GW_BENCH=1 (optionally
// SHIM6GW_BENCH_SECONDS, default 5; SHIM6GW_BENCH_ROUNDS, default 1;
// SHIM6GW_BENCH_MODES to pick modes; SHIM6GW_BENCH_TXQLEN to set the TUNs'
// txqueuelen). See docs/benchmarks.md.
func TestIntegrationForwardThroughput(t *testing.T) {
	skipUnlessRoot(t)
	if os.Getenv("SHIM6GW_BENCH") != "1" {
		t.Skip("throughput benchmark: set SHIM6GW_BENCH=1 to run (takes about two minutes per round)")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("iperf3 not installed")
	}
	secs, rounds := 5, 1
	if n, err := strconv.Atoi(os.Getenv("SHIM6GW_BENCH_SECONDS")); err == nil && n > 0 {
		secs = n
	}
	if n, err := strconv.Atoi(os.Getenv("SHIM6GW_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	pass := func(int) tunnel.Processor { return passthrough() }
	tab1, tab2 := shimTables(t)
	shimProc := func(gw int) tunnel.Processor { return newRWProc([]*rewrite.Table{tab1, tab2}[gw]) }
	modes := []fwMode{
		{name: "tun-wireguard", backend: &backends[0], proc: pass},
		{name: "tun-water", backend: &backends[1], proc: pass},
		{name: "tun-water-mq2", backend: &backends[2], proc: pass},
		{name: "tun-offload", backend: offloadBackend, proc: pass},
		{name: "pass2-wireguard", backend: &backends[0], proc: pass, shim: true},
		{name: "pass2-offload", backend: offloadBackend, proc: pass, shim: true},
		{name: "shim-wireguard", backend: &backends[0], proc: shimProc, shim: true},
		{name: "shim-offload", backend: offloadBackend, proc: shimProc, shim: true},
		{name: "shim-offload-nogro", backend: offloadBackend, proc: shimProc, shim: true, noGRO: true},
	}
	if only := os.Getenv("SHIM6GW_BENCH_MODES"); only != "" {
		var keep []fwMode
		for _, m := range modes {
			if strings.Contains(","+only+",", ","+m.name+",") {
				keep = append(keep, m)
			}
		}
		modes = keep
	}
	// The gateways of a topology each get a TUN and a forwarder per mode.
	var one, two *chain
	for _, m := range modes {
		switch {
		case !m.shim && one == nil:
			one = &newTopo(t, "bw").chain
			startIperf3Server(t, one.s, serverAddr)
		case m.shim && two == nil:
			two = &newShimTopo(t, "bw2").chain
			startIperf3Server(t, two.s, serverAddr)
		}
	}

	var results []fwResult
	for round := 1; round <= rounds; round++ {
		for _, m := range modes {
			n := one
			if m.shim {
				n = two
			}
			results = append(results, measureMode(t, n, m, round, secs)...)
		}
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "\n| round | path | streams | kernel Gbit/s | TUN Gbit/s | × kernel | packets/read | TUN drops |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&sb, "| %d | %s | %d | %.2f | %.2f | %.2f | %.1f | %d |\n",
			r.round, r.mode, r.streams, r.kernelBPS/1e9, r.bps/1e9, r.ratio(), r.avgBatch, r.tunDrops)
	}
	fmt.Fprintf(&sb, "\nmedian × kernel over %d round(s):\n\n| path | 1 stream | 4 streams |\n|---|---|---|\n", rounds)
	for _, m := range modes {
		fmt.Fprintf(&sb, "| %s | %.2f | %.2f |\n", m.name, medianRatio(results, m.name, 1), medianRatio(results, m.name, 4))
	}
	t.Log(sb.String())
	fmt.Print(sb.String())
}

func medianRatio(rs []fwResult, mode string, streams int) float64 {
	var v []float64
	for _, r := range rs {
		if r.mode == mode && r.streams == streams {
			v = append(v, r.ratio())
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// measureMode opens the mode's TUN in every gateway and, for 1 and 4
// streams, measures kernel forwarding (rules off) and then the forwarders
// (rules on).
func measureMode(t *testing.T, n *chain, m fwMode, round, secs int) []fwResult {
	t.Helper()
	noGRO := func(d tunnel.Device) {
		if o, ok := d.(*tunnel.Offload); ok && m.noGRO {
			o.SetGRO(false)
		}
	}
	var fws []*forwarder
	for i, g := range n.gws {
		fws = append(fws, openForwarder(t, g.ns, *m.backend, func() tunnel.Processor { return m.proc(i) }, noGRO))
	}
	if q := os.Getenv("SHIM6GW_BENCH_TXQLEN"); q != "" {
		for _, g := range n.gws {
			ipn(t, g.ns, "link", "set", tunName, "txqueuelen", q)
		}
	}
	n.divert(t)
	n.rules(t, false)
	tunDrops := func() uint64 {
		var d uint64
		for _, g := range n.gws {
			d += txStats(t, g.ns, tunName).Dropped
		}
		return d
	}
	fw := fws[0] // the client's gateway
	var results []fwResult
	for _, streams := range []int{1, 4} {
		r := fwResult{round: round, mode: m.name, streams: streams}
		r.kernelBPS, _ = iperf3(t, n.c, serverAddr, secs, streams)

		rx0 := fw.sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.RxBytes })
		p0 := fw.sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.RxPackets })
		b0 := fw.sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.Batches })
		d0 := tunDrops()
		n.rules(t, true)
		var got uint64
		r.bps, got = iperf3(t, n.c, serverAddr, secs, streams)
		n.rules(t, false)
		rx := fw.sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.RxBytes }) - rx0
		pk := fw.sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.RxPackets }) - p0
		bt := fw.sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.Batches }) - b0
		// Every payload byte crossed the TUN (plus headers).
		if rx < got {
			t.Errorf("%s: %d bytes through the TUN, iperf3 received %d: traffic bypassed the forwarder", m.name, rx, got)
		}
		r.avgBatch = float64(pk) / float64(max(bt, 1))
		// Packets the kernel could not queue to the TUN readers.
		r.tunDrops = tunDrops() - d0
		results = append(results, r)
		t.Logf("round %d %-15s %d stream(s): kernel %6.2f Gbit/s, TUN %6.2f Gbit/s (× %.2f)",
			round, m.name, streams, r.kernelBPS/1e9, r.bps/1e9, r.ratio())
	}
	n.flushDivert(t)
	for _, f := range fws {
		f.stop(t)
	}
	return results
}

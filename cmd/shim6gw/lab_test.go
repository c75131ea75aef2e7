package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shim6gw/shim6gw/lab"
)

func TestParseLabFlags(t *testing.T) {
	def := labFlags{fail: lab.FailLink, failAt: 3 * time.Second, duration: 10 * time.Second, prefix: "s6lab", vrrpAdvert: lab.LabVRRP.Advert, fastpath: "auto"}
	tests := []struct {
		name    string
		args    []string
		want    labFlags
		wantErr string // substring; "" means no error
	}{
		{"defaults", nil, def, ""},
		{"all", []string{"--fail", "blackhole", "--fail-at", "1s", "--duration", "4s", "--json", "--capture", "/tmp/c",
			"--keep", "--kernel", "--prefix", "s6labx", "--send-timeout", "1s"},
			labFlags{fail: lab.FailBlackhole, failAt: time.Second, duration: 4 * time.Second, json: true, capture: "/tmp/c",
				keep: true, kernel: true, prefix: "s6labx", sendTimeout: time.Second, vrrpAdvert: lab.LabVRRP.Advert, fastpath: "auto"}, ""},
		{"throughput", []string{"--throughput", "2s", "--json", "--prefix", "s6labx", "--send-timeout", "1s", "--fastpath", "ebpf"},
			func() labFlags {
				f := def
				f.throughput, f.json, f.prefix, f.sendTimeout, f.fastpath = 2*time.Second, true, "s6labx", time.Second, "ebpf"
				return f
			}(), ""},
		{"throughput with fail", []string{"--throughput", "1s", "--fail", "link"}, labFlags{}, "--fail does not go with --throughput"},
		{"throughput with fail-at", []string{"--throughput", "1s", "--fail-at", "1s"}, labFlags{}, "--fail-at does not go with --throughput"},
		{"throughput with duration", []string{"--throughput", "1s", "--duration", "5s"}, labFlags{}, "--duration does not go with --throughput"},
		{"throughput with kernel", []string{"--throughput", "1s", "--kernel"}, labFlags{}, "--kernel does not go with --throughput"},
		{"throughput with keep", []string{"--throughput", "1s", "--keep"}, labFlags{}, "--keep does not go with --throughput"},
		{"throughput with capture", []string{"--throughput", "1s", "--capture", "/tmp/c"}, labFlags{}, "--capture does not go with --throughput"},
		{"throughput with plot", []string{"--throughput", "1s", "--plot", "x.svg"}, labFlags{}, "--plot does not go with --throughput"},
		{"throughput with foreign prefix", []string{"--throughput", "1s", "--prefix", "s6gw"}, labFlags{}, "does not start with s6lab"},
		{"throughput with fastpath auto", []string{"--throughput", "1s", "--fastpath", "auto"}, labFlags{}, "auto would leave the rows' fastpath unknown"},
		{"fastpath off", []string{"--fastpath", "off"}, func() labFlags { f := def; f.fastpath = "off"; return f }(), ""},
		{"fastpath unknown", []string{"--fastpath", "xdp"}, labFlags{}, `--fastpath "xdp": want auto, ebpf or off`},
		{"ha", []string{"--ha", "--fail", "gateway", "--vrrp-advert", "1s", "--plot", "x.PNG"},
			func() labFlags {
				f := def
				f.ha, f.fail, f.vrrpAdvert, f.plot = true, lab.FailGateway, time.Second, "x.PNG"
				return f
			}(), ""},
		{"gateway without ha", []string{"--fail", "gateway"}, labFlags{}, "--fail gateway needs --ha"},
		{"ha with kernel", []string{"--ha", "--kernel"}, labFlags{}, "does not go with --kernel"},
		{"ha with throughput", []string{"--ha", "--throughput", "1s"}, labFlags{}, "--ha does not go with --throughput"},
		{"vrrp advert too short", []string{"--ha", "--vrrp-advert", "5ms"}, labFlags{}, "is not in 10ms..40.95s"},
		{"plot format", []string{"--plot", "x.pdf"}, labFlags{}, "want a .svg or .png file"},
		{"send timeout sub-second", []string{"--send-timeout", "250ms"}, func() labFlags { f := def; f.sendTimeout = 250 * time.Millisecond; return f }(), ""},
		{"send timeout fraction", []string{"--send-timeout", "1500ms"}, func() labFlags { f := def; f.sendTimeout = 1500 * time.Millisecond; return f }(), ""},
		{"send timeout too short", []string{"--send-timeout", "50ms"}, labFlags{}, "is not in 100ms..65535s"},
		{"send timeout too long", []string{"--send-timeout", "20h"}, labFlags{}, "is not in 100ms..65535s"},
		{"none", []string{"-fail=none"}, func() labFlags { f := def; f.fail = lab.FailNone; return f }(), ""},
		{"down", []string{"--down"}, func() labFlags { f := def; f.down = true; return f }(), ""},
		{"bad mode", []string{"--fail", "flap"}, labFlags{}, `unknown failure mode "flap"`},
		{"fail-at after end", []string{"--fail-at", "10s"}, labFlags{}, "is not before --duration"},
		{"zero duration", []string{"--duration", "0s"}, labFlags{}, "must be positive"},
		{"negative throughput", []string{"--throughput", "-1s"}, labFlags{}, "must not be negative"},
		{"foreign prefix", []string{"--prefix", "s6gw"}, labFlags{}, "does not start with s6lab"},
		{"extra argument", []string{"now"}, labFlags{}, `unexpected argument "now"`},
		{"unknown flag", []string{"--frob"}, labFlags{}, "flag provided but not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, help, err := parseLabFlags(tc.args, &bytes.Buffer{})
			if help {
				t.Fatal("help = true")
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(labFlags{}), cmpopts.IgnoreFields(labFlags{}, "set")); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLabUsage(t *testing.T) {
	out, errs, status := runCmd(t, "lab", "-h")
	if status != exitOK || errs != "" || !strings.Contains(out, "--fail link|blackhole") || !strings.Contains(out, "-fail-at") {
		t.Fatalf("lab -h = %d, stdout %q, stderr %q", status, out, errs)
	}
	out, errs, status = runCmd(t, "lab", "--fail", "flap")
	if status != exitUsage || out != "" || errs != "shim6gw: lab: unknown failure mode \"flap\" (want link, blackhole, gateway or none)\n" {
		t.Fatalf("lab --fail flap = %d, stdout %q, stderr %q", status, out, errs)
	}
	if out, _, _ := runCmd(t, "help"); !strings.Contains(out, "  lab ") {
		t.Errorf("help does not list lab:\n%s", out)
	}
}

func TestLabNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("skipping: running as root")
	}
	_, errs, status := runCmd(t, "lab", "--kernel")
	if status != exitFail || !strings.Contains(errs, "needs root") {
		t.Fatalf("lab as non-root = %d, stderr %q", status, errs)
	}
}

// TestIntegrationLabCommand runs the built binary's "lab --json" in
// daemon mode (the gateways are the binary's own "run") under its own
// prefix, and checks the report and that nothing is left.
func TestIntegrationLabCommand(t *testing.T) {
	skipUnlessLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const prefix = "s6labcmd"
	bin := labBinary(ctx, t, prefix)
	capDir := ""
	args := []string{"lab", "--json", "--prefix", prefix, "--fail-at", "2s", "--duration", "5s"}
	if _, err := exec.LookPath("dumpcap"); err == nil {
		capDir = t.TempDir()
		args = append(args, "--capture", capDir)
	}
	c := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	t.Logf("stderr: %s", stderr.String())
	if err != nil {
		t.Fatalf("shim6gw lab: %v\nstdout: %s", err, stdout.String())
	}
	var rep struct {
		Established bool   `json:"established"`
		Survived    bool   `json:"survived"`
		GapMS       *int64 `json:"gap_ms"`
		FailMode    string `json:"fail_mode"`
		PairBefore  string `json:"pair_before"`
		PairAfter   string `json:"pair_after"`
		Bytes       int64  `json:"bytes"`
		Streams     []struct {
			Name       string `json:"name"`
			Host       string `json:"host"`
			Addressing string `json:"addressing"`
			MaxGapMS   int64  `json:"max_gap_ms"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
	}
	t.Logf("gap %d ms, %s -> %s", *rep.GapMS, rep.PairBefore, rep.PairAfter)
	if !rep.Established || !rep.Survived || rep.GapMS == nil || rep.FailMode != "link" || rep.Bytes <= 0 {
		t.Errorf("report %+v", rep)
	}
	// One session per way a site-1 host gets its address.
	modes := map[string]string{}
	for _, s := range rep.Streams {
		t.Logf("stream %s: host %s, %s, max gap %d ms", s.Name, s.Host, s.Addressing, s.MaxGapMS)
		modes[s.Host] = s.Addressing
	}
	if modes["h1"] != "static" || modes["h1d"] != "dhcpv6" || modes["h1s"] != "slaac-translated" {
		t.Errorf("streams' hosts and addressing %v, want h1 static, h1d dhcpv6, h1s slaac-translated", modes)
	}
	// ISP A of site 1 is down at the end: the pair must use its P_B
	// locator. (Before, it is normally the ULID pair under P_A, but a
	// heavily loaded machine may have seen a REAP exploration already.)
	if !strings.HasPrefix(rep.PairBefore, "2001:db8:") || !strings.HasPrefix(rep.PairAfter, "2001:db8:b1:1:") {
		t.Errorf("pair before %q, after %q: want a locator pair, then one with site 1's P_B locator", rep.PairBefore, rep.PairAfter)
	}
	for _, gw := range []string{"gw1", "gw2"} {
		if capDir == "" {
			break
		}
		for _, f := range []string{gw + ".pcapng", gw + "-control.pcap"} {
			if fi, err := os.Stat(filepath.Join(capDir, f)); err != nil || fi.Size() <= 24 {
				t.Errorf("capture %s: %v", f, err)
			}
		}
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), prefix+"-") {
		t.Errorf("lab left namespaces behind:\n%s", out)
	}
}

// skipUnlessLab skips unless root and the lab's tools (and extra) exist.
func skipUnlessLab(t *testing.T, extra ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (CI runs as root)")
	}
	for _, tool := range append([]string{"ip", "nft", "sysctl"}, extra...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed", tool)
		}
	}
}

// labBinary builds this command for a lab test whose labs use prefix, and
// checks at cleanup that none of its namespaces is left.
func labBinary(ctx context.Context, t *testing.T, prefix string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shim6gw")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	if out, _ := exec.Command(bin, "help").Output(); !strings.Contains(string(out), "\n  run ") {
		t.Skip("skipping: shim6gw has no run command yet")
	}
	t.Cleanup(func() {
		_ = lab.CleanupLeftovers(context.Background(), prefix)
		out, _ := exec.Command("ip", "netns", "list").Output()
		if strings.Contains(string(out), prefix+"-") {
			t.Errorf("namespaces left behind:\n%s", out)
		}
	})
	return bin
}

func TestSetSendTimeout(t *testing.T) {
	saved := lab.LabTimers
	before := slices.Clone(saved)
	t.Cleanup(func() { lab.LabTimers = saved })
	setSendTimeout(time.Second)
	got := map[string]string{}
	for _, tm := range lab.LabTimers {
		got[tm.Key] = tm.Value
	}
	if got["send_timeout"] != "1s" || got["keepalive_timeout"] != "1s" || got["i1_timeout"] != "500ms" {
		t.Errorf("timers after setSendTimeout(1s): %v", got)
	}
	if !slices.Equal(saved, before) {
		t.Errorf("the package's LabTimers were changed in place: %v", saved)
	}
	cfg := string(lab.GatewayConfig(lab.Site1, "s", ""))
	if !strings.Contains(cfg, "  send_timeout: 1s\n") || !strings.Contains(cfg, "  keepalive_timeout: 1s\n") {
		t.Errorf("generated config does not use the new timers:\n%s", cfg)
	}
}

func TestThroughputFastpaths(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--throughput", "1s"}, []string{"ebpf", "off"}},
		{[]string{"--throughput", "1s", "--fastpath", "ebpf"}, []string{"ebpf"}},
		{[]string{"--throughput", "1s", "--fastpath", "off"}, []string{"off"}},
	} {
		f, _, err := parseLabFlags(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.throughputFastpaths(); !slices.Equal(got, tc.want) {
			t.Errorf("%v: daemon labs %v, want %v", tc.args, got, tc.want)
		}
	}
}

// fullThroughputRows is one run's rows: every daemon row, and the kernel
// rows as kernelRows makes them (one measurement per host pair and mode).
func fullThroughputRows() []throughputRow {
	d := func(kind string, fp, off bool, mbit float64) throughputRow {
		return throughputRow{Mode: modeDaemon, PathKind: kind, Fastpath: fp, Offloads: off, MbitPerSec: mbit}
	}
	rows := []throughputRow{
		d(kindPassthrough, true, true, 9500), d(kindPassthrough, true, false, 4000),
		d(kindShimmed, true, false, 3600), d(kindFallback, true, false, 700),
		d(kindShimmed, true, true, 500), d(kindFallback, true, true, 3000),
		d(kindPassthrough, false, true, 5000), d(kindPassthrough, false, false, 400),
		d(kindShimmed, false, false, 1000), d(kindFallback, false, false, 650),
		d(kindShimmed, false, true, 1500), d(kindFallback, false, true, 2900),
	}
	for _, k := range []struct {
		mode string
		off  bool
		h2   float64
		leg  float64
	}{{modeKernel, true, 10000, 12000}, {modeKernelPerPacket, false, 4500, 5000}} {
		rows = append(rows, kernelRows(lab.Throughput{BitsPerSecond: k.h2 * 1e6}, k.mode, k.off, "h1->h2", kindPassthrough, kindShimmed)...)
		rows = append(rows, kernelRows(lab.Throughput{BitsPerSecond: k.leg * 1e6}, k.mode, k.off, "h1->legacy", kindFallback)...)
	}
	return rows
}

func TestThroughputRatios(t *testing.T) {
	rows := fullThroughputRows()
	if len(rows) != 3*throughputRowsPerLab {
		t.Fatalf("%d rows, want %d", len(rows), 3*throughputRowsPerLab)
	}
	got := throughputRatios(rows)
	want := []throughputRatio{
		{Name: "passthrough: fast path / kernel", Value: 0.95, Goal: 0.95, Met: true},
		{Name: "shimmed: fast path / kernel-per-packet (offloads off)", Value: 0.8, Goal: 0.8, Met: true},
		{Name: "shimmed: fast path / TUN path (offloads off)", Value: 3.6, Goal: 3, Met: true},
		{Name: "shimmed: fast path (offloads off) / TUN path (offloads on)", Value: 2.4, Goal: 3, Met: false},
	}
	if d := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); d != "" {
		t.Errorf("ratios (-want +got):\n%s", d)
	}

	// A goal whose rows are missing or zero is left out, not divided by 0.
	var partial []throughputRow
	for _, r := range rows {
		if r.Mode == modeKernel {
			continue
		}
		if r.Mode == modeDaemon && !r.Fastpath && r.Offloads {
			r.MbitPerSec = 0
		}
		partial = append(partial, r)
	}
	var names []string
	for _, q := range throughputRatios(partial) {
		names = append(names, q.Name)
	}
	if want := []string{"shimmed: fast path / kernel-per-packet (offloads off)", "shimmed: fast path / TUN path (offloads off)"}; !slices.Equal(names, want) {
		t.Errorf("ratios without the kernel rows and a zero TUN row: %q, want %q", names, want)
	}
}

func TestKernelRowsAndBaseline(t *testing.T) {
	rows := fullThroughputRows()
	// Each kernel measurement is the baseline of its host pair's kinds.
	kinds := map[rowKey]float64{}
	for _, r := range rows {
		if r.Mode != modeDaemon {
			if r.Fastpath {
				t.Errorf("kernel row with fastpath: %+v", r)
			}
			kinds[r.key()] = r.MbitPerSec
		}
	}
	wantKinds := map[rowKey]float64{
		{modeKernel, kindPassthrough, false, true}: 10000, {modeKernel, kindShimmed, false, true}: 10000,
		{modeKernel, kindFallback, false, true}:              12000,
		{modeKernelPerPacket, kindPassthrough, false, false}: 4500, {modeKernelPerPacket, kindShimmed, false, false}: 4500,
		{modeKernelPerPacket, kindFallback, false, false}: 5000,
	}
	if d := cmp.Diff(wantKinds, kinds, cmp.AllowUnexported(rowKey{})); d != "" {
		t.Errorf("kernel rows (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		row  throughputRow
		want float64 // 0: no baseline
	}{
		{throughputRow{Mode: modeDaemon, PathKind: kindFallback, Offloads: true}, 12000},
		{throughputRow{Mode: modeDaemon, PathKind: kindShimmed, Fastpath: true}, 4500},
		{throughputRow{Mode: modeDaemon, PathKind: kindPassthrough, Offloads: false}, 4500},
		{throughputRow{Mode: modeKernelPerPacket, PathKind: kindShimmed}, 0},
	} {
		b, ok := baselineOf(tc.row, rows)
		if got := b.MbitPerSec; ok != (tc.want != 0) || got != tc.want {
			t.Errorf("baseline of %+v: %v %v, want %v", tc.row, got, ok, tc.want)
		}
	}
}

func TestFastShares(t *testing.T) {
	before := map[string]lab.PathCount{"fast": {Packets: 100, Bytes: 1e5}, "tun": {Packets: 50, Bytes: 5e4}}
	after := map[string]lab.PathCount{"fast": {Packets: 400, Bytes: 4e5}, "tun": {Packets: 150, Bytes: 1.05e6}, "drop": {Packets: 100, Bytes: 5e4}}
	p, b := fastShares(before, after)
	// Deltas: fast 300 packets / 3e5 bytes, tun 100 / 1e6, drop 100 / 5e4.
	if p == nil || b == nil || *p != 0.6 || *b != 3e5/1.35e6 {
		t.Errorf("shares %v %v, want 0.6 and %v", deref(p), deref(b), 3e5/1.35e6)
	}
	if p, b := fastShares(nil, map[string]lab.PathCount{"tun": {}}); p == nil || *p != 0 || *b != 0 {
		t.Errorf("no traffic: shares %v %v, want 0", deref(p), deref(b))
	}
	if p, b := fastShares(nil, nil); p != nil || b != nil {
		t.Errorf("without the fast path's metrics: shares %v %v, want none", deref(p), deref(b))
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestWriteThroughput(t *testing.T) {
	rows := fullThroughputRows()
	share := 0.5
	rows[0].FastShare, rows[0].FastByteShare = &share, &share
	rows[1].Note = "context after the measurement: x"
	var b bytes.Buffer
	writeThroughput(&b, throughputResult{Seconds: 5, Rows: rows, Ratios: throughputRatios(rows), LoadBefore: "1.00 2.00 3.00", LoadAfter: "4.00 5.00 6.00"})
	out := b.String()
	lines := strings.Split(out, "\n")
	for _, want := range []string{
		"5s per row (load average 1.00 2.00 3.00, after 4.00 5.00 6.00)",
		"daemon             passthrough  yes        on        9500    0.95      0            0.500 / 0.500",
		"[context after the measurement: x]",
		"kernel-per-packet  fallback     no         off       5000",
		"shimmed: fast path / TUN path (offloads off)                3.60  (goal ≥ 3)     met",
		"shimmed: fast path (offloads off) / TUN path (offloads on)  2.40  (goal ≥ 3)     not met",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n  daemon "); n != 12 {
		t.Errorf("%d daemon rows printed, want 12 (%d lines)", n, len(lines))
	}
}

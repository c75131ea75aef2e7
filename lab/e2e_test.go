package lab

// End-to-end harness (issue 6): the real shim6gw binary runs as each
// site's gateway inside the lab. The binary is built once per test binary
// (or taken from SHIM6GW_E2E_BIN) and started with ExecGateway; every lab
// uses the prefix e2ePrefix and is torn down and checked clean by
// t.Cleanup.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/hba"
)

// e2ePrefix keeps the end-to-end labs apart from the other lab tests and
// from `shim6gw lab`.
const e2ePrefix = "s6labe2e"

var (
	e2eTmp      string // removed by TestMain
	e2eBinOnce  sync.Once
	e2eBin      string
	e2eBinError string // why there is no binary: the tests skip
)

func TestMain(m *testing.M) {
	code := m.Run()
	if e2eTmp != "" {
		_ = os.RemoveAll(e2eTmp)
	}
	os.Exit(code)
}

// gatewayBinary builds cmd/shim6gw once and returns its path, or skips
// when it cannot be built or has no "run" command yet.
func gatewayBinary(t *testing.T) string {
	t.Helper()
	e2eBinOnce.Do(func() {
		if p := os.Getenv("SHIM6GW_E2E_BIN"); p != "" {
			e2eBin = p
		} else {
			dir, err := os.MkdirTemp("", "shim6gw-e2e-")
			if err != nil {
				e2eBinError = err.Error()
				return
			}
			e2eTmp = dir
			e2eBin = filepath.Join(dir, "shim6gw")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "go", "build", "-o", e2eBin, "github.com/shim6gw/shim6gw/cmd/shim6gw").CombinedOutput()
			if err != nil {
				e2eBinError = fmt.Sprintf("go build ./cmd/shim6gw: %v: %s", err, out)
				return
			}
		}
		out, _ := exec.Command(e2eBin, "help").Output()
		if !strings.Contains(string(out), "\n  run ") {
			e2eBinError = "shim6gw has no run command yet"
		}
	})
	if e2eBinError != "" {
		if strings.HasPrefix(e2eBinError, "go build") {
			t.Fatal(e2eBinError)
		}
		t.Skip("skipping: " + e2eBinError)
	}
	return e2eBin
}

// e2e is one daemon-mode lab of a test.
type e2e struct {
	*Lab
	t      *testing.T
	start  StartGatewayFunc
	log    *lockedFile
	b1, b2 []netip.Addr // ULIDs of the hosts' book entries, in entry order
	// killed: a gateway was killed with SIGKILL, so Down's error about
	// its exit is expected.
	killed bool
	// killedAt is when each gateway last got a SIGKILL.
	killedAt map[Node]time.Time
}

// lockedFile serialises the two gateways' output into one file.
type lockedFile struct {
	mu sync.Mutex
	f  *os.File
}

func (w *lockedFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Write(p)
}

// upE2EFastpath builds a daemon-mode lab with the gateways'
// dataplane.fastpath set, whose hosts carry the given entries of their
// site's HBA book (the first one's ULID is the streams' address).
func upE2EFastpath(t *testing.T, fastpath string, entries ...int) *e2e {
	t.Helper()
	return upE2EOpts(t, func(o *Options) { o.Fastpath = fastpath }, entries...)
}

// upE2EOpts is upE2E with the lab's options changed by mod.
func upE2EOpts(t *testing.T, mod func(*Options), entries ...int) *e2e {
	t.Helper()
	skipUnlessRoot(t)
	bin := gatewayBinary(t)
	if len(entries) == 0 {
		entries = []int{0}
	}
	dir := t.TempDir()
	b1, b2 := siteBooks(t, dir)
	f, err := os.Create(filepath.Join(dir, "gateways.log"))
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{t: t, log: &lockedFile{f: f}}
	for _, i := range entries {
		e.b1 = append(e.b1, b1.Entry(i).ULID())
		e.b2 = append(e.b2, b2.Entry(i).ULID())
	}
	ready := func(ctx context.Context, ns string) error { return e.GatewayReady(ctx, ns) }
	e.start = ExecGateway(e.log, ready, bin, "run", "--config", "{config}")
	opts := Options{Prefix: e2ePrefix, Mode: Daemon, Dir: dir, StartGateway: e.start,
		H1Addrs: BookHostAddrs(b1, entries...), H2Addrs: BookHostAddrs(b2, entries...)}
	mod(&opts)
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.Lab = l
	t.Cleanup(func() {
		if err := l.Down(); err != nil && !e.killed {
			t.Errorf("Down: %v", err)
		}
		assertClean(t, e2ePrefix)
		assertNoGatewayState(t)
		if t.Failed() {
			e.dumpLog()
		}
		f.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	return e
}

// siteBooks writes both sites' configurations into dir and returns their
// HBA books.
func siteBooks(t *testing.T, dir string) (b1, b2 *hba.Book) {
	t.Helper()
	var err error
	if b1, err = SiteBook(dir, Site1); err == nil {
		b2, err = SiteBook(dir, Site2)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b1, b2
}

// assertNoGatewayState checks that the root namespace holds no rule or
// route of the gateway's (its rtnetlink protocol, docs/architecture.md §3): the
// daemons ran in the lab's namespaces only.
func assertNoGatewayState(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	proto := strconv.Itoa(config.DefaultRouteProtocol)
	out, err := run(ctx, nil, "ip", "-d", "-6", "rule", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, " proto "+proto) || strings.Contains(line, " proto "+proto+" ") {
			t.Errorf("gateway rule in the root namespace: %s", line)
		}
	}
	if out, err = run(ctx, nil, "ip", "-6", "route", "show", "table", "all", "proto", proto); err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("gateway routes in the root namespace:\n%s", s)
	}
}

// dumpLog writes the gateways' last log lines into the test log.
func (e *e2e) dumpLog() {
	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	b, err := os.ReadFile(e.log.f.Name())
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	e.t.Logf("gateways' log (last %d lines):\n%s", len(lines), strings.Join(lines, "\n"))
}

// contexts fetches gw's contexts, failing the test on error.
func (e *e2e) contexts(gw Node) []metrics.ContextInfo {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := e.Contexts(ctx, gw)
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

// waitContexts polls gw's contexts (at most 15 s) until cond holds for
// the context of every ULID pair in pairs, and returns them.
func (e *e2e) waitContexts(what string, gw Node, pairs [][2]netip.Addr, cond func(metrics.ContextInfo) bool) []metrics.ContextInfo {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		cs := e.contexts(gw)
		var got []metrics.ContextInfo
		for _, p := range pairs {
			if c, ok := FindContext(cs, p[0], p[1]); ok && cond(c) {
				got = append(got, c)
			}
		}
		if len(got) == len(pairs) {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: after 15 s %s has %d of %d contexts as wanted: %+v", what, gw, len(got), len(pairs), cs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// established reports a context in state established.
func established(c metrics.ContextInfo) bool { return c.State == "established" }

// onUplink returns a condition: established with the local locator in
// prefix p.
func onUplink(p netip.Prefix) func(metrics.ContextInfo) bool { return LocatorIn(p, false) }

// stream starts a stream, stopped by t.Cleanup.
func (e *e2e) stream(cfg StreamConfig) *Stream {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.StartStream(ctx, cfg)
	if err != nil {
		e.t.Fatalf("stream %s: %v", cfg.Name, err)
	}
	e.t.Cleanup(func() { s.Stop() })
	return s
}

// twoStreams starts a TCP stream each way between the hosts' first
// ULIDs, on ports port and port+1, and waits until gw1's context is
// established and both streams carry data.
func (e *e2e) twoStreams(port uint16) (h1h2, h2h1 *Stream) {
	e.t.Helper()
	h1, h2 := e.b1[0], e.b2[0]
	h1h2 = e.stream(StreamConfig{Name: "h1->h2", From: H1, Src: h1, To: H2, Dst: h2, Port: port})
	h2h1 = e.stream(StreamConfig{Name: "h2->h1", From: H2, Src: h2, To: H1, Dst: h1, Port: port + 1})
	e.waitContexts("streams started", GW1, [][2]netip.Addr{{h1, h2}}, established)
	waitMore(e.t, h1h2, 0)
	waitMore(e.t, h2h1, 0)
	return h1h2, h2h1
}

// fail injects a failure, bounded.
func (e *e2e) fail(isp Node, m FailMode) time.Time {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.Fail(ctx, isp, m); err != nil {
		e.t.Fatal(err)
	}
	return time.Now()
}

// gatewayPID returns the pid of the shim6gw process in gw's namespace.
func (e *e2e) gatewayPID(gw Node) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := run(ctx, nil, "ip", "netns", "pids", e.NS(gw))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if args := bytes.Split(cmdline, []byte{0}); len(args) > 1 && string(args[1]) == "run" {
			return pid
		}
	}
	e.t.Fatalf("no shim6gw run process in %s (pids %q)", e.NS(gw), out)
	return 0
}

// killGateway sends SIGKILL to gw's daemon and waits until it is gone.
func (e *e2e) killGateway(gw Node) {
	e.t.Helper()
	e.signalGateway(gw, syscall.SIGKILL)
}

// signalGateway sends sig to gw's daemon and waits until it is gone.
func (e *e2e) signalGateway(gw Node, sig syscall.Signal) {
	e.t.Helper()
	pid := e.gatewayPID(gw)
	e.killed = true
	if sig == syscall.SIGKILL {
		if e.killedAt == nil {
			e.killedAt = map[Node]time.Time{}
		}
		e.killedAt[gw] = time.Now()
	}
	if err := syscall.Kill(pid, sig); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A zombie still answers kill(0); its state says it is dead.
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || bytes.Contains(b, []byte(") Z ")) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("gateway %d in %s still running 10 s after %v", pid, gw, sig)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// restartGateway starts site s's daemon again with its configuration.
func (e *e2e) restartGateway(s Site) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	started := time.Now()
	stop, err := e.start(ctx, e.NS(s.Gateway), e.ConfigPath(s))
	if err != nil {
		e.t.Fatalf("restart %s: %v", s.Gateway, err)
	}
	// Before the lab's Down (cleanups run last-in first-out). A daemon
	// the test killed later has nothing to stop cleanly.
	e.t.Cleanup(func() {
		if err := stop(); err != nil && !e.killedAt[s.Gateway].After(started) {
			e.t.Errorf("stop restarted %s: %v", s.Gateway, err)
		}
	})
}

// metric sums the samples of the Prometheus metric name on gw's /metrics
// that carry every one of labels (`type="r1bis"`).
func (e *e2e) metric(gw Node, name string, labels ...string) float64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := e.AdminGet(ctx, gw, "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	return sumMetric(body, name, labels...)
}

// nonZero returns gw's /metrics samples that contain any of substrs and
// are not zero, for the test log.
func (e *e2e) nonZero(gw Node, substrs ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := e.AdminGet(ctx, gw, "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	return nonZeroLines(body, substrs...)
}

// nonZeroLines returns the samples of a Prometheus text exposition that
// contain any of substrs and are not zero.
func nonZeroLines(body []byte, substrs ...string) string {
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "#") || strings.HasSuffix(line, " 0") {
			continue
		}
		for _, s := range substrs {
			if strings.Contains(line, s) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// snmp6 returns counter name of node n's /proc/net/snmp6.
func (e *e2e) snmp6(n Node, name string) int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.Exec(ctx, n, "cat", "/proc/net/snmp6")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				e.t.Fatal(err)
			}
			return v
		}
	}
	e.t.Fatalf("%s: no %s in /proc/net/snmp6", n, name)
	return 0
}

// sumMetric adds the values of the samples of name in a Prometheus text
// exposition that carry every one of labels.
func sumMetric(body []byte, name string, labels ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(body))
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue // a longer name
		}
		set := ""
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			set, rest = rest[1:end], rest[end+1:]
		}
		for _, l := range labels {
			if !strings.Contains(","+set+",", ","+l+",") {
				continue next
			}
		}
		if f := strings.Fields(rest); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// waitMore waits (at most 20 s) until s received more than n bytes and
// is still alive.
func waitMore(t *testing.T, s *Stream, n int64) {
	t.Helper()
	waitBytes(t, s, n+1)
}

// checkAlive fails the test for a stream that saw an error or reset.
func checkAlive(t *testing.T, streams ...*Stream) {
	t.Helper()
	for _, s := range streams {
		if st := s.Stats(time.Now()); !s.Alive() || st.Resets > 0 || st.Err != "" {
			t.Errorf("stream %s not alive: %+v", st.Name, st)
		}
	}
}

func TestSumMetric(t *testing.T) {
	body := []byte(`# HELP shim6gw_rewrite_dropped_packets_total x
# TYPE shim6gw_rewrite_dropped_packets_total counter
shim6gw_rewrite_dropped_packets_total{direction="in",reason="bad_tag"} 12
shim6gw_rewrite_dropped_packets_total{direction="out",reason="too_big"} 3.5
shim6gw_rewrite_dropped_packets_totalx 100
shim6gw_control_dropped_messages_total 7
`)
	if got := sumMetric(body, "shim6gw_rewrite_dropped_packets_total"); got != 15.5 {
		t.Errorf("rewrite drops = %v, want 15.5", got)
	}
	if got := sumMetric(body, "shim6gw_control_dropped_messages_total"); got != 7 {
		t.Errorf("control drops = %v, want 7", got)
	}
	if got := sumMetric(body, "shim6gw_rewrite_dropped_packets_total", `reason="too_big"`); got != 3.5 {
		t.Errorf("too_big drops = %v, want 3.5", got)
	}
	if got := sumMetric(body, "shim6gw_rewrite_dropped_packets_total", `reason="too_big"`, `direction="in"`); got != 0 {
		t.Errorf("too_big inbound drops = %v, want 0", got)
	}
	if got := sumMetric(body, "shim6gw_nothing"); got != 0 {
		t.Errorf("absent = %v, want 0", got)
	}
}

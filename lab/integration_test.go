package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Addr shortens the test tables.
type Addr = netip.Addr

// testPrefix keeps this package's tests apart from `shim6gw lab` runs.
const testPrefix = "s6lab"

func skipUnlessRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (CI runs as root)")
	}
	for _, tool := range []string{"ip", "nft", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed", tool)
		}
	}
}

// upLab builds a lab and registers a cleanup that tears it down and checks
// that nothing is left.
func upLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	skipUnlessRoot(t)
	if opts.Prefix == "" {
		opts.Prefix = testPrefix
	}
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
		assertClean(t, opts.Prefix)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if got := len(l.Namespaces()); got != len(Nodes) {
		t.Fatalf("namespaces after Up = %d, want %d", got, len(Nodes))
	}
	return l
}

// assertClean checks `ip netns list`, root-namespace links and nft tables
// for anything named after prefix.
func assertClean(t *testing.T, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := run(ctx, nil, "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, prefix+"-") {
			t.Errorf("namespace left behind: %s", line)
		}
	}
	if out, err = run(ctx, nil, "ip", "-o", "link", "show"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), " "+prefix+"-") {
		t.Errorf("link left behind:\n%s", out)
	}
	if out, err = run(ctx, nil, "nft", "list", "tables"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), " "+prefix+"\n") {
		t.Errorf("nft table left behind in the root namespace:\n%s", out)
	}
}

func probe(t *testing.T, l *Lab, from Node, src Addr, to Node, dst Addr, n int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := l.UDPProbe(ctx, from, src, to, dst, 7000, n, time.Second)
	if err != nil {
		t.Fatalf("probe %s→%s: %v", src, dst, err)
	}
	return got
}

func TestIntegrationKernelLab(t *testing.T) {
	l := upLab(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h1a, h1b := Site1.A.HostAddr(), Site1.B.HostAddr()
	h2a, h2b := Site2.A.HostAddr(), Site2.B.HostAddr()

	t.Run("reachability", func(t *testing.T) {
		for _, c := range []struct {
			name     string
			from     Node
			src      Addr
			to       Node
			dst      Addr
			wantRecv int
		}{
			{"h1 P_A to h2 P_A", H1, h1a, H2, h2a, 5},
			{"h1 P_B to h2 P_B", H1, h1b, H2, h2b, 5},
			{"h2 P_A to h1 P_B", H2, h2a, H1, h1b, 5},
			{"h1 to legacy", H1, h1a, Legacy, LegacyAddr, 5},
			{"legacy to h2", Legacy, LegacyAddr, H2, h2b, 5},
		} {
			if got := probe(t, l, c.from, c.src, c.to, c.dst, 5); got != c.wantRecv {
				t.Errorf("%s: %d of 5 datagrams arrived, want %d", c.name, got, c.wantRecv)
			}
		}
	})

	t.Run("tcp over P_A", func(t *testing.T) {
		s, err := l.StartStream(ctx, StreamConfig{From: H1, Src: h1a, To: H2, Dst: h2a, Port: 5501})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop()
		waitBytes(t, s, 64<<10)
		st := s.Stop()
		if st.Err != "" || st.Resets != 0 {
			t.Errorf("stream: %+v", st)
		}
		if want := "[" + h1a.String() + "]"; !strings.HasPrefix(st.Src, want) {
			t.Errorf("stream source %s, want %s", st.Src, want)
		}
	})

	t.Run("ingress filter", func(t *testing.T) {
		// Steer h1's P_B source out through ISP A, as a gateway that picks
		// the wrong locator for the uplink would.
		if _, err := l.Exec(ctx, GW1, "ip", "-6", "rule", "add", "pref", "50", "from", h1b.String(),
			"lookup", fmt.Sprint(Site1.A.Table)); err != nil {
			t.Fatal(err)
		}
		defer l.Exec(ctx, GW1, "ip", "-6", "rule", "del", "pref", "50")
		before, err := l.IngressDrops(ctx, ISPA1)
		if err != nil {
			t.Fatal(err)
		}
		if got := probe(t, l, H1, h1b, H2, h2a, 5); got != 0 {
			t.Errorf("%d datagrams with a P_B source passed ISP A", got)
		}
		after, err := l.IngressDrops(ctx, ISPA1)
		if err != nil {
			t.Fatal(err)
		}
		if d := after.Packets - before.Packets; d < 5 {
			t.Errorf("ISP A counted %d ingress drops, want ≥ 5", d)
		}
		// The matching locator passes the same ISP.
		if got := probe(t, l, H1, h1a, H2, h2a, 5); got != 5 {
			t.Errorf("P_A source via ISP A: %d of 5 arrived", got)
		}
	})

	for _, mode := range []FailMode{FailLink, FailBlackhole} {
		t.Run("fail "+string(mode), func(t *testing.T) {
			if err := l.Fail(ctx, ISPA1, mode); err != nil {
				t.Fatal(err)
			}
			restored := false
			defer func() {
				if !restored {
					_ = l.Restore(ctx, ISPA1)
				}
			}()
			if got := probe(t, l, H1, h1a, H2, h2a, 5); got != 0 {
				t.Errorf("P_A path after %s failure: %d of 5 arrived, want 0", mode, got)
			}
			if got := probe(t, l, H1, h1b, H2, h2b, 5); got != 5 {
				t.Errorf("P_B path after %s failure of ISP A: %d of 5 arrived, want 5", mode, got)
			}
			if mode == FailBlackhole {
				c, err := l.BlackholeDrops(ctx, ISPA1)
				if err != nil {
					t.Fatal(err)
				}
				if c.Packets == 0 {
					t.Error("blackhole counted no drops")
				}
				if out, err := l.Exec(ctx, GW1, "ip", "-o", "link", "show", UplinkAIf); err != nil || strings.Contains(string(out), "NO-CARRIER") {
					t.Errorf("blackhole took the carrier down: %s %v", out, err)
				}
			} else {
				if out, err := l.Exec(ctx, GW1, "ip", "-o", "link", "show", UplinkAIf); err != nil || !strings.Contains(string(out), "NO-CARRIER") {
					t.Errorf("link failure: gw1 %s shows no carrier loss: %s %v", UplinkAIf, out, err)
				}
			}
			if err := l.Restore(ctx, ISPA1); err != nil {
				t.Fatal(err)
			}
			restored = true
			if got := waitProbe(t, l, H1, h1a, H2, h2a); got == 0 {
				t.Errorf("P_A path h1→h2 after Restore: nothing arrives")
			}
			if got := waitProbe(t, l, H2, h2a, H1, h1a); got == 0 {
				t.Errorf("P_A path h2→h1 after Restore: nothing arrives")
			}
		})
	}

	t.Run("gap tracker across blackhole", func(t *testing.T) {
		s, err := l.StartStream(ctx, StreamConfig{From: H1, Src: h1a, To: H2, Dst: h2a, Port: 5502})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop()
		waitBytes(t, s, 32<<10)
		if err := l.FailBlackhole(ctx, ISPA1); err != nil {
			t.Fatal(err)
		}
		failDone := time.Now()
		time.Sleep(time.Second)
		restoreStart := time.Now()
		bytesBefore := s.Tracker.Bytes()
		if err := l.Restore(ctx, ISPA1); err != nil {
			t.Fatal(err)
		}
		// Kernel forwarding: TCP waits out the outage on the same path and
		// resumes after a retransmission timeout.
		waitBytes(t, s, bytesBefore+32<<10)
		st := s.Stop()
		outage := restoreStart.Sub(failDone)
		gap := s.Tracker.MaxGapAfter(failDone, time.Now())
		if gap.Len() < outage {
			t.Errorf("largest gap %v < outage %v", gap.Len(), outage)
		}
		if gap.From.After(failDone) || gap.To.Before(restoreStart) {
			t.Errorf("largest gap %v..%v does not span the outage %v..%v", gap.From, gap.To, failDone, restoreStart)
		}
		if st.Resets != 0 || st.Err != "" {
			t.Errorf("stream did not survive: %+v", st)
		}
		t.Logf("outage %v, gap %v", outage, gap.Len())
	})
}

// waitBytes waits (bounded) until s received at least n bytes.
func waitBytes(t *testing.T, s *Stream, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.Tracker.Bytes() < n {
		if time.Now().After(deadline) {
			t.Fatalf("stream received %d bytes within 20 s, want %d: %+v", s.Tracker.Bytes(), n, s.Stats(time.Now()))
		}
		if !s.Alive() {
			t.Fatalf("stream died: %+v", s.Stats(time.Now()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitProbe probes until something arrives, at most 5 rounds.
func waitProbe(t *testing.T, l *Lab, from Node, src Addr, to Node, dst Addr) int {
	t.Helper()
	for i := 0; i < 5; i++ {
		if got := probe(t, l, from, src, to, dst, 3); got > 0 {
			return got
		}
	}
	return 0
}

func TestIntegrationScenarioKernel(t *testing.T) {
	l := upLab(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lines []Progress
	r, err := l.RunScenario(ctx, ScenarioOptions{Fail: FailBlackhole, FailAt: time.Second,
		Duration: 3 * time.Second, Progress: func(p Progress) { lines = append(lines, p) }})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_ = r.WriteSummary(&b)
	t.Log("\n" + b.String())
	// Kernel forwarding cannot move the P_A connections to ISP B: they
	// stall from the failure to the end.
	if !r.Established || r.Survived {
		t.Errorf("established %v survived %v, want true false", r.Established, r.Survived)
	}
	if r.GapMS < 1500 {
		t.Errorf("gap %d ms, want ≥ 1500 (failure 1 s into a 3 s run)", r.GapMS)
	}
	if len(r.Streams) != 2 || r.Streams[0].Bytes == 0 || r.Streams[1].Bytes == 0 {
		t.Errorf("streams %+v", r.Streams)
	}
	if len(lines) < 4 || !lines[len(lines)-1].Failed || lines[0].Failed {
		t.Errorf("progress lines %v", lines)
	}
	want := Site1.A.HostAddr().String() + " <-> " + Site2.A.HostAddr().String()
	if r.PairBefore != want || r.PairAfter != want {
		t.Errorf("pairs %q %q, want %q", r.PairBefore, r.PairAfter, want)
	}
}

func TestIntegrationThroughputKernel(t *testing.T) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("skipping: iperf3 not installed")
	}
	l := upLab(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp, err := l.Iperf3(ctx, H1, Site1.A.HostAddr(), H2, Site2.A.HostAddr(), 5210, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if tp.BitsPerSecond <= 0 || tp.BytesReceived <= 0 {
		t.Errorf("throughput %+v", tp)
	}
	t.Logf("kernel forwarding through both gateways: %s", tp)
}

func TestIntegrationCleanupLeftovers(t *testing.T) {
	skipUnlessRoot(t)
	const prefix = "s6lableft"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() { _ = CleanupLeftovers(context.Background(), prefix); assertClean(t, prefix) })
	// What a killed run leaves: namespaces with a process inside and a
	// veth between them.
	for _, n := range []string{prefix + "-x", prefix + "-y"} {
		if _, err := run(ctx, nil, "ip", "netns", "add", n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run(ctx, nil, "ip", "-n", prefix+"-x", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", prefix+"-y"); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("ip", "netns", "exec", prefix+"-x", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	// As with a killed run, the process is in the namespace (bounded wait
	// for `ip netns exec` to get there).
	inside := false
	for i := 0; i < 250 && !inside; i++ {
		out, _ := run(ctx, nil, "ip", "netns", "pids", prefix+"-x")
		inside = slices.Contains(strings.Fields(string(out)), fmt.Sprint(sleeper.Process.Pid))
		time.Sleep(20 * time.Millisecond)
	}
	if !inside {
		_ = sleeper.Process.Kill()
		t.Fatal("test process never entered the namespace")
	}
	// A namespace of another prefix sharing the beginning stays.
	other := prefix + "x-keep"
	if _, err := run(ctx, nil, "ip", "netns", "add", other); err != nil {
		t.Fatal(err)
	}
	defer run(context.Background(), nil, "ip", "netns", "del", other)
	if err := CleanupLeftovers(ctx, prefix); err != nil {
		t.Fatal(err)
	}
	if got := namespaces(prefix); len(got) != 0 {
		t.Errorf("left: %v", got)
	}
	if got := namespaces(prefix + "x"); len(got) != 1 {
		t.Errorf("other prefix: %v, want [%s]", got, other)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		_ = sleeper.Process.Kill()
		t.Error("process inside the leftover namespace was not killed")
	}
}

func TestIntegrationExecGateway(t *testing.T) {
	skipUnlessRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ns = "s6labexec-gw"
	_ = CleanupLeftovers(ctx, "s6labexec")
	if _, err := run(ctx, nil, "ip", "netns", "add", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = CleanupLeftovers(context.Background(), "s6labexec"); assertClean(t, "s6labexec") })
	cfg := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(cfg, []byte("lan: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A stand-in daemon that insists on its config file and reports ready
	// with a file (as the real one would answer /readyz).
	readyFile := cfg + ".ready"
	ready := func(ctx context.Context, ns string) error {
		for i := 0; i < 500; i++ {
			if _, err := os.Stat(readyFile); err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		return fmt.Errorf("no ready file")
	}
	start := ExecGateway(nil, ready, "sh", "-c", `test -s "$1" && touch "$1.ready" && exec sleep 60`, "sh", "{config}")
	stop, err := start(ctx, ns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if out, _ := run(ctx, nil, "ip", "netns", "pids", ns); len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("processes left in %s after stop: %s", ns, out)
	}
	// Missing config: the stand-in exits, which cancels ready; start fails.
	if err := os.Remove(readyFile); err != nil {
		t.Fatal(err)
	}
	if stop, err := start(ctx, ns, cfg+".missing"); err == nil {
		_ = stop()
		t.Error("start with a missing config succeeded")
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("start with a missing config: %v, want the exit to cancel ready", err)
	}
}

func TestIntegrationCapture(t *testing.T) {
	if _, err := exec.LookPath("dumpcap"); err != nil {
		t.Skip("skipping: dumpcap not installed")
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("skipping: tshark not installed")
	}
	dir := t.TempDir()
	l := upLab(t, Options{CaptureDir: dir})
	h1, h2 := Site1.A.HostAddr(), Site2.A.HostAddr()
	// Five packets with next header 140 (shim6, RFC 5533 §5) from h1 to h2,
	// one plain UDP packet that the filter must leave out.
	var pc net.PacketConn
	if err := inNS(l.NS(H1), func() error {
		var err error
		pc, err = net.ListenPacket("ip6:140", h1.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := 0; i < 5; i++ {
		msg := []byte{59, 0, 0x81, 0, 0, 0, 0, 0} // next header none, length 0, type 1 (I1)
		if _, err := pc.WriteTo(msg, &net.IPAddr{IP: h2.AsSlice()}); err != nil {
			t.Fatal(err)
		}
	}
	if got := probe(t, l, H1, h1, H2, h2, 1); got != 1 {
		t.Fatalf("udp probe: %d", got)
	}
	if err := l.Down(); err != nil { // flushes and closes the capture
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := run(ctx, nil, "tshark", "-r", filepath.Join(dir, "gw1.pcapng"), "-T", "fields", "-e", "ipv6.nxt")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(out)); len(got) != 5 || slices.ContainsFunc(got, func(s string) bool { return s != "140" }) {
		all, _ := run(ctx, nil, "tshark", "-r", filepath.Join(dir, "gw1.pcapng"))
		t.Errorf("gw1 capture holds next headers %q, want five 140:\n%s", got, all)
	}
	if _, err := os.Stat(filepath.Join(dir, "gw2.pcapng")); err != nil {
		t.Errorf("gw2 capture: %v", err)
	}
}

func TestIntegrationAdminGet(t *testing.T) {
	l := upLab(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A stand-in admin server listening inside gw2 only.
	var ln net.Listener
	if err := inNS(l.NS(GW2), func() error {
		var err error
		ln, err = net.Listen("tcp", AdminListen)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "gw2 %s", r.URL.Path)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	body, err := l.AdminGet(ctx, GW2, "/debug/contexts")
	if err != nil || string(body) != "gw2 /debug/contexts" {
		t.Errorf("AdminGet gw2: %q %v", body, err)
	}
	// gw1 has no admin server: the namespaces are really apart.
	if body, err := l.AdminGet(ctx, GW1, "/readyz"); err == nil {
		t.Errorf("AdminGet gw1 reached %q", body)
	}
}

func TestIntegrationDownDuringUp(t *testing.T) {
	skipUnlessRoot(t)
	l, err := New(Options{Prefix: "s6labdu"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down(); assertClean(t, "s6labdu") })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	upErr := make(chan error, 1)
	go func() { upErr <- l.Up(ctx) }()
	// As a Ctrl-C handler would: Down while Up runs, once Up has built
	// something (bounded poll).
	for i := 0; i < 1000 && len(namespaces("s6labdu")) == 0; i++ {
		time.Sleep(time.Millisecond)
	}
	if len(namespaces("s6labdu")) == 0 {
		t.Log("Up built nothing yet (slow machine); Down before it")
	}
	if err := l.Down(); err != nil {
		t.Logf("Down during Up: %v", err)
	}
	if err := <-upErr; err == nil {
		t.Error("Up succeeded although Down ran during it")
	}
	assertClean(t, "s6labdu")
	if err := l.Up(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Up after Down: %v, want ErrClosed", err)
	}
}

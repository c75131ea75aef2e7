package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/gateway/plumbing/plumbtest"
	"github.com/shim6gw/shim6gw/internal/nstest"
)

// fakeWatcher is an UplinkWatcher the test drives.
type fakeWatcher struct {
	events chan plumbing.UplinkEvent
	mu     sync.Mutex
	states []plumbing.UplinkStatus
	tunUp  bool
}

func (w *fakeWatcher) Run(ctx context.Context) error       { <-ctx.Done(); return nil }
func (w *fakeWatcher) Events() <-chan plumbing.UplinkEvent { return w.events }
func (w *fakeWatcher) UplinkStates() []plumbing.UplinkStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]plumbing.UplinkStatus(nil), w.states...)
}
func (w *fakeWatcher) LinkUp(string) bool { w.mu.Lock(); defer w.mu.Unlock(); return w.tunUp }

func (w *fakeWatcher) send(e plumbing.UplinkEvent) {
	w.mu.Lock()
	w.states = []plumbing.UplinkStatus{{Name: e.Uplink, Up: e.Up, Reason: e.Reason}}
	w.mu.Unlock()
	w.events <- e
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// daemonHarness starts RunDaemon over fakes.
type daemonHarness struct {
	ops      *plumbtest.Locked
	watcher  *fakeWatcher
	signals  chan os.Signal
	inputs   chan ControlInputs
	done     chan error
	base     string
	cfgPath  string
	state    string
	tunClose chan struct{}
	notes    chan string // what the daemon told the service manager
}

// daemonSetup varies startDaemonWith: gate, if set, holds the fake control
// loop back until closed; watchdog and heartbeat go to DaemonOptions and
// Hooks.
type daemonSetup struct {
	gate      chan struct{}
	watchdog  time.Duration
	heartbeat func() time.Time
	lan       func(*config.Config, *slog.Logger) (*LANServices, error)
}

func startDaemon(t *testing.T, text string, tunUp bool) *daemonHarness {
	t.Helper()
	return startDaemonWith(t, text, tunUp, daemonSetup{})
}

func startDaemonWith(t *testing.T, text string, tunUp bool, setup daemonSetup) *daemonHarness {
	t.Helper()
	path := writeConfig(t, text)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h := &daemonHarness{
		ops:      &plumbtest.Locked{F: plumbtest.New("lan0", "upA", "upB")},
		watcher:  &fakeWatcher{events: make(chan plumbing.UplinkEvent, 8), tunUp: tunUp},
		signals:  make(chan os.Signal, 1),
		inputs:   make(chan ControlInputs, 1),
		done:     make(chan error, 1),
		cfgPath:  path,
		state:    filepath.Join(t.TempDir(), "sysctl.json"),
		tunClose: make(chan struct{}),
		notes:    make(chan string, 64),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.base = "http://" + ln.Addr().String()
	hooks := Hooks{
		OpenTUN: func(c config.TUNConfig) (io.Closer, error) {
			h.ops.Do(func() { h.ops.F.Links[c.Name] = &plumbtest.Link{MTU: 1500} })
			return closerFunc(func() error {
				h.ops.Do(func() { delete(h.ops.F.Links, c.Name) })
				close(h.tunClose)
				return nil
			}), nil
		},
		Control: func(ctx context.Context, in ControlInputs) error {
			h.inputs <- in
			if setup.gate != nil {
				select {
				case <-setup.gate:
				case <-ctx.Done():
					return nil
				}
			}
			in.Running()
			<-ctx.Done()
			return nil
		},
		Heartbeat: setup.heartbeat,
		LAN:       setup.lan,
	}
	notify := func(state string) error {
		select {
		case h.notes <- state:
		default:
		}
		return nil
	}
	go func() {
		h.done <- RunDaemon(context.Background(), DaemonOptions{ConfigPath: path, Config: cfg, Ops: h.ops,
			Monitor: h.watcher, StateFile: h.state, Signals: h.signals, AdminListener: ln, Hooks: hooks,
			Notify: notify, Watchdog: setup.watchdog})
	}()
	return h
}

func (h *daemonHarness) rules(t *testing.T) []string {
	t.Helper()
	var out []string
	h.ops.Do(func() {
		for _, r := range h.ops.F.RuleSet {
			out = append(out, r.String())
		}
	})
	return out
}

func (h *daemonHarness) stop(t *testing.T) {
	t.Helper()
	h.signals <- syscall.SIGTERM
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("RunDaemon: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunDaemon did not return after SIGTERM")
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
	}
	var zero T
	return zero
}

func TestDaemonLifecycle(t *testing.T) {
	nstest.CheckNoLeaks(t)
	h := startDaemon(t, goodConfig, true)
	in := recv(t, h.inputs, "control start")
	if got := len(h.rules(t)); got != 7 {
		t.Errorf("%d rules while running, want 7", got)
	}
	if _, err := os.Stat(h.state); err != nil {
		t.Errorf("state file: %v", err)
	}
	// Not healthy before any uplink is up.
	if code, body := httpGet(t, h.base+"/healthz"); code != 503 || !strings.Contains(body, "FAIL uplinks") {
		t.Errorf("/healthz before uplinks = %d %q", code, body)
	}
	h.watcher.send(plumbing.UplinkEvent{Uplink: "a", Up: true, Reason: plumbing.ReasonUp})
	if e := recv(t, in.Uplinks, "uplink event"); e.Uplink != "a" || !e.Up {
		t.Errorf("control got %+v", e)
	}
	if code, _ := httpGet(t, h.base+"/healthz"); code != 200 {
		t.Errorf("/healthz with uplink a up = %d", code)
	}
	if code, body := httpGet(t, h.base+"/readyz"); code != 200 || body != "ok tun\nok uplinks\nok plumbing\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	h.ops.Do(func() { h.ops.F.RuleSet = h.ops.F.RuleSet[1:] })
	if code, body := httpGet(t, h.base+"/readyz"); code != 503 || !strings.Contains(body, "FAIL plumbing: gateway: plumbing missing: rule 15000:") {
		t.Errorf("/readyz after a rule vanished = %d %q", code, body)
	}

	// SIGHUP with a new provider prefix for uplink b (its LAN /64 still
	// inside): a reload reaches the control loop and the "from P_B" rule
	// follows.
	next := strings.Replace(goodConfig, "2001:db8:b::/48\n    lan_prefix: 2001:db8:b:1::/64",
		"2001:db8:b::/56\n    lan_prefix: 2001:db8:b:1::/64", 1)
	if err := os.WriteFile(h.cfgPath, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	h.signals <- syscall.SIGHUP
	r := recv(t, in.Reloads, "reload")
	if !r.Plan.PrefixesChanged || r.Config.Uplinks[1].Prefix.String() != "2001:db8:b::/56" {
		t.Errorf("reload = %+v", r.Plan)
	}
	rules := strings.Join(h.rules(t), "\n")
	if !strings.Contains(rules, "from 2001:db8:b::/56 iif shim6gw0 lookup 15003") || strings.Contains(rules, "2001:db8:b::/48") {
		t.Errorf("rules after reload:\n%s", rules)
	}

	// A broken file is rejected and counted; nothing reaches the control loop.
	if err := os.WriteFile(h.cfgPath, []byte(next+"bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.signals <- syscall.SIGHUP
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := httpGet(t, h.base+"/metrics")
		if strings.Contains(body, `shim6gw_config_reloads_total{result="failure"} 1`) {
			if !strings.Contains(body, `shim6gw_config_reloads_total{result="success"} 1`) {
				t.Error("success counter wrong")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("failed reload not counted within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-in.Reloads:
		t.Errorf("bad config delivered: %+v", r)
	default:
	}

	h.stop(t)
	if got := h.rules(t); len(got) != 0 {
		t.Errorf("rules after SIGTERM: %v", got)
	}
	h.ops.Do(func() {
		if len(h.ops.F.RouteSet) != 0 || h.ops.F.Sysctls[plumbing.SysctlForwarding] != "0" {
			t.Errorf("after SIGTERM: routes %v forwarding %s", h.ops.F.RouteSet, h.ops.F.Sysctls[plumbing.SysctlForwarding])
		}
		if _, ok := h.ops.F.Links["shim6gw0"]; ok {
			t.Error("tun still open")
		}
	})
	if _, err := os.Stat(h.state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after clean stop: %v", err)
	}
}

func TestDaemonMissingInterfaceChangesNothing(t *testing.T) {
	path := writeConfig(t, goodConfig)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f := plumbtest.New("upA", "upB") // lan0 missing
	opened := false
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = RunDaemon(context.Background(), DaemonOptions{Config: cfg, Ops: f, Monitor: &fakeWatcher{}, AdminListener: ln,
		Hooks: Hooks{
			OpenTUN: func(config.TUNConfig) (io.Closer, error) { opened = true; return nil, errors.New("unreachable") },
			Control: func(context.Context, ControlInputs) error { return nil },
		}})
	want := `config: line 2: lan.interface: no interface "lan0" on this system`
	if err == nil || err.Error() != want || ExitCode(err) != 2 {
		t.Fatalf("err = %v (exit %d), want %s", err, ExitCode(err), want)
	}
	if len(f.Ops) != 0 || opened {
		t.Errorf("changed the system: %v, tun opened %v", f.Ops, opened)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("admin listener left open: Accept err = %v", err)
	}
}

func TestDaemonControlErrorStops(t *testing.T) {
	path := writeConfig(t, goodConfig)
	cfg, _ := config.Load(path)
	ops := &plumbtest.Locked{F: plumbtest.New("lan0", "upA", "upB")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("engine exploded")
	err = RunDaemon(context.Background(), DaemonOptions{Config: cfg, Ops: ops, AdminListener: ln,
		Monitor: &fakeWatcher{events: make(chan plumbing.UplinkEvent)}, StateFile: filepath.Join(t.TempDir(), "s"),
		Signals: make(chan os.Signal),
		Hooks: Hooks{
			OpenTUN: func(c config.TUNConfig) (io.Closer, error) {
				ops.Do(func() { ops.F.Links[c.Name] = &plumbtest.Link{} })
				return closerFunc(func() error { return nil }), nil
			},
			Control: func(context.Context, ControlInputs) error { return boom },
		}})
	if !errors.Is(err, boom) || ExitCode(err) != 1 {
		t.Fatalf("err = %v", err)
	}
	// A control loop that returns nil early is an error too.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = RunDaemon(context.Background(), DaemonOptions{Config: cfg, Ops: ops, AdminListener: ln2,
		Monitor: &fakeWatcher{events: make(chan plumbing.UplinkEvent)}, StateFile: filepath.Join(t.TempDir(), "s"),
		Signals: make(chan os.Signal),
		Hooks: Hooks{
			OpenTUN: func(c config.TUNConfig) (io.Closer, error) { return closerFunc(func() error { return nil }), nil },
			Control: func(context.Context, ControlInputs) error { return nil },
		}})
	if err == nil || !strings.Contains(err.Error(), "control loop ended") {
		t.Fatalf("early nil return: err = %v", err)
	}
	ops.Do(func() {
		if len(ops.F.RuleSet) != 0 || len(ops.F.RouteSet) != 0 {
			t.Errorf("left behind: %v %v", ops.F.RuleSet, ops.F.RouteSet)
		}
	})
}

// TestDaemonNotifiesReadyAfterControlLoop: READY=1 goes out only once the
// admin listener answers and the control loop serves; the watchdog is fed
// while the control loop goes round; STOPPING=1 ends the run.
func TestDaemonNotifiesReadyAfterControlLoop(t *testing.T) {
	nstest.CheckNoLeaks(t)
	gate := make(chan struct{})
	var stalled atomic.Bool
	h := startDaemonWith(t, goodConfig, true, daemonSetup{gate: gate, watchdog: 40 * time.Millisecond,
		heartbeat: func() time.Time {
			if stalled.Load() {
				return time.Now().Add(-time.Minute)
			}
			return time.Now()
		}})
	recv(t, h.inputs, "control inputs")
	// The admin listener already answers, the control loop does not serve.
	if code, _ := httpGet(t, h.base+"/healthz"); code == 0 {
		t.Fatal("no admin answer")
	}
	select {
	case n := <-h.notes:
		t.Fatalf("%q before the control loop ran", n)
	case <-time.After(100 * time.Millisecond):
	}
	h.signals <- syscall.SIGHUP // ignored until the gateway runs
	close(gate)
	if n := recv(t, h.notes, "READY"); n != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", n)
	}
	if n := recv(t, h.notes, "watchdog"); n != "WATCHDOG=1" {
		t.Fatalf("then %q, want WATCHDOG=1", n)
	}
	// A control loop that stops going round starves the watchdog.
	stalled.Store(true)
	time.Sleep(60 * time.Millisecond)
	for len(h.notes) > 0 {
		<-h.notes
	}
	select {
	case n := <-h.notes:
		t.Fatalf("%q while the control loop stalled", n)
	case <-time.After(150 * time.Millisecond):
	}
	h.stop(t)
	if n := recv(t, h.notes, "STOPPING"); n != "STOPPING=1" {
		t.Fatalf("at stop %q, want STOPPING=1", n)
	}
}

// TestDaemonStopsBeforeRunning: SIGTERM while the control loop is still
// starting stops the daemon cleanly, without READY=1.
func TestDaemonStopsBeforeRunning(t *testing.T) {
	nstest.CheckNoLeaks(t)
	gate := make(chan struct{})
	defer close(gate)
	h := startDaemonWith(t, goodConfig, true, daemonSetup{gate: gate})
	recv(t, h.inputs, "control inputs")
	h.stop(t)
	if n := recv(t, h.notes, "STOPPING"); n != "STOPPING=1" {
		t.Fatalf("notification %q, want only STOPPING=1", n)
	}
	if got := h.rules(t); len(got) != 0 {
		t.Errorf("rules left: %v", got)
	}
}

// TestDaemonNotifiesReload: a SIGHUP reload is framed by RELOADING=1 and
// READY=1, whether the new configuration is taken or rejected.
func TestDaemonNotifiesReload(t *testing.T) {
	h := startDaemon(t, goodConfig, true)
	recv(t, h.inputs, "control inputs")
	if n := recv(t, h.notes, "READY"); n != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", n)
	}
	for _, text := range []string{goodConfig, "not: [valid"} {
		if err := os.WriteFile(h.cfgPath, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		h.signals <- syscall.SIGHUP
		for _, want := range []string{"RELOADING=1", "READY=1"} {
			if n := recv(t, h.notes, want); n != want {
				t.Fatalf("after SIGHUP %q, want %s", n, want)
			}
		}
	}
	h.stop(t)
}

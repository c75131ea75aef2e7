package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
)

// reexecEnv makes the test binary act as shim6gw, so tests run the real
// command as a separate process (its own pid, its own exit status).
const reexecEnv = "SHIM6GW_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(reexecEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// testNS creates network namespace name with lo up and the veth pairs
// named, up; it kills every process left in it and deletes it at cleanup.
func testNS(t *testing.T, name string, veths ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (CI runs as root)")
	}
	_ = exec.Command("ip", "netns", "del", name).Run() // left by an interrupted run
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v %s", name, err, out)
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	for _, v := range veths {
		ip(t, "-n", name, "link", "add", v, "type", "veth", "peer", "name", v+"p")
		ip(t, "-n", name, "link", "set", v, "up")
		ip(t, "-n", name, "link", "set", v+"p", "up")
	}
}

func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// asShim6gw returns this test binary running as `shim6gw args...` inside ns.
func asShim6gw(ns string, args ...string) *exec.Cmd {
	c := exec.Command("ip", append([]string{"netns", "exec", ns, os.Args[0]}, args...)...)
	c.Env = append(os.Environ(), reexecEnv+"=1")
	return c
}

// startGateway starts `shim6gw run` in ns and stops it (SIGTERM, then
// SIGKILL) at cleanup unless the test waited for it.
func startGateway(t *testing.T, ns string, args ...string) (*exec.Cmd, *syncBuffer, <-chan error) {
	t.Helper()
	var log syncBuffer
	c := asShim6gw(ns, append([]string{"run"}, args...)...)
	c.Stdout, c.Stderr = &log, &log
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- c.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = c.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
		}
	})
	return c, &log, done
}

// waitReady polls `shim6gw health` in ns (at most 20 s).
func waitReady(t *testing.T, ns, cfg string, log *syncBuffer, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := asShim6gw(ns, "health", "--config", cfg, "--timeout", "1s").CombinedOutput()
		if err == nil {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("gateway exited at start: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 20s: %s\n%s", out, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const netnsGatewayConfig = `lan:
  interface: s6lan
uplinks:
  - name: a
    interface: s6upa
    prefix: 2001:db8:a::/48
    lan_prefix: 2001:db8:a:1::/64
    gateway: fe80::1
  - name: b
    interface: s6upb
    prefix: 2001:db8:b::/48
    lan_prefix: 2001:db8:b:1::/64
    gateway: fe80::1
hba:
  secret_file: secret
  hosts: 4
tun:
  name: s6ops0
log:
  format: text
`

// kernelState is what a gateway owns in its namespace, as text.
func kernelState(t *testing.T, ns, stateFile string) string {
	t.Helper()
	sysctl, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv6/conf/all/forwarding").Output()
	if err != nil {
		t.Fatal(err)
	}
	state, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	return "rules:\n" + ip(t, "-n", ns, "-6", "rule", "show", "proto", "154") +
		"routes:\n" + ip(t, "-n", ns, "-6", "route", "show", "table", "all", "proto", "154") +
		"forwarding: " + string(sysctl) + "state: " + string(state) + "\n" +
		"fast path:\n" + tcxPrograms(t, ns).String()
}

// gatewayNS is a namespace with a LAN and two uplinks (a live: carrier
// and address; b without address) and the configuration for them, with
// dataplane.fastpath fp.
func gatewayNS(t *testing.T, ns, fp string) (cfg string) {
	t.Helper()
	testNS(t, ns, gatewayIfaces...)
	ip(t, "-n", ns, "addr", "add", "2001:db8:a:ffff::2/64", "dev", "s6upa", "nodad")
	ip(t, "-n", ns, "addr", "add", "2001:db8:a:1::1/64", "dev", "s6lan", "nodad")
	return writeCheckConfig(t, netnsGatewayConfig+"dataplane:\n  fastpath: "+fp+"\n")
}

// gatewayIfaces are the LAN and uplink interfaces of gatewayNS.
var gatewayIfaces = []string{"s6lan", "s6upa", "s6upb"}

// TestSecondInstanceChangesNothing: a second `shim6gw run` with the same
// TUN in the same namespace exits 1 naming the running one's pid, and the
// first keeps its rules, routes, forwarding, state file and fast-path
// programs (crash recovery would detach them), and stays ready; after
// SIGTERM no fast-path program is left attached.
func TestSecondInstanceChangesNothing(t *testing.T) {
	forEachFastpath(t, testSecondInstanceChangesNothing)
}

func testSecondInstanceChangesNothing(t *testing.T, fp string) {
	const ns = "s6ops-second"
	cfg := gatewayNS(t, ns, fp)
	state := filepath.Join(t.TempDir(), "sysctl.json")
	started := time.Now()
	first, log, done := startGateway(t, ns, "--config", cfg, "--state-file", state)
	waitReady(t, ns, cfg, log, done)
	t.Logf("first instance ready after %v", time.Since(started))
	before := kernelState(t, ns, state)
	if !strings.Contains(before, "forwarding: 1\n") || strings.Count(before, "proto 154") != 7 || strings.Count(before, " table 150") != 7 {
		t.Fatalf("first instance's state:\n%s", before)
	}
	checkTCX(t, ns, fp, "first instance")

	second := asShim6gw(ns, "run", "--config", cfg, "--state-file", state)
	var errb bytes.Buffer
	second.Stderr = &errb
	t0 := time.Now()
	err := second.Run()
	t.Logf("second instance exited after %v", time.Since(t0))
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second instance: %v, want exit status 1; stderr %s", err, errb.String())
	}
	// The start line, then the error; nothing of crash recovery between.
	want := fmt.Sprintf("another instance is running (pid %d)", first.Process.Pid)
	lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `msg="shim6gw starting"`) || !strings.Contains(lines[1], want) {
		t.Errorf("second instance stderr %q, want the start line and one line with %q", errb.String(), want)
	}
	if after := kernelState(t, ns, state); after != before {
		t.Errorf("second instance changed the first's state:\nbefore\n%s\nafter\n%s", before, after)
	}
	waitReady(t, ns, cfg, log, done)

	stopAt := time.Now()
	_ = first.Process.Signal(syscall.SIGTERM)
	defer func() { t.Logf("first instance stopped %v after SIGTERM", time.Since(stopAt)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("first instance: %v\n%s", err, log.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("first instance did not stop on SIGTERM")
	}
	checkTCX(t, ns, config.FastpathOff, "after SIGTERM")
}

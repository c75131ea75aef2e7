package main

import (
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/fastpath"
	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/internal/nsrun"
	"github.com/shim6gw/shim6gw/internal/nstest"
)

// forEachFastpath runs f as subtest "fastpath-<mode>" with the kernel
// fast path required (ebpf: the daemon fails if it cannot attach) and
// off.
func forEachFastpath(t *testing.T, f func(t *testing.T, fp string)) {
	t.Helper()
	for _, fp := range []string{config.FastpathEBPF, config.FastpathOff} {
		t.Run("fastpath-"+fp, func(t *testing.T) { f(t, fp) })
	}
}

// tcxState is what hangs at TCX ingress of each of gatewayIfaces.
type tcxState map[string][]nstest.TCXProgram

// ours counts the programs named fastpath.ProgramName on iface.
func (s tcxState) ours(iface string) int {
	n := 0
	for _, p := range s[iface] {
		// The kernel keeps 15 bytes of the name.
		if p.Name != "" && strings.HasPrefix(fastpath.ProgramName, p.Name) {
			n++
		}
	}
	return n
}

func (s tcxState) String() string {
	var b strings.Builder
	for _, iface := range gatewayIfaces {
		fmt.Fprintf(&b, "%s:", iface)
		for _, p := range s[iface] {
			fmt.Fprintf(&b, " %s(prog %d, link %d)", p.Name, p.Prog, p.Link)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// tcxPrograms lists the programs at TCX ingress of gatewayIfaces in ns.
func tcxPrograms(t *testing.T, ns string) tcxState {
	t.Helper()
	s, err := nstest.TCXIngress(ns, gatewayIfaces)
	if err != nil {
		t.Fatalf("%s: tcx programs: %v", ns, err)
	}
	return s
}

// checkTCX checks that each interface of ns holds one fast-path program
// with ebpf and none otherwise, and returns what it found.
func checkTCX(t *testing.T, ns, fp, what string) tcxState {
	t.Helper()
	want := 0
	if fp == config.FastpathEBPF {
		want = 1
	}
	s := tcxPrograms(t, ns)
	for _, iface := range gatewayIfaces {
		if n := s.ours(iface); n != want {
			t.Errorf("%s: %d fast-path programs on %s, want %d:\n%s", what, n, iface, want, s)
		}
	}
	return s
}

// plantFastpath attaches the fast-path program to gatewayIfaces in ns
// from this process, as a holder that outlived a crashed daemon would
// keep it, and closes it at cleanup.
func plantFastpath(t *testing.T, ns string) {
	t.Helper()
	err := nsrun.InNamed(ns, func() error {
		p, err := fastpath.Load(fastpath.Options{})
		if err != nil {
			return err
		}
		t.Cleanup(func() { p.Close() })
		_, err = p.Attach(gatewayIfaces[0], gatewayIfaces[1:])
		return err
	})
	if err != nil {
		t.Fatalf("plant fast-path programs in %s: %v", ns, err)
	}
}

// TestCrashRecoveryRemovesFastpath: a `shim6gw run` with the fast path
// killed with SIGKILL leaves no program attached (its bpf_links die with
// the process). Programs of ours that another holder kept attached are
// removed by the next start's crash recovery, whatever that start's mode,
// and its SIGTERM leaves nothing attached.
func TestCrashRecoveryRemovesFastpath(t *testing.T) {
	forEachFastpath(t, func(t *testing.T, next string) {
		const ns = "s6ops-fpcrash"
		cfg := gatewayNS(t, ns, config.FastpathEBPF)
		state := t.TempDir() + "/sysctl.json"
		first, log, done := startGateway(t, ns, "--config", cfg, "--state-file", state)
		waitReady(t, ns, cfg, log, done)
		checkTCX(t, ns, config.FastpathEBPF, "first instance")
		if err := first.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("first instance still running 10 s after SIGKILL")
		}
		// The kernel releases the links as it closes the dead process's
		// files: bounded poll.
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			s := tcxPrograms(t, ns)
			if s.ours("s6lan")+s.ours("s6upa")+s.ours("s6upb") == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("fast-path programs still attached 2 s after SIGKILL:\n%s", s)
			}
		}

		plantFastpath(t, ns)
		planted := checkTCX(t, ns, config.FastpathEBPF, "planted")
		cfg2 := writeCheckConfig(t, netnsGatewayConfig+"dataplane:\n  fastpath: "+next+"\n")
		second, log2, done2 := startGateway(t, ns, "--config", cfg2, "--state-file", state)
		waitReady(t, ns, cfg2, log2, done2)
		if !regexp.MustCompile(`msg="removed fast-path programs of a previous run" programs=3\b`).MatchString(log2.String()) {
			t.Errorf("second instance did not log removing the 3 left programs:\n%s", log2.String())
		}
		s := checkTCX(t, ns, next, "second instance")
		for _, iface := range gatewayIfaces {
			for _, p := range s[iface] {
				for _, q := range planted[iface] {
					if p.Link == q.Link {
						t.Errorf("%s: the planted link %d is still attached", iface, q.Link)
					}
				}
			}
		}
		_ = second.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done2:
			if err != nil {
				t.Errorf("second instance: %v\n%s", err, log2.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("second instance did not stop on SIGTERM")
		}
		checkTCX(t, ns, config.FastpathOff, "after SIGTERM")
	})
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/gateway/plumbing/plumbtest"
)

func TestLockExcludesSecondHolderAndNamesPid(t *testing.T) {
	path := LockPath(t.TempDir(), "tun0")
	first, err := AcquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(path)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("(pid %d)", os.Getpid())) {
		t.Fatalf("second lock: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := AcquireLock(path)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Release()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("lock file removed: %v", err)
	}
}

// TestRunDaemonLockedChangesNothing: a daemon that finds the lock taken
// fails before crash recovery: no rule, route or sysctl is touched and the
// running instance's state file stays.
func TestRunDaemonLockedChangesNothing(t *testing.T) {
	path := writeConfig(t, goodConfig)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "sysctl.json")
	if err := os.WriteFile(state, []byte(`[{"key":"net/ipv6/conf/all/forwarding","old":"0"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	held, err := AcquireLock(LockPath(dir, cfg.TUN.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	f := plumbtest.New("lan0", "upA", "upB")
	f.RuleSet = []plumbing.Rule{{Priority: cfg.Rules.PriorityBase, Table: 1, Protocol: cfg.Rules.Protocol}}
	f.Sysctls[plumbing.SysctlForwarding] = "1"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = RunDaemon(context.Background(), DaemonOptions{Config: cfg, Ops: &plumbtest.Locked{F: f}, StateFile: state,
		AdminListener: ln, Monitor: &fakeWatcher{}, Hooks: Hooks{
			OpenTUN: func(config.TUNConfig) (io.Closer, error) { t.Error("TUN opened"); return nil, errors.New("no") },
			Control: func(context.Context, ControlInputs) error { return nil }}})
	if !errors.Is(err, ErrLocked) || ExitCode(err) != 1 {
		t.Fatalf("RunDaemon = %v (exit %d), want ErrLocked, exit 1", err, ExitCode(err))
	}
	if len(f.Ops) != 0 || len(f.RuleSet) != 1 || f.Sysctls[plumbing.SysctlForwarding] != "1" {
		t.Errorf("changed: ops %q rules %v forwarding %s", f.Ops, f.RuleSet, f.Sysctls[plumbing.SysctlForwarding])
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("state file: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("admin listener left open")
	}
}

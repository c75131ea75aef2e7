package gateway

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/shim6gw/shim6gw/internal/nsrun"
	"github.com/shim6gw/shim6gw/internal/nstest"
)

// TestAutoFastpathStaysOffBesideForwardFilters: in auto mode the fast
// path is not attached while netfilter filters forwarded IPv6 packets (it
// would bypass the filter), and is once the filter is gone; empty chains
// and IPv4-only tables do not count; ebpf mode attaches anyway.
func TestAutoFastpathStaysOffBesideForwardFilters(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed")
	}
	name := fmt.Sprintf("fp-nf-%d", os.Getpid())
	ns, h := nstest.NewNS(t, name)
	nstest.AddTUN(t, ns, h, "fptun0")
	nstest.AddVeth(t, h, "fplan0", "fplan1")
	nstest.AddVeth(t, h, "fpup0", "fpup1")
	nft := func(script string) {
		t.Helper()
		cmd := exec.Command("ip", "netns", "exec", name, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v: %s", err, out)
		}
	}
	start := func(mode string) (attached bool, log string) {
		t.Helper()
		var buf bytes.Buffer
		var f *Fastpath
		err := nsrun.In(ns, func() error {
			var err error
			f, err = StartFastpath(FastpathOptions{Mode: mode, LAN: "fplan0", Uplinks: []string{"fpup0"}, TUN: "fptun0",
				Log: slog.New(slog.NewTextHandler(&buf, nil))})
			return err
		})
		if err != nil {
			t.Fatalf("start %s: %v", mode, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return f != nil, buf.String()
	}
	for _, tt := range []struct {
		name, script string
		want         bool // attached in auto mode
	}{
		{"no tables", "", true},
		{"empty forward chain", "table inet f { chain filt { type filter hook forward priority 0; }; }\n", true},
		{"ipv4-only forward rule", "table ip f4 { chain filt { type filter hook forward priority 0; tcp dport 22 drop; }; }\n", true},
		{"inet forward rule", "table inet f { chain filt { type filter hook forward priority 0; tcp dport 22 drop; }; }\n", false},
		{"ip6 prerouting drop policy", "flush ruleset\ntable ip6 f6 { chain prefilt { type filter hook prerouting priority 0; policy drop; }; }\n", false},
		{"filters removed", "flush ruleset\n", true},
	} {
		if tt.script != "" {
			nft(tt.script)
		}
		attached, log := start(FastpathAuto)
		if attached != tt.want {
			t.Errorf("%s: auto attached %v, want %v; log:\n%s", tt.name, attached, tt.want, log)
		}
		if !tt.want && !strings.Contains(log, "netfilter") {
			t.Errorf("%s: no log line says why: %s", tt.name, log)
		}
	}
	nft("table inet f { chain filt { type filter hook forward priority 0; tcp dport 22 drop; }; }\n")
	if attached, log := start(FastpathEBPF); !attached || !strings.Contains(log, "bypasses netfilter") {
		t.Errorf("ebpf beside a filter: attached %v, log %s", attached, log)
	}

	// A filter that appears after the start detaches the program at the
	// watcher's next look.
	nft("flush ruleset\n")
	var buf bytes.Buffer
	var f *Fastpath
	err := nsrun.In(ns, func() error {
		var err error
		f, err = StartFastpath(FastpathOptions{Mode: FastpathAuto, LAN: "fplan0", Uplinks: []string{"fpup0"}, TUN: "fptun0",
			Log: slog.New(slog.NewTextHandler(&buf, nil))})
		return err
	})
	if err != nil || f == nil {
		t.Fatalf("start auto: %v", err)
	}
	defer f.Close()
	attachedNow := func() int {
		t.Helper()
		progs, err := nstest.TCXIngress(name, []string{"fplan0", "fpup0"})
		if err != nil {
			t.Fatal(err)
		}
		return len(progs["fplan0"]) + len(progs["fpup0"])
	}
	f.recheckFilters()
	if n := attachedNow(); n != 2 {
		t.Fatalf("without filters, %d programs attached after a recheck, want 2", n)
	}
	nft("table ip6 f6 { chain filt { type filter hook forward priority 0; udp dport 53 drop; }; }\n")
	f.recheckFilters()
	if n := attachedNow(); n != 0 || !strings.Contains(buf.String(), "kernel fast path detached") {
		t.Errorf("a forward filter added after the start: %d programs still attached; log:\n%s", n, buf.String())
	}
}

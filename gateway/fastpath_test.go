package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shim6gw/shim6gw/fastpath"
	"github.com/shim6gw/shim6gw/internal/nsrun"
	"github.com/shim6gw/shim6gw/internal/nstest"
	"github.com/shim6gw/shim6gw/rewrite"
)

// TestStartFastpathModes checks what each dataplane.fastpath value does
// when the fast path cannot run (no such TUN): auto falls back to the TUN
// path with one log line, ebpf fails, off stays silent, and a nil
// Fastpath is a working no-op.
func TestStartFastpathModes(t *testing.T) {
	for _, tt := range []struct {
		mode    string
		wantErr bool
		wantLog string
	}{
		{mode: "", wantLog: "kernel fast path unavailable"},
		{mode: FastpathAuto, wantLog: "kernel fast path unavailable"},
		{mode: FastpathEBPF, wantErr: true},
		{mode: FastpathOff},
		{mode: "xdp", wantErr: true},
	} {
		var buf bytes.Buffer
		f, err := StartFastpath(FastpathOptions{Mode: tt.mode, LAN: "fp-none-lan0", Uplinks: []string{"fp-none-up0"},
			TUN: "fp-none-tun0", Log: slog.New(slog.NewTextHandler(&buf, nil))})
		if (err != nil) != tt.wantErr || f != nil {
			t.Errorf("mode %q: fastpath %v err %v, want nil and error %v", tt.mode, f, err, tt.wantErr)
		}
		lines := strings.Count(buf.String(), "\n")
		if tt.wantLog != "" && (lines != 1 || !strings.Contains(buf.String(), tt.wantLog)) {
			t.Errorf("mode %q: log %q, want one line with %q", tt.mode, buf.String(), tt.wantLog)
		}
		if tt.wantLog == "" && lines != 0 {
			t.Errorf("mode %q: unexpected log %q", tt.mode, buf.String())
		}
		f.Publish(rewrite.Config{}, nil)
		f.Harvest(1)
		if err := f.Close(); err != nil {
			t.Errorf("mode %q: close of nil fast path: %v", tt.mode, err)
		}
	}
}

// TestFastpathHookInNamespace starts the fast path on a LAN veth and an
// uplink veth in a namespace, publishes a table, reads the metrics and
// checks that Close leaves no program attached.
func TestFastpathHookInNamespace(t *testing.T) {
	ns, h := nstest.NewNS(t, fmt.Sprintf("fp-gw-%d", os.Getpid()))
	nstest.AddTUN(t, ns, h, "fptun0")
	nstest.AddVeth(t, h, "fplan0", "fplan1")
	nstest.AddVeth(t, h, "fpup0", "fpup1")
	var f *Fastpath
	err := nsrun.In(ns, func() error {
		var err error
		f, err = StartFastpath(FastpathOptions{Mode: FastpathEBPF, LAN: "fplan0", Uplinks: []string{"fpup0"}, TUN: "fptun0",
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		return err
	})
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("kernel without TCX: %v", err)
	}
	if err != nil || f == nil {
		t.Fatalf("start: %v", err)
	}
	cfg := rewrite.Config{
		SitePrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64")},
		Contexts: []rewrite.ContextConfig{{
			LocalULID: netip.MustParseAddr("2001:db8:a:1::10"), PeerULID: netip.MustParseAddr("2001:db8:c:1::20"),
			LocalTag: 1, PeerTag: 2,
			LocalLocator: netip.MustParseAddr("2001:db8:b:1::10"), PeerLocator: netip.MustParseAddr("2001:db8:d:1::20"),
		}},
	}
	tab, err := rewrite.NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.Publish(cfg, tab)
	if nt, np := f.prog.Maps().Len(); nt != 1 || np != 1 {
		t.Errorf("maps hold %d tags %d pairs after publish, want 1 1", nt, np)
	}
	// A SLAAC-translated ULID's context stays on the TUN path.
	f.ExcludeLocal(func(a netip.Addr) bool { return a == cfg.Contexts[0].LocalULID })
	f.Publish(cfg, tab)
	if nt, np := f.prog.Maps().Len(); nt != 0 || np != 0 {
		t.Errorf("maps hold %d tags %d pairs with the context excluded, want 0 0", nt, np)
	}
	f.Harvest(1)
	if n := testutil.CollectAndCount(f, "shim6gw_fastpath_packets_total"); n != int(fastpath.NumVerdicts) {
		t.Errorf("%d packet series, want one per verdict (%d)", n, fastpath.NumVerdicts)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	err = nsrun.In(ns, func() error {
		n, err := fastpath.Cleanup([]string{"fplan0", "fpup0"})
		if err == nil && n != 0 {
			err = fmt.Errorf("%d programs left attached after Close", n)
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
}

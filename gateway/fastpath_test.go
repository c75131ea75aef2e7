package gateway

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

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

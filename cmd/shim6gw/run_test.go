package main

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/tunnel"
)

// The daemon itself needs root and a TUN device (gateway and lab tests
// cover it); these check the command line in front of it.
func TestRunCommandLine(t *testing.T) {
	bad := writeCheckConfig(t, strings.Replace(checkConfig, "  hosts: 4", "  hosts: 0", 1))
	tests := []struct {
		name   string
		args   []string
		status int
		want   string // stderr prefix
	}{
		{"no config", []string{"run"}, 2, "shim6gw: run: no configuration file /etc/shim6gw/shim6gw.yaml (give one with -c FILE)\n"},
		{"-c", []string{"run", "-c", bad}, 2, "shim6gw: run: config: line 14: hba.hosts"},
		{"bad flag", []string{"run", "--frob"}, 2, "shim6gw: run: flag provided but not defined: -frob\n"},
		{"bad config", []string{"run", "--config", bad}, 2, "shim6gw: run: config: line 14: hba.hosts"},
		{"missing file", []string{"run", "--config", filepath.Join(t.TempDir(), "none.yaml")}, 2, "shim6gw: run: config: open "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, status := runCmd(t, tc.args...)
			if tc.status != 0 && status != tc.status || status == 0 || out != "" {
				t.Fatalf("status %d, stdout %q, stderr %q", status, out, errs)
			}
			if !strings.HasPrefix(errs, tc.want) || strings.Count(errs, "\n") != 1 {
				t.Errorf("stderr %q, want one line starting %q", errs, tc.want)
			}
		})
	}
	if out, _, status := runCmd(t, "run", "-h"); status != 0 || !strings.Contains(out, "-capture") || !strings.Contains(out, "-log-format") ||
		!strings.Contains(out, "-state-file") {
		t.Errorf("run -h: %d %q", status, out)
	}
}

func TestGlobalAddr(t *testing.T) {
	if a := globalAddr("shim6gw-no-such-if"); a.IsValid() {
		t.Errorf("missing interface gave %v", a)
	}
	// Loopback has ::1 at most, which is not global.
	if a := globalAddr("lo"); a.IsValid() {
		t.Errorf("lo gave %v", a)
	}
}

// TestOpenTUNBackends: each backend name reaches its tunnel constructor
// (an MTU below 1280 is refused by OpenOffload before it opens anything;
// the default, "", is offload).
func TestOpenTUNBackends(t *testing.T) {
	for _, b := range []string{"offload", ""} {
		if _, err := openTUN(config.TUNConfig{Name: "s6dx", Backend: b, MTU: 100}); !errors.Is(err, tunnel.ErrBadConfig) {
			t.Errorf("backend %q: %v, want tunnel.ErrBadConfig from OpenOffload", b, err)
		}
	}
	if _, err := openTUN(config.TUNConfig{Name: "s6dx", Backend: "tap", MTU: 1500}); err == nil || err.Error() != `unknown tun backend "tap"` {
		t.Errorf("backend tap: %v", err)
	}
}

// TestRunFatalJSON: with --log-format json the error that stops run is one
// JSON log line.
func TestRunFatalJSON(t *testing.T) {
	bad := writeCheckConfig(t, strings.Replace(checkConfig, "  hosts: 4", "  hosts: 0", 1))
	out, errs, status := runCmd(t, "run", "--log-format", "json", "-c", bad)
	if status != 2 || out != "" || strings.Count(errs, "\n") != 1 {
		t.Fatalf("status %d, stdout %q, stderr %q", status, out, errs)
	}
	var line struct {
		Level, Msg, Err string
		ExitStatus      int `json:"exit_status"`
	}
	if err := json.Unmarshal([]byte(errs), &line); err != nil {
		t.Fatalf("stderr is not JSON: %v: %q", err, errs)
	}
	if line.Level != "ERROR" || line.ExitStatus != 2 || !strings.HasPrefix(line.Err, "config: line 14: hba.hosts") {
		t.Errorf("log line %+v", line)
	}
}

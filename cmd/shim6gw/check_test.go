package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkConfig is a complete configuration; tests edit single lines.
const checkConfig = `lan:
  interface: lan0
uplinks:
  - name: a
    interface: upA
    prefix: 2001:db8:a::/48
    lan_prefix: 2001:db8:a:1::/64
  - name: b
    interface: upB
    prefix: 2001:db8:b::/48
    lan_prefix: 2001:db8:b:1::/64
hba:
  secret_file: secret
  hosts: 4
`

func writeCheckConfig(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		status int
		want   []string // substrings of the one stderr line
	}{
		{"bad prefix", strings.Replace(checkConfig, "2001:db8:b::/48", "2001:db8:zz::/48", 1), 2,
			[]string{"shim6gw: check: config: line 10: uplinks[1].prefix"}},
		{"unknown key", strings.Replace(checkConfig, "  hosts: 4", "  hosts: 4\n  colour: blue", 1), 2,
			[]string{"shim6gw: check: config: line 15:", "hba.colour"}},
		// Valid file, but the LAN interface does not exist here (netlink).
		{"missing lan", strings.ReplaceAll(checkConfig, "interface: lan0", "interface: shim6gwnone"), 2,
			[]string{"shim6gw: check: config: line 2: lan.interface: no interface \"shim6gwnone\""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, status := runCmd(t, "check", "--config", writeCheckConfig(t, tc.text))
			if status != tc.status || out != "" {
				t.Fatalf("status %d, stdout %q, stderr %q; want %d", status, out, errs, tc.status)
			}
			if strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, "\n") {
				t.Errorf("stderr is not one line: %q", errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q lacks %q", errs, w)
				}
			}
		})
	}
}

func TestCheckOK(t *testing.T) {
	// check only reads: point the configuration at three interfaces this
	// machine has.
	ifs, err := net.Interfaces()
	if err != nil || len(ifs) < 3 {
		t.Skipf("need three network interfaces, have %d (%v)", len(ifs), err)
	}
	text := strings.Replace(checkConfig, "interface: lan0", "interface: "+ifs[0].Name, 1)
	text = strings.Replace(text, "interface: upA", "interface: "+ifs[1].Name, 1)
	text = strings.Replace(text, "interface: upB", "interface: "+ifs[2].Name, 1)
	path := writeCheckConfig(t, text)
	out, errs, status := runCmd(t, "check", "--config", path)
	if status != 0 || errs != "" || out != path+": ok (2 uplinks, 4 hosts, tun shim6gw0)\n" {
		t.Fatalf("status %d, stdout %q, stderr %q", status, out, errs)
	}
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{{"check"}, {"check", "--bogus"}, {"check", "--config", "x", "extra"}} {
		out, errs, status := runCmd(t, args...)
		if status != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "shim6gw: check: ") {
			t.Errorf("%q: status %d, stdout %q, stderr %q", args, status, out, errs)
		}
	}
	if out, _, status := runCmd(t, "check", "-h"); status != 0 || !strings.Contains(out, "-config") {
		t.Errorf("check -h: %d %q", status, out)
	}
	_, errs, status := runCmd(t, "check", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if status != 2 || strings.Count(errs, "\n") != 1 {
		t.Errorf("missing file: %d %q", status, errs)
	}
}

// TestCheckMissingUplinkIsNote: uplink interfaces that appear after boot
// (PPPoE, LTE) do not fail the check; each is a note on stdout.
func TestCheckMissingUplinkIsNote(t *testing.T) {
	text := strings.Replace(checkConfig, "interface: lan0", "interface: lo", 1)
	text = strings.ReplaceAll(text, "interface: up", "interface: shim6gwnone")
	path := writeCheckConfig(t, text)
	out, errs, status := runCmd(t, "check", "--config", path)
	want := path + `: note: line 5: uplinks[0].interface: no interface "shim6gwnoneA" yet; uplink a is down until it appears` + "\n" +
		path + `: note: line 9: uplinks[1].interface: no interface "shim6gwnoneB" yet; uplink b is down until it appears` + "\n" +
		path + ": ok (2 uplinks, 4 hosts, tun shim6gw0)\n"
	if status != 0 || errs != "" || out != want {
		t.Fatalf("status %d, stderr %q, stdout\n%s\nwant\n%s", status, errs, out, want)
	}
}

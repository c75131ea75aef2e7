package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var out, errb bytes.Buffer
	status = run(args, &out, &errb)
	return out.String(), errb.String(), status
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantOut    string // substring of stdout
		wantErr    string // whole stderr
	}{
		{"no command", nil, 2, "", "shim6gw: missing command (run 'shim6gw help')\n"},
		{"unknown", []string{"frob"}, 2, "", "shim6gw: unknown command \"frob\" (run 'shim6gw help')\n"},
		{"help", []string{"help"}, 0, "  hba ", ""},
		{"--help", []string{"--help"}, 0, "  version ", ""},
		{"version", []string{"version"}, 0, "shim6gw dev " + runtime.Version(), ""},
		{"--version", []string{"--version"}, 0, "shim6gw dev " + runtime.Version(), ""},
		{"version extra", []string{"version", "x"}, 2, "", "shim6gw: version: unexpected argument \"x\"\n"},
		{"hba help", []string{"hba", "-h"}, 0, "-secret-file", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, status := runCmd(t, tc.args...)
			if status != tc.wantStatus || errs != tc.wantErr || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("run(%q) = %d, stdout %q, stderr %q; want %d, stdout containing %q, stderr %q",
					tc.args, status, out, errs, tc.wantStatus, tc.wantOut, tc.wantErr)
			}
			if tc.wantOut == "" && out != "" {
				t.Fatalf("unexpected stdout %q", out)
			}
		})
	}
}

// TestBuildInfo: the -X version wins, and the one-line form names the
// revision when the build recorded one.
func TestBuildInfo(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v9.9.9"
	b := readBuildInfo()
	if b.Version != "v9.9.9" {
		t.Errorf("version %q", b.Version)
	}
	b.Revision = "abc123+dirty"
	if got, want := b.String(), "shim6gw v9.9.9 "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+" (revision abc123+dirty)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

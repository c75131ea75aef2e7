package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionBash loads the script into bash and completes a command
// name and a flag of run.
func TestCompletionBash(t *testing.T) {
	script, errs, status := runCmd(t, "completion", "bash")
	if status != 0 || errs != "" {
		t.Fatalf("status %d, stderr %q", status, errs)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	path := filepath.Join(t.TempDir(), "shim6gw.bash")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		words string
		want  string
	}{
		{"shim6gw st", "status"},
		{"shim6gw run --ca", "--capture"},
		{"shim6gw status --j", "--json"},
		{"shim6gw check -", "-c --config"},
	} {
		cmd := exec.Command(bash, "-c", `source "$1"; COMP_WORDS=($2); [[ $2 == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _shim6gw; echo "${COMPREPLY[*]}"`,
			"bash", path, tc.words)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.words, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("%q completes to %q, want %q", tc.words, got, tc.want)
		}
	}
	if _, _, status := runCmd(t, "completion", "tcsh"); status != 2 {
		t.Errorf("completion tcsh: status %d", status)
	}
}

// TestManPage: every command and its flags appear, escaped for roff.
func TestManPage(t *testing.T) {
	out, errs, status := runCmd(t, "man")
	if status != 0 || errs != "" {
		t.Fatalf("status %d, stderr %q", status, errs)
	}
	for _, want := range []string{".TH SHIM6GW 8", ".SH COMMANDS", ".SS run\n", ".SS status\n", ".SS hba\n",
		`\-capture string`, `\-json`, `/etc/shim6gw/shim6gw.yaml`, ".SH EXIT STATUS"} {
		if !strings.Contains(out, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "'") || (strings.HasPrefix(l, ".") && !strings.HasPrefix(l, ".T") && !strings.HasPrefix(l, ".S") &&
			!strings.HasPrefix(l, ".P") && !strings.HasPrefix(l, ".n") && !strings.HasPrefix(l, ".f") && !strings.HasPrefix(l, ".B") &&
			!strings.HasPrefix(l, ".I") && !strings.HasPrefix(l, ".b")) {
			t.Errorf("unescaped control line %q", l)
		}
	}
}

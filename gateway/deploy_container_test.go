package gateway

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestComposeStateDirWritable: a read-only container still needs the
// state directory (crash-recovery file, instance lock) writable.
func TestComposeStateDirWritable(t *testing.T) {
	b, err := os.ReadFile("../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			ReadOnly bool     `yaml:"read_only"`
			Tmpfs    []string `yaml:"tmpfs"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	gw := compose.Services["shim6gw"]
	if gw.ReadOnly && !slices.ContainsFunc(gw.Tmpfs, func(m string) bool { return strings.Split(m, ":")[0] == StateDir }) {
		t.Errorf("read_only service without a tmpfs on %s: tmpfs %q", StateDir, gw.Tmpfs)
	}
}

// TestDockerfileHealthcheck: the image checks itself with the health verb
// against the configuration it runs with.
func TestDockerfileHealthcheck(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	hc := regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/shim6gw", "health", "--config", "([^"]+)"`).FindStringSubmatch(text)
	run := regexp.MustCompile(`(?m)^CMD \["run", "--config", "([^"]+)"\]`).FindStringSubmatch(text)
	if hc == nil || run == nil || hc[1] != run[1] {
		t.Errorf("HEALTHCHECK %q does not ask the configuration CMD runs with %q", hc, run)
	}
}

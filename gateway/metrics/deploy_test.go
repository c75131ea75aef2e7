package metrics

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var metricRefRE = regexp.MustCompile(`\bshim6gw_[a-z0-9_]+`)

// referencedMetrics returns the metric family names text refers to, with
// histogram series suffixes removed.
func referencedMetrics(t *testing.T, text string, known []string) []string {
	t.Helper()
	var out []string
	for _, name := range metricRefRE.FindAllString(text, -1) {
		base := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok && slices.Contains(known, b) {
				base = b
			}
		}
		if !slices.Contains(out, base) {
			out = append(out, base)
		}
	}
	slices.Sort(out)
	return out
}

// exprs collects every "expr" and "query" string of a Grafana dashboard.
func exprs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && (k == "expr" || k == "query") {
				*out = append(*out, s)
			}
			exprs(e, out)
		}
	case []any:
		for _, e := range x {
			exprs(e, out)
		}
	}
}

func TestDashboardMetricsExist(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/shim6gw.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	var all []string
	exprs(dash, &all)
	if len(all) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(all))
	}
	known := MetricNames()
	refs := referencedMetrics(t, strings.Join(all, "\n"), known)
	for _, r := range refs {
		if !slices.Contains(known, r) {
			t.Errorf("dashboard uses %s, which the collector does not export", r)
		}
	}
	for _, k := range known {
		if !slices.Contains(refs, k) {
			t.Errorf("dashboard has no panel for %s", k)
		}
	}
}

func TestAlertRulesMetricsExist(t *testing.T) {
	b, err := os.ReadFile("../../deploy/prometheus/shim6gw-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	known := MetricNames()
	refs := referencedMetrics(t, string(b), known)
	if len(refs) == 0 {
		t.Fatal("no shim6gw metric in the alert rules")
	}
	for _, r := range refs {
		if !slices.Contains(known, r) {
			t.Errorf("alert rules use %s, which the collector does not export", r)
		}
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (apt-get install prometheus)")
		}
		t.Skip("promtool not installed")
	}
	// check config also checks the rule file it names.
	out, err := exec.Command(path, "check", "config", "../../deploy/prometheus/prometheus.yml").CombinedOutput()
	if err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}

func TestComposeAndUnit(t *testing.T) {
	b, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			NetworkMode string   `yaml:"network_mode"`
			CapAdd      []string `yaml:"cap_add"`
			Devices     []string `yaml:"devices"`
			Command     []string `yaml:"command"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	gw, ok := compose.Services["shim6gw"]
	if !ok {
		t.Fatal("no shim6gw service")
	}
	if gw.NetworkMode != "host" || !slices.Contains(gw.CapAdd, "NET_ADMIN") ||
		!slices.Contains(gw.Devices, "/dev/net/tun:/dev/net/tun") || !slices.Contains(gw.Command, "run") {
		t.Errorf("shim6gw service = %+v", gw)
	}
	unit, err := os.ReadFile("../../deploy/systemd/shim6gw.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nExecStart=/usr/local/bin/shim6gw run -c /etc/shim6gw/shim6gw.yaml",
		"\nType=notify\n",
		"\nWatchdogSec=",
		"\nExecReload=/bin/kill -HUP $MAINPID\n",
		"\nAmbientCapabilities=CAP_NET_ADMIN\n",
		"\nCapabilityBoundingSet=CAP_NET_ADMIN\n",
		"\nDeviceAllow=/dev/net/tun rw\n",
		"\nNoNewPrivileges=yes\n",
		"\nRestartPreventExitStatus=2\n",
	} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
}

package metrics

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/shim6gw/shim6gw/gateway/plumbing"
)

type fakeControl ControlStats

func (f fakeControl) ControlStats() ControlStats { return ControlStats(f) }

type fakeDataplane DataplaneStats

func (f fakeDataplane) DataplaneStats() DataplaneStats { return DataplaneStats(f) }

type fakeUplinks []plumbing.UplinkStatus

func (f fakeUplinks) UplinkStates() []plumbing.UplinkStatus { return f }

func testMetrics() *Metrics {
	m := NewMetrics(MetricsOptions{
		Version:  "1.2.3",
		Revision: "abc123",
		Control: fakeControl{
			ContextsByState: map[string]uint64{"established": 5, "i1_sent": 2, "bogus_state": 9},
			Establishments:  map[string]uint64{"established": 7, "failed": 1},
			Messages:        map[MessageKey]uint64{{"i1", "tx"}: 3, {"probe", "rx"}: 11},
			Drops:           map[string]uint64{"bad_validator": 4},
			Explorations:    6,
			Failovers:       2,
		},
		Dataplane: fakeDataplane{
			Packets:       map[PathKey]uint64{{"outbound", "outbound_shim"}: 1000, {"inbound", "inbound_shim"}: 900},
			Bytes:         map[PathKey]uint64{{"outbound", "outbound_shim"}: 1500000},
			Drops:         map[DropKey]uint64{{"inbound", "unknown_tag"}: 12},
			UplinkPackets: map[UplinkKey]uint64{{"a", "outbound"}: 7, {"a", "inbound"}: 5, {"b", "outbound"}: 0, {"b", "inbound"}: 0},
			UplinkBytes:   map[UplinkKey]uint64{{"a", "outbound"}: 7000, {"a", "inbound"}: 5000, {"b", "outbound"}: 0, {"b", "inbound"}: 0},
			NoticeDrops:   17,
			InjectErrors:  4, ControlQueueDrops: 9,
		},
		Uplinks:    fakeUplinks{{Name: "b", Up: false}, {Name: "a", Up: true}},
		TUNUp:      func() bool { return true },
		TUNDropped: func() (uint64, bool) { return 23, true },
		Runtime:    true,
	})
	m.FailoverDuration.Observe(0.7)
	m.FailoverDuration.Observe(3)
	m.PathRTT.Observe(0.004)
	for _, n := range []float64{1, 64, 128, 100} {
		m.BatchSize.Observe(n)
	}
	m.ObserveReload(true)
	return m
}

// scrape fetches /metrics through the handler.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s: %s", resp.Status, b)
	}
	return string(b)
}

func TestMetricsSamples(t *testing.T) {
	m := testMetrics()
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	text := scrape(t, mux)
	want := []string{
		`shim6gw_build_info{goversion="` + runtime.Version() + `",revision="abc123",version="1.2.3"} 1`,
		`shim6gw_contexts{state="established"} 5`,
		`shim6gw_contexts{state="i1_sent"} 2`,
		`shim6gw_contexts{state="no_support"} 0`,
		`shim6gw_context_establishments_total{result="established"} 7`,
		`shim6gw_context_establishments_total{result="failed"} 1`,
		`shim6gw_control_messages_total{direction="tx",type="i1"} 3`,
		`shim6gw_control_messages_total{direction="rx",type="probe"} 11`,
		`shim6gw_control_messages_total{direction="rx",type="i1"} 0`,
		`shim6gw_control_dropped_messages_total{reason="bad_validator"} 4`,
		`shim6gw_reap_explorations_total 6`,
		`shim6gw_reap_failovers_total 2`,
		`shim6gw_reap_failover_duration_seconds_bucket{le="0.5"} 0`,
		`shim6gw_reap_failover_duration_seconds_bucket{le="1"} 1`,
		`shim6gw_reap_failover_duration_seconds_bucket{le="5"} 2`,
		`shim6gw_reap_failover_duration_seconds_sum 3.7`,
		`shim6gw_reap_failover_duration_seconds_count 2`,
		`shim6gw_reap_path_rtt_seconds_bucket{le="0.005"} 1`,
		`shim6gw_tunnel_batch_size_bucket{le="64"} 2`,
		`shim6gw_tunnel_batch_size_bucket{le="128"} 4`,
		`shim6gw_tunnel_batch_size_count 4`,
		`shim6gw_tunnel_batch_size_sum 293`,
		`shim6gw_uplink_up{uplink="a"} 1`,
		`shim6gw_uplink_packets_total{direction="outbound",uplink="a"} 7`,
		`shim6gw_uplink_bytes_total{direction="inbound",uplink="a"} 5000`,
		`shim6gw_uplink_packets_total{direction="inbound",uplink="b"} 0`,
		`shim6gw_config_last_reload_successful 1`,
		`shim6gw_uplink_up{uplink="b"} 0`,
		`shim6gw_tunnel_up 1`,
		`shim6gw_dataplane_packets_total{direction="outbound",path="outbound_shim"} 1000`,
		`shim6gw_dataplane_packets_total{direction="inbound",path="inbound_shim"} 900`,
		`shim6gw_dataplane_bytes_total{direction="outbound",path="outbound_shim"} 1.5e+06`,
		`shim6gw_rewrite_dropped_packets_total{direction="inbound",reason="unknown_tag"} 12`,
		`shim6gw_rewrite_dropped_packets_total{direction="outbound",reason="malformed"} 0`,
		`shim6gw_config_reloads_total{result="success"} 1`,
		`shim6gw_config_reloads_total{result="failure"} 0`,
		`shim6gw_dataplane_dropped_notices_total 17`,
		`shim6gw_control_inject_errors_total 4`,
		`shim6gw_control_queue_dropped_messages_total 9`,
		`shim6gw_tunnel_dropped_packets_total 23`,
		`# TYPE shim6gw_tunnel_dropped_packets_total counter`,
		`# TYPE shim6gw_reap_path_rtt_seconds histogram`,
		`# TYPE shim6gw_contexts gauge`,
		`# TYPE shim6gw_control_messages_total counter`,
	}
	have := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		have[l] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("missing line %q", w)
		}
	}
	// Closed label sets: a state outside the vocabulary is not exported.
	if strings.Contains(text, "bogus_state") {
		t.Error("label value outside the closed set exported")
	}
	if !strings.Contains(text, "\ngo_goroutines ") || !strings.Contains(text, "\nprocess_") {
		t.Error("runtime collectors missing")
	}
	promtoolCheck(t, text)
}

func TestMetricsNoSources(t *testing.T) {
	m := NewMetrics(MetricsOptions{})
	text := scrape(t, m.Handler())
	for _, w := range []string{"shim6gw_tunnel_up 0", `shim6gw_contexts{state="established"} 0`,
		"shim6gw_reap_failovers_total 0", "shim6gw_reap_failover_duration_seconds_count 0"} {
		if !strings.Contains(text, "\n"+w+"\n") {
			t.Errorf("missing %q", w)
		}
	}
	if strings.Contains(text, "shim6gw_uplink_up{") {
		t.Error("uplink samples without a source")
	}
	// No reader, no sample: a 0 would claim the kernel dropped nothing.
	if strings.Contains(text, "\nshim6gw_tunnel_dropped_packets_total ") {
		t.Error("tun drops exported without a source")
	}
	promtoolCheck(t, text)
}

// promtoolCheck runs `promtool check metrics` (Debian package prometheus)
// on the exposition text. Without promtool the test fails under CI and
// skips elsewhere.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (apt-get install prometheus)")
		}
		t.Skip("promtool not installed; skipping the lint")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}

func TestMetricNames(t *testing.T) {
	names := MetricNames()
	want := []string{
		"shim6gw_build_info", "shim6gw_config_last_reload_successful", "shim6gw_config_reloads_total",
		"shim6gw_context_establishments_total", "shim6gw_context_evictions_total", "shim6gw_contexts", "shim6gw_control_dropped_messages_total",
		"shim6gw_control_inject_errors_total", "shim6gw_control_messages_total", "shim6gw_control_queue_dropped_messages_total",
		"shim6gw_dataplane_bytes_total",
		"shim6gw_dataplane_dropped_notices_total", "shim6gw_dataplane_packets_total",
		"shim6gw_plumbing_intact", "shim6gw_plumbing_repairs_total",
		"shim6gw_reap_explorations_total", "shim6gw_reap_failover_duration_seconds", "shim6gw_reap_failovers_total",
		"shim6gw_reap_path_rtt_seconds", "shim6gw_rewrite_dropped_packets_total", "shim6gw_tunnel_batch_size",
		"shim6gw_tunnel_dropped_packets_total", "shim6gw_tunnel_up", "shim6gw_uplink_bytes_total",
		"shim6gw_uplink_packets_total", "shim6gw_uplink_up",
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("MetricNames =\n%v\nwant\n%v", names, want)
	}
}

// TestLastReloadSuccessful follows the last SIGHUP's outcome.
func TestLastReloadSuccessful(t *testing.T) {
	m := NewMetrics(MetricsOptions{})
	for _, step := range []struct {
		ok   bool
		want string
	}{{false, "0"}, {true, "1"}, {false, "0"}} {
		m.ObserveReload(step.ok)
		if text := scrape(t, m.Handler()); !strings.Contains(text, "\nshim6gw_config_last_reload_successful "+step.want+"\n") {
			t.Errorf("after a reload ok=%v: want %s", step.ok, step.want)
		}
	}
}

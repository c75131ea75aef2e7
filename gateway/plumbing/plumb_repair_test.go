package plumbing_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/gateway/plumbing/plumbtest"
)

func TestPlumberRepairCountsWhatOthersRemoved(t *testing.T) {
	f := plumbtest.New("shim6gw0", "lan0", "upA", "upB")
	p := plumbing.NewPlumber(f, testPlumbConfig(), nil)
	if res, err := p.Repair(); err != nil || res.Rules+res.Routes != 0 {
		t.Fatalf("before Apply: %+v %v", res, err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if res, err := p.Repair(); err != nil || res.Rules+res.Routes != 0 || len(res.Missing) != 0 {
		t.Fatalf("intact: %+v %v", res, err)
	}
	f.RuleSet = nil // ip -6 rule flush protocol 154
	// ip route del
	f.RouteSet = slices.DeleteFunc(f.RouteSet, func(r plumbing.Route) bool { return r.Table == 15003 && !r.Unreachable })
	res, err := p.Repair()
	if err != nil || res.Rules != 7 || res.Routes != 1 || len(f.RuleSet) != 7 || len(f.RouteSet) != 7 {
		t.Fatalf("repair: %+v %v; kernel rules %d routes %d", res, err, len(f.RuleSet), len(f.RouteSet))
	}
	// The kernel drops an uplink's route with the link: pending, not a
	// repair; when it comes back it is installed, still not a repair.
	f.Links["upA"].Up = false
	f.RouteSet = slices.DeleteFunc(f.RouteSet, func(r plumbing.Route) bool { return r.Dev == "upA" })
	if res, err := p.Repair(); err != nil || res.Routes != 0 || len(p.Pending()) != 1 {
		t.Fatalf("uplink down: %+v %v pending %v", res, err, p.Pending())
	}
	f.Links["upA"].Up = true
	if res, err := p.Repair(); err != nil || res.Routes != 0 || len(p.Pending()) != 0 {
		t.Fatalf("uplink back: %+v %v pending %v", res, err, p.Pending())
	}
	// A repair the kernel refuses leaves it missing.
	f.RuleSet = f.RuleSet[1:]
	f.FailOn = "rule add"
	res, err = p.Repair()
	if err == nil || len(res.Missing) != 1 || !strings.HasPrefix(res.Missing[0], "rule 15000:") {
		t.Fatalf("refused: %+v %v", res, err)
	}
}

// TestPlumbWatcherMetrics: the periodic pass repairs without notifications
// and the collector exports the counts and the intact gauge.
func TestPlumbWatcherMetrics(t *testing.T) {
	ops := &plumbtest.Locked{F: plumbtest.New("shim6gw0", "lan0", "upA", "upB")}
	p := plumbing.NewPlumber(ops, testPlumbConfig(), nil)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	opts := plumbing.PlumbWatchOptionsFor(ops, testPlumbConfig().Rules, nil)
	opts.Interval = 5 * time.Millisecond
	w := plumbing.NewPlumbWatcher(p, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	ops.Do(func() { ops.F.RuleSet = nil })
	deadline := time.Now().Add(5 * time.Second)
	for w.Repairs(plumbing.RepairRule) != 7 {
		if time.Now().After(deadline) {
			t.Fatalf("rule repairs = %d after 5s", w.Repairs(plumbing.RepairRule))
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := `# HELP shim6gw_plumbing_intact 1 while every rule and route of the gateway is in the kernel (routes of down uplinks excepted).
# TYPE shim6gw_plumbing_intact gauge
shim6gw_plumbing_intact 1
# HELP shim6gw_plumbing_repairs_total Rules and routes of the gateway re-installed after something else removed them, by kind.
# TYPE shim6gw_plumbing_repairs_total counter
shim6gw_plumbing_repairs_total{kind="route"} 0
shim6gw_plumbing_repairs_total{kind="rule"} 7
`
	reg := prometheus.NewRegistry()
	reg.MustRegister(w)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if got := rec.Body.String(); got != want {
		t.Errorf("metrics:\n%s\nwant\n%s", got, want)
	}
	ops.Do(func() { ops.F.RuleSet = ops.F.RuleSet[1:]; ops.F.FailOn = "rule add" })
	for w.Intact() {
		if time.Now().After(deadline) {
			t.Fatal("still intact with a rule the kernel refuses")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/lan/dhcp6"
)

func TestStatus(t *testing.T) {
	ci := metrics.ContextInfo{
		LocalULID: netip.MustParseAddr("2001:db8:a:1::10"), PeerULID: netip.MustParseAddr("2001:db8:c:1::20"),
		State: "established", LocalLocator: netip.MustParseAddr("2001:db8:b:1::10"),
		PeerLocator: netip.MustParseAddr("2001:db8:c:1::20"), LocalTag: 0x123, PeerTag: 0x456,
		RTT: 1500 * time.Microsecond,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/contexts" {
			http.Error(w, "nope", http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(metrics.ContextsResponse{Contexts: []metrics.ContextInfo{ci}})
	}))
	defer srv.Close()
	for _, admin := range []string{srv.URL, strings.TrimPrefix(srv.URL, "http://")} {
		out, errs, status := runCmd(t, "status", "--admin", admin)
		if status != 0 || errs != "" {
			t.Fatalf("status %d, stderr %q", status, errs)
		}
		for _, want := range []string{"LOCAL ULID", "2001:db8:a:1::10", "established", "2001:db8:b:1::10", "000000000123", "1.5ms", "1 context(s)\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	}
}

func TestStatusErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer srv.Close()
	_, errs, status := runCmd(t, "status", "--admin", srv.URL)
	if status != 1 || !strings.HasPrefix(errs, "shim6gw: status: ") || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "500") {
		t.Errorf("server error: %d %q", status, errs)
	}
	srv.Close()
	_, errs, status = runCmd(t, "status", "--admin", srv.URL, "--timeout", "2s")
	if status != 1 || strings.Count(errs, "\n") != 1 {
		t.Errorf("unreachable: %d %q", status, errs)
	}
	if _, errs, status := runCmd(t, "status", "extra"); status != 2 || errs != "shim6gw: status: unexpected argument \"extra\"\n" {
		t.Errorf("extra argument: %d %q", status, errs)
	}
}

type fakeUplinks []plumbing.UplinkStatus

func (f fakeUplinks) UplinkStates() []plumbing.UplinkStatus { return f }

type fakeContexts []metrics.ContextInfo

func (f fakeContexts) Contexts() []metrics.ContextInfo { return f }

// TestStatusUplinksAndReadiness: status finds the admin listener through
// admin.listen of -c, and prints readiness, the uplinks and the contexts,
// as text and as JSON.
func TestStatusUplinksAndReadiness(t *testing.T) {
	since := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	a := metrics.NewAdmin(metrics.AdminOptions{
		Uplinks: fakeUplinks{
			{Name: "a", Interface: "upA", Up: true, Reason: plumbing.ReasonUp, Since: since},
			{Name: "b", Interface: "upB", Reason: plumbing.ReasonNoCarrier, Since: since},
		},
		TUNUp:    func() bool { return true },
		Contexts: fakeContexts{{LocalULID: netip.MustParseAddr("2001:db8:a:1::10"), PeerULID: netip.MustParseAddr("2001:db8:c:1::20"), State: "established"}},
		Ready:    []metrics.ReadyCheck{{Name: "locators", Check: func() error { return errors.New("no usable uplink") }}},
	})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	cfg := writeCheckConfig(t, checkConfig+"admin:\n  listen: "+strings.TrimPrefix(srv.URL, "http://")+"\n")
	out, errs, status := runCmd(t, "status", "-c", cfg)
	if status != 0 || errs != "" {
		t.Fatalf("status %d, stderr %q", status, errs)
	}
	for _, want := range []string{"gateway NOT READY\n", "  ok   tun\n", "  FAIL locators: no usable uplink\n",
		"a       upA        up     up          2026-12-04T10:00:00Z", "b       upB        down   no carrier", "1 context(s)\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, errs, status = runCmd(t, "status", "--admin", srv.URL, "--json")
	if status != 0 || errs != "" {
		t.Fatalf("--json: status %d, stderr %q", status, errs)
	}
	var got struct {
		Ready    bool
		Checks   []metrics.CheckInfo
		Uplinks  []metrics.UplinkInfo
		Contexts []metrics.ContextInfo
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if got.Ready || len(got.Checks) != 3 || len(got.Uplinks) != 2 || got.Uplinks[1].Reason != "no carrier" ||
		len(got.Contexts) != 1 || got.Contexts[0].State != "established" {
		t.Errorf("json %+v", got)
	}
	if _, errs, status := runCmd(t, "status", "-c", filepath.Join(t.TempDir(), "none.yaml")); status != 2 || !strings.HasPrefix(errs, "shim6gw: status: config: ") {
		t.Errorf("missing -c file: %d %q", status, errs)
	}
}

func TestStatusShowsLANLeases(t *testing.T) {
	d := gateway.LANDebug{DHCPv6: []dhcp6.Lease{{DUID: "000300015254000001", IAID: "00000001", Entry: 5,
		Address: netip.MustParseAddr("2001:db8:a:1::55"), State: "bound", Expires: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}}}
	a := metrics.NewAdmin(metrics.AdminOptions{Handlers: map[string]http.Handler{"/debug/leases": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(d)
	})}})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	out, errs, status := runCmd(t, "status", "--admin", srv.URL)
	if status != 0 || errs != "" {
		t.Fatalf("status %d, stderr %q", status, errs)
	}
	if !strings.Contains(out, "2001:db8:a:1::55  5      bound") || !strings.Contains(out, "1 lease(s), 0 SLAAC mapping(s)") {
		t.Errorf("output lacks the lease:\n%s", out)
	}
	out, _, _ = runCmd(t, "status", "--admin", srv.URL, "--json")
	var got struct{ LAN gateway.LANDebug }
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.LAN.DHCPv6) != 1 || got.LAN.DHCPv6[0].Entry != 5 || got.LAN.SLAAC == nil {
		t.Errorf("json lan %+v (%v):\n%s", got.LAN, err, out)
	}
}

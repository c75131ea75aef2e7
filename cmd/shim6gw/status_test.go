package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/gateway/metrics"
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

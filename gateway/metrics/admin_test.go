package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/internal/nstest"
)

type fakeContexts []ContextInfo

func (f fakeContexts) Contexts() []ContextInfo { return f }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

type uplinksFunc func() []plumbing.UplinkStatus

func (f uplinksFunc) UplinkStates() []plumbing.UplinkStatus { return f() }

// TestHealthzFlips: /healthz follows the TUN and the uplink states as the
// monitor reports them.
func TestHealthzFlips(t *testing.T) {
	var up fakeUplinks
	var tunUp atomic.Bool
	a := NewAdmin(AdminOptions{Uplinks: uplinksFunc(func() []plumbing.UplinkStatus { return up }), TUNUp: tunUp.Load,
		Ready: []ReadyCheck{{Name: "plumbing", Check: func() error { return nil }}}})
	h := a.Handler()
	st := func(name string, reason string) plumbing.UplinkStatus {
		return plumbing.UplinkStatus{Name: name, Up: reason == plumbing.ReasonUp, Reason: reason}
	}
	steps := []struct {
		name     string
		states   fakeUplinks
		tun      bool
		wantCode int
		wantBody string
	}{
		{"nothing known", fakeUplinks{st("a", plumbing.ReasonMissing), st("b", plumbing.ReasonMissing)}, true, 503,
			"ok tun\nFAIL uplinks: none up (a: interface missing, b: interface missing)\n"},
		{"a up", fakeUplinks{st("a", plumbing.ReasonUp), st("b", plumbing.ReasonMissing)}, true, 200, "ok tun\nok uplinks\n"},
		{"tun down", fakeUplinks{st("a", plumbing.ReasonUp), st("b", plumbing.ReasonMissing)}, false, 503, "FAIL tun: down\nok uplinks\n"},
		{"a loses carrier", fakeUplinks{st("a", plumbing.ReasonNoCarrier), st("b", plumbing.ReasonMissing)}, true, 503,
			"ok tun\nFAIL uplinks: none up (a: no carrier, b: interface missing)\n"},
		{"a back", fakeUplinks{st("a", plumbing.ReasonUp), st("b", plumbing.ReasonMissing)}, true, 200, "ok tun\nok uplinks\n"},
		{"none configured", nil, true, 503, "ok tun\nFAIL uplinks: none configured\n"},
	}
	for _, s := range steps {
		up = s.states
		tunUp.Store(s.tun)
		code, body := get(t, h, "/healthz")
		if code != s.wantCode || body != s.wantBody {
			t.Errorf("%s: /healthz = %d %q, want %d %q", s.name, code, body, s.wantCode, s.wantBody)
		}
	}
	up = fakeUplinks{st("a", plumbing.ReasonUp)}
	code, body := get(t, h, "/readyz")
	if code != 200 || body != "ok tun\nok uplinks\nok plumbing\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
}

func TestReadyzNamesFailingCheck(t *testing.T) {
	a := NewAdmin(AdminOptions{
		Uplinks: fakeUplinks{{Name: "a", Up: true}},
		TUNUp:   func() bool { return true },
		Ready: []ReadyCheck{
			{Name: "plumbing", Check: func() error { return errors.New("rules not applied") }},
			{Name: "locators", Check: func() error { return nil }},
		},
	})
	code, body := get(t, a.Handler(), "/readyz")
	if code != 503 || body != "ok tun\nok uplinks\nFAIL plumbing: rules not applied\nok locators\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, _ := get(t, a.Handler(), "/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200 (readiness is separate)", code)
	}
}

var testContexts = fakeContexts{
	{
		LocalULID: netip.MustParseAddr("2001:db8:a:1::10"), PeerULID: netip.MustParseAddr("2001:db8:c:1::20"),
		State: "established", LocalLocator: netip.MustParseAddr("2001:db8:b:1::11"), PeerLocator: netip.MustParseAddr("2001:db8:c:1::20"),
		LocalTag: 0x123456789ab, PeerTag: 0x7fffffffffff, RTT: 12500 * time.Microsecond,
		LastFailover: time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC),
	},
	{
		LocalULID: netip.MustParseAddr("2001:db8:a:1::2"), PeerULID: netip.MustParseAddr("2001:db8:d::1"),
		State: "i1_sent", LocalTag: 42,
	},
}

func TestDebugContextsJSON(t *testing.T) {
	a := NewAdmin(AdminOptions{Contexts: testContexts})
	code, body := get(t, a.Handler(), "/debug/contexts")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	want := `{
  "contexts": [
    {
      "local_ulid": "2001:db8:a:1::2",
      "peer_ulid": "2001:db8:d::1",
      "state": "i1_sent",
      "local_locator": "",
      "peer_locator": "",
      "local_tag": "00000000002a",
      "peer_tag": "000000000000",
      "rtt_seconds": null,
      "last_failover": null
    },
    {
      "local_ulid": "2001:db8:a:1::10",
      "peer_ulid": "2001:db8:c:1::20",
      "state": "established",
      "local_locator": "2001:db8:b:1::11",
      "peer_locator": "2001:db8:c:1::20",
      "local_tag": "0123456789ab",
      "peer_tag": "7fffffffffff",
      "rtt_seconds": 0.0125,
      "last_failover": "2026-11-29T03:00:00Z"
    }
  ]
}
`
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	// And the status command's decoder reads it back.
	var r ContextsResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	wantCtx := []ContextInfo{testContexts[1], testContexts[0]}
	if diff := cmp.Diff(wantCtx, r.Contexts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// No lister: an empty list, not null.
	_, body = get(t, NewAdmin(AdminOptions{}).Handler(), "/debug/contexts")
	if body != "{\n  \"contexts\": []\n}\n" {
		t.Errorf("empty body %q", body)
	}
}

func TestContextInfoUnmarshalErrors(t *testing.T) {
	for _, in := range []string{
		`{"local_ulid":"nope"}`,
		`{"local_tag":"zz"}`,
		`{"local_tag":"1000000000000"}`, // 49 bits
		`{"last_failover":"yesterday"}`,
		`[]`,
	} {
		var c ContextInfo
		if err := json.Unmarshal([]byte(in), &c); err == nil {
			t.Errorf("%s: decoded as %+v", in, c)
		}
	}
}

func TestRenderStatus(t *testing.T) {
	var b strings.Builder
	if err := RenderStatus(&b, testContexts); err != nil {
		t.Fatal(err)
	}
	want := `LOCAL ULID        PEER ULID         STATE        LOCAL LOCATOR     PEER LOCATOR      LOCAL TAG     PEER TAG      RTT     LAST FAILOVER
2001:db8:a:1::2   2001:db8:d::1     i1_sent      -                 -                 00000000002a  000000000000  -       -
2001:db8:a:1::10  2001:db8:c:1::20  established  2001:db8:b:1::11  2001:db8:c:1::20  0123456789ab  7fffffffffff  12.5ms  2026-11-29T03:00:00Z
2 context(s)
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	if testContexts[0].State != "established" {
		t.Error("RenderStatus reordered its input")
	}
}

func TestAdminServeAndFetch(t *testing.T) {
	nstest.CheckNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := testMetrics()
	a := NewAdmin(AdminOptions{Contexts: testContexts, Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 5 * time.Second}
	cs, err := FetchContexts(ctx, client, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[1].LocalTag != 0x123456789ab {
		t.Errorf("fetched %+v", cs)
	}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "shim6gw_reap_failovers_total 2\n") {
		t.Error("metrics not served on the admin listener")
	}
	if _, err := FetchContexts(ctx, client, base+"/nothing"); !errors.Is(err, ErrAdminStatus) {
		t.Errorf("404 err = %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestIntegrationHealthzFlips runs the real monitor in a namespace behind
// the admin handler: carrier loss on the only live uplink turns /healthz
// to 503, carrier back to 200.
func TestIntegrationHealthzFlips(t *testing.T) {
	nstest.CheckNoLeaks(t)
	ns, h := nstest.NewNS(t, "s6gw-health")
	upa, peer := nstest.AddVeth(t, h, "s6gwupa", "s6gwupap")
	nstest.AddVeth(t, h, "s6gwupb", "s6gwupbp") // no address: never up
	if err := h.AddrAdd(upa, &netlink.Addr{IPNet: nstest.MustCIDR("2001:db8:a:ffff::2/64"), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	m := plumbing.NewMonitor([]plumbing.UplinkSpec{{Name: "a", Interface: "s6gwupa"}, {Name: "b", Interface: "s6gwupb"}},
		plumbing.MonitorOptions{Namespace: &ns})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("monitor did not stop")
		}
	})
	handler := NewAdmin(AdminOptions{Uplinks: m, TUNUp: func() bool { return true }}).Handler()
	// waitHealth consumes monitor events until /healthz answers code.
	waitHealth := func(step string, code int) string {
		t.Helper()
		deadline := time.After(2 * time.Second)
		for {
			if c, body := get(t, handler, "/healthz"); c == code {
				return body
			}
			select {
			case <-m.Events():
			case <-deadline:
				c, body := get(t, handler, "/healthz")
				t.Fatalf("%s: /healthz = %d %q after 2s, want %d", step, c, body, code)
			}
		}
	}
	waitHealth("initial", 200)
	if err := h.LinkSetDown(peer); err != nil {
		t.Fatal(err)
	}
	body := waitHealth("carrier lost", 503)
	if body != "ok tun\nFAIL uplinks: none up (a: no carrier, b: no global address)\n" {
		t.Errorf("body %q", body)
	}
	if err := h.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	waitHealth("carrier back", 200)
}

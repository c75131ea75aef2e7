package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/lan/dhcp6"
	"github.com/shim6gw/shim6gw/lan/slaac"
)

func TestRenderLANStatusFromFetchedLeases(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := LANDebug{
		DHCPv6: []dhcp6.Lease{
			{DUID: "000300015254000001", IAID: "00000001", Entry: 16, Address: netip.MustParseAddr("2001:db8:a:1::10"), State: "bound", Expires: at},
			{Entry: 17, Address: netip.MustParseAddr("2001:db8:a:1::11"), State: "declined", Expires: at},
		},
		SLAAC: []slaac.Mapping{{Host: netip.MustParseAddr("2001:db8:a:5::7"), ULID: netip.MustParseAddr("2001:db8:a:1::80"), Entry: 128, LastSeen: at}},
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/leases", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(d)
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	got, err := FetchLANDebug(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := RenderLANStatus(&out, got); err != nil {
		t.Fatal(err)
	}
	want := `
DHCPV6 ADDRESS    ENTRY  STATE     DUID                IAID      EXPIRES
2001:db8:a:1::10  16     bound     000300015254000001  00000001  2026-01-02T03:04:05Z
2001:db8:a:1::11  17     declined  -                   -         2026-01-02T03:04:05Z

SLAAC HOST       ULID              ENTRY  LAST SEEN
2001:db8:a:5::7  2001:db8:a:1::80  128    2026-01-02T03:04:05Z
2 lease(s), 1 SLAAC mapping(s)
`
	if out.String() != want {
		t.Errorf("status\n got %q\nwant %q", out.String(), want)
	}
	// A gateway without LAN services: nothing, no error.
	empty, err := FetchLANDebug(context.Background(), srv.Client(), srv.URL+"/none")
	if err != nil || len(empty.DHCPv6)+len(empty.SLAAC) != 0 {
		t.Errorf("404: %+v, %v", empty, err)
	}
	out.Reset()
	if err := RenderLANStatus(&out, empty); err != nil || out.Len() != 0 {
		t.Errorf("empty render %q, %v", out.String(), err)
	}
}

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/shim6gw/shim6gw/gateway/metrics"
)

// RenderLANStatus writes the DHCPv6 leases and the SLAAC mappings as
// `shim6gw status` prints them after the contexts; a service with nothing
// to show prints nothing.
func RenderLANStatus(w io.Writer, d LANDebug) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	if len(d.DHCPv6) > 0 {
		fmt.Fprintln(tw, "\nDHCPV6 ADDRESS\tENTRY\tSTATE\tDUID\tIAID\tEXPIRES")
		for _, l := range d.DHCPv6 {
			duid, iaid := l.DUID, l.IAID
			if duid == "" {
				duid, iaid = "-", "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", l.Address, l.Entry, l.State, duid, iaid, when(l.Expires))
		}
	}
	if len(d.SLAAC) > 0 {
		fmt.Fprintln(tw, "\nSLAAC HOST\tULID\tENTRY\tLAST SEEN")
		for _, m := range d.SLAAC {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", m.Host, m.ULID, m.Entry, when(m.LastSeen))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.DHCPv6)+len(d.SLAAC) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "%d lease(s), %d SLAAC mapping(s)\n", len(d.DHCPv6), len(d.SLAAC))
	return err
}

// FetchLANDebug gets /debug/leases from a running gateway's admin
// listener (base like "http://127.0.0.1:9146"). A gateway that runs no
// LAN service (404) gives an empty LANDebug and no error.
func FetchLANDebug(ctx context.Context, client *http.Client, base string) (LANDebug, error) {
	var d LANDebug
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/leases", nil)
	if err != nil {
		return d, fmt.Errorf("gateway: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return d, fmt.Errorf("gateway: fetch leases: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return d, nil
	default:
		return d, fmt.Errorf("%w: %s", metrics.ErrAdminStatus, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&d); err != nil {
		return d, fmt.Errorf("gateway: decode leases: %w", err)
	}
	return d, nil
}

package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"
)

// ContextInfo describes one shim6 context for /debug/contexts and
// `shim6gw status`. The control loop fills it from shim6.ContextInfo.
type ContextInfo struct {
	LocalULID, PeerULID       netip.Addr
	State                     string // a ContextStateLabels value
	LocalLocator, PeerLocator netip.Addr
	LocalTag, PeerTag         uint64        // 47-bit context tags (RFC 5533 §4.1)
	RTT                       time.Duration // 0: unknown
	LastFailover              time.Time     // zero: never
}

// contextJSON is the wire form; its field set is the /debug/contexts
// schema.
type contextJSON struct {
	LocalULID    string   `json:"local_ulid"`
	PeerULID     string   `json:"peer_ulid"`
	State        string   `json:"state"`
	LocalLocator string   `json:"local_locator"`
	PeerLocator  string   `json:"peer_locator"`
	LocalTag     string   `json:"local_tag"`
	PeerTag      string   `json:"peer_tag"`
	RTTSeconds   *float64 `json:"rtt_seconds"`
	LastFailover *string  `json:"last_failover"`
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// TagHex renders a context tag as 12 hex digits (47 bits fit in 48).
func TagHex(t uint64) string { return fmt.Sprintf("%012x", t) }

// MarshalJSON encodes the /debug/contexts schema: tags in hex, the RTT in
// seconds and the last failover in RFC 3339, both null when unknown.
func (c ContextInfo) MarshalJSON() ([]byte, error) {
	j := contextJSON{
		LocalULID: addrString(c.LocalULID), PeerULID: addrString(c.PeerULID), State: c.State,
		LocalLocator: addrString(c.LocalLocator), PeerLocator: addrString(c.PeerLocator),
		LocalTag: TagHex(c.LocalTag), PeerTag: TagHex(c.PeerTag),
	}
	if c.RTT > 0 {
		s := c.RTT.Seconds()
		j.RTTSeconds = &s
	}
	if !c.LastFailover.IsZero() {
		s := c.LastFailover.UTC().Format(time.RFC3339Nano)
		j.LastFailover = &s
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (c *ContextInfo) UnmarshalJSON(b []byte) error {
	var j contextJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var out ContextInfo
	var err error
	parse := func(s string) netip.Addr {
		if s == "" || err != nil {
			return netip.Addr{}
		}
		var a netip.Addr
		a, err = netip.ParseAddr(s)
		return a
	}
	out.LocalULID, out.PeerULID = parse(j.LocalULID), parse(j.PeerULID)
	out.LocalLocator, out.PeerLocator = parse(j.LocalLocator), parse(j.PeerLocator)
	out.State = j.State
	for _, x := range []struct {
		s string
		p *uint64
	}{{j.LocalTag, &out.LocalTag}, {j.PeerTag, &out.PeerTag}} {
		if x.s == "" || err != nil {
			continue
		}
		*x.p, err = strconv.ParseUint(x.s, 16, 48)
	}
	if j.RTTSeconds != nil {
		out.RTT = time.Duration(*j.RTTSeconds * float64(time.Second))
	}
	if j.LastFailover != nil && err == nil {
		out.LastFailover, err = time.Parse(time.RFC3339Nano, *j.LastFailover)
	}
	if err != nil {
		return fmt.Errorf("gateway: bad context record: %w", err)
	}
	*c = out
	return nil
}

// ContextsResponse is the body of /debug/contexts.
type ContextsResponse struct {
	Contexts []ContextInfo `json:"contexts"`
}

// ContextLister returns the current contexts. It is called from the HTTP
// goroutine, so the control loop must hand out a published copy.
type ContextLister interface{ Contexts() []ContextInfo }

// sortContexts orders by local ULID, then peer ULID.
func sortContexts(cs []ContextInfo) {
	sort.Slice(cs, func(i, j int) bool {
		if c := cs[i].LocalULID.Compare(cs[j].LocalULID); c != 0 {
			return c < 0
		}
		return cs[i].PeerULID.Less(cs[j].PeerULID)
	})
}

// RenderStatus writes contexts as the table `shim6gw status` prints,
// sorted by ULID pair. It does not modify contexts.
func RenderStatus(w io.Writer, contexts []ContextInfo) error {
	cs := append([]ContextInfo(nil), contexts...)
	sortContexts(cs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCAL ULID\tPEER ULID\tSTATE\tLOCAL LOCATOR\tPEER LOCATOR\tLOCAL TAG\tPEER TAG\tRTT\tLAST FAILOVER")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, c := range cs {
		rtt, fo := "-", "-"
		if c.RTT > 0 {
			rtt = c.RTT.Round(10 * time.Microsecond).String()
		}
		if !c.LastFailover.IsZero() {
			fo = c.LastFailover.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			dash(addrString(c.LocalULID)), dash(addrString(c.PeerULID)), dash(c.State),
			dash(addrString(c.LocalLocator)), dash(addrString(c.PeerLocator)),
			TagHex(c.LocalTag), TagHex(c.PeerTag), rtt, fo)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d context(s)\n", len(cs))
	return err
}

// ErrAdminStatus: the admin listener answered with a non-200 status.
var ErrAdminStatus = errors.New("gateway: admin listener error")

// FetchContexts gets /debug/contexts from a running gateway's admin
// listener (base like "http://127.0.0.1:9146"), for `shim6gw status`.
func FetchContexts(ctx context.Context, client *http.Client, base string) ([]ContextInfo, error) {
	var r ContextsResponse
	if err := getJSON(ctx, client, base+"/debug/contexts", &r); err != nil {
		return nil, err
	}
	return r.Contexts, nil
}

// StatusResponse is the body of /debug/status: readiness, one entry per
// check of /readyz, and the uplinks as the monitor sees them.
type StatusResponse struct {
	Ready   bool         `json:"ready"`
	Checks  []CheckInfo  `json:"checks"`
	Uplinks []UplinkInfo `json:"uplinks"`
}

// CheckInfo is one /readyz condition.
type CheckInfo struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// UplinkInfo is one uplink's state; Reason says why it is down ("up"
// while it is up).
type UplinkInfo struct {
	Name      string     `json:"name"`
	Interface string     `json:"interface"`
	Up        bool       `json:"up"`
	Reason    string     `json:"reason"`
	Since     *time.Time `json:"since"` // null: no change seen yet
}

// FetchStatus gets /debug/status; it returns nil and no error from a
// gateway too old to serve it (404).
func FetchStatus(ctx context.Context, client *http.Client, base string) (*StatusResponse, error) {
	var r StatusResponse
	if err := getJSON(ctx, client, base+"/debug/status", &r); err != nil {
		if errors.Is(err, errNotFound) {
			return nil, nil
		}
		return nil, err
	}
	return &r, nil
}

var errNotFound = fmt.Errorf("%w: 404 Not Found", ErrAdminStatus)

// getJSON decodes the JSON body of a GET of url into v.
func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("gateway: fetch %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return errNotFound
	default:
		return fmt.Errorf("%w: %s", ErrAdminStatus, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("gateway: decode %s: %w", req.URL.Path, err)
	}
	return nil
}

// RenderHealth writes the readiness checks and the uplinks as `shim6gw
// status` prints them above the contexts.
func RenderHealth(w io.Writer, s *StatusResponse) error {
	ready := "ready"
	if !s.Ready {
		ready = "NOT READY"
	}
	fmt.Fprintf(w, "gateway %s\n", ready)
	for _, c := range s.Checks {
		if c.OK {
			fmt.Fprintf(w, "  ok   %s\n", c.Name)
		} else {
			fmt.Fprintf(w, "  FAIL %s: %s\n", c.Name, c.Error)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nUPLINK\tINTERFACE\tSTATE\tREASON\tSINCE")
	for _, u := range s.Uplinks {
		state, since := "down", "-"
		if u.Up {
			state = "up"
		}
		if u.Since != nil {
			since = u.Since.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Interface, state, u.Reason, since)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}

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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/contexts", nil)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gateway: fetch contexts: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s", ErrAdminStatus, resp.Status)
	}
	var r ContextsResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r); err != nil {
		return nil, fmt.Errorf("gateway: decode contexts: %w", err)
	}
	return r.Contexts, nil
}

package rewrite_test

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/internal/checksum"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/rewrite"
)

func TestFallback(t *testing.T) {
	other := netip.MustParseAddr("2001:db8:f::9")
	tests := []struct {
		name  string
		aDown bool
		dir   rewrite.Direction
		in    []byte
		want  []byte
		path  rewrite.PathKind
	}{
		{
			name: "TCP leaves with the locator of a live uplink", aDown: true, dir: rewrite.Outbound,
			in:   ip6(fbHost, legacy, 6, tcp(fbHost, legacy, 0x18, nil, pattern(300))),
			want: ip6(fbHostLoc, legacy, 6, tcp(fbHostLoc, legacy, 0x18, nil, pattern(300))),
			path: rewrite.PathFallbackOut,
		},
		{
			name: "UDP", aDown: true, dir: rewrite.Outbound,
			in:   ip6(fbHost, legacy, 17, udp(fbHost, legacy, 5353, pattern(31), false)),
			want: ip6(fbHostLoc, legacy, 17, udp(fbHostLoc, legacy, 5353, pattern(31), false)),
			path: rewrite.PathFallbackOut,
		},
		{
			name: "UDP without checksum keeps 0", aDown: true, dir: rewrite.Outbound,
			in:   ip6(fbHost, legacy, 17, udp(fbHost, legacy, 5353, pattern(31), true)),
			want: ip6(fbHostLoc, legacy, 17, udp(fbHostLoc, legacy, 5353, pattern(31), true)),
			path: rewrite.PathFallbackOut,
		},
		{
			name: "ICMPv6 echo", aDown: true, dir: rewrite.Outbound,
			in:   ip6(fbHost, legacy, 58, icmpMsg(fbHost, legacy, 128, 0, 0x00070001, pattern(56))),
			want: ip6(fbHostLoc, legacy, 58, icmpMsg(fbHostLoc, legacy, 128, 0, 0x00070001, pattern(56))),
			path: rewrite.PathFallbackOut,
		},
		{
			name: "non-first fragment translated, nothing to checksum", aDown: true, dir: rewrite.Outbound,
			in:   ip6(fbHost, legacy, 17, pattern(24), frag(800)),
			want: ip6(fbHostLoc, legacy, 17, pattern(24), frag(800)),
			path: rewrite.PathFallbackOut,
		},
		{
			name: "host's ICMPv6 error quotes the locator the peer used", aDown: true, dir: rewrite.Outbound,
			in:   ip6(fbHost, legacy, 58, icmpMsg(fbHost, legacy, 1, 4, 0, ip6(legacy, fbHost, 17, udp(legacy, fbHost, 1, pattern(8), false)))),
			want: ip6(fbHostLoc, legacy, 58, icmpMsg(fbHostLoc, legacy, 1, 4, 0, ip6(legacy, fbHostLoc, 17, udp(legacy, fbHost, 1, pattern(8), false)))),
			path: rewrite.PathFallbackOut,
		},
		{
			name: "peer that may speak shim6 is not translated", aDown: true, dir: rewrite.Outbound,
			in:   ip6(fbHost, other, 17, udp(fbHost, other, 1, nil, false)),
			want: ip6(fbHost, other, 17, udp(fbHost, other, 1, nil, false)),
			path: rewrite.PathPassthrough,
		},
		{
			name: "ULID uplink up: new flow stays on the ULID", dir: rewrite.Outbound,
			in:   ip6(fbHost, legacy, 17, udp(fbHost, legacy, 1, nil, false)),
			want: ip6(fbHost, legacy, 17, udp(fbHost, legacy, 1, nil, false)),
			path: rewrite.PathPassthrough,
		},
		{
			name: "reply to the locator goes back to the ULID", dir: rewrite.Inbound,
			in:   ip6(legacy, fbHostLoc, 6, tcp(legacy, fbHostLoc, 0x18, nil, pattern(77))),
			want: ip6(legacy, fbHost, 6, tcp(legacy, fbHost, 0x18, nil, pattern(77))),
			path: rewrite.PathFallbackIn,
		},
		{
			name: "inbound UDP without checksum", dir: rewrite.Inbound,
			in:   ip6(legacy, fbHostLoc, 17, udp(legacy, fbHostLoc, 53, pattern(7), true)),
			want: ip6(legacy, fbHost, 17, udp(legacy, fbHost, 53, pattern(7), true)),
			path: rewrite.PathFallbackIn,
		},
		{
			name: "ICMPv6 error about a translated packet", dir: rewrite.Inbound,
			in:   ip6(router, fbHostLoc, 58, icmpMsg(router, fbHostLoc, 1, 0, 0, ip6(fbHostLoc, legacy, 17, udp(fbHostLoc, legacy, 1, pattern(8), false)))),
			want: ip6(router, fbHost, 58, icmpMsg(router, fbHost, 1, 0, 0, ip6(fbHost, legacy, 17, udp(fbHostLoc, legacy, 1, pattern(8), false)))),
			path: rewrite.PathFallbackIn,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRewriter(t, siteConfig(tt.aDown))
			buf, start, end := place(tt.in)
			res := r.Process(tt.dir, buf, start, end, 1)
			if res.Verdict != rewrite.Forward || res.Path != tt.path {
				t.Fatalf("got %v/%v, want forward/%v", res.Verdict, res.Path, tt.path)
			}
			got := buf[res.Start:res.End]
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("packet (-want +got):\n%s", diff)
			}
			transportOK(t, got)
		})
	}
}

// TestFallbackFlowsKeepTheirPath: flows started during the outage stay on
// the fallback locator after the ULID's uplink returns; new flows don't,
// and pinned flows expire after FlowIdle.
func TestFallbackFlowsKeepTheirPath(t *testing.T) {
	down, err := rewrite.NewTable(siteConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	up, err := rewrite.NewTable(siteConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	r := rewrite.NewRewriter(rewrite.RewriterConfig{FlowIdle: time.Minute, FlowSlots: 64})
	send := func(sport uint16, now int64) netip.Addr {
		buf, start, end := place(ip6(fbHost, legacy, 17, udp(fbHost, legacy, sport, pattern(4), false)))
		res := r.Process(rewrite.Outbound, buf, start, end, now)
		transportOK(t, buf[res.Start:res.End])
		return netip.AddrFrom16([16]byte(buf[res.Start+8 : res.Start+24]))
	}
	r.Publish(down)
	if got := send(1000, 1); got != fbHostLoc {
		t.Fatalf("during outage: source %v", got)
	}
	r.Publish(up)
	if got := send(1000, 2); got != fbHostLoc {
		t.Errorf("pinned flow moved to %v", got)
	}
	if got := send(2000, 3); got != fbHost {
		t.Errorf("new flow source %v, want the ULID", got)
	}
	if got := send(1000, 3+int64(2*time.Minute)); got != fbHost {
		t.Errorf("idle flow still pinned: %v", got)
	}
	// Fallback uplink down as well: nothing to translate to.
	cfg := siteConfig(true)
	cfg.Uplinks[1].Down = true
	both, err := rewrite.NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Publish(both)
	if got := send(3000, 4); got != fbHost {
		t.Errorf("all uplinks down: source %v", got)
	}
}

// TestFallbackManyFlows fills the bounded flow table beyond capacity: no
// growth, and the most recent flows are still pinned.
func TestFallbackManyFlows(t *testing.T) {
	down, _ := rewrite.NewTable(siteConfig(true))
	up, _ := rewrite.NewTable(siteConfig(false))
	r := rewrite.NewRewriter(rewrite.RewriterConfig{FlowSlots: 16})
	r.Publish(down)
	for i := range 1000 {
		buf, start, end := place(ip6(fbHost, legacy, 17, udp(fbHost, legacy, uint16(i), nil, false)))
		r.Process(rewrite.Outbound, buf, start, end, int64(i))
	}
	r.Publish(up)
	buf, start, end := place(ip6(fbHost, legacy, 17, udp(fbHost, legacy, 999, nil, false)))
	if res := r.Process(rewrite.Outbound, buf, start, end, 1000); res.Path != rewrite.PathFallbackOut {
		t.Errorf("latest flow not pinned: %v", res.Path)
	}
}

// TestFallbackUDPChecksumNeverZero: a translated UDP checksum that comes
// out as 0 is sent as 0xffff, since 0 means "no checksum" (RFC 768).
func TestFallbackUDPChecksumNeverZero(t *testing.T) {
	// Pick the last payload word so that the translated datagram's
	// checksum computes to zero.
	data := []byte{1, 2, 3, 4, 0, 0}
	seg := udp(fbHostLoc, legacy, 7, data, true)
	x := checksum.Fold(checksum.Sum(seg, checksum.PseudoHeader(fbHostLoc, legacy, uint32(len(seg)), 17)))
	binary.BigEndian.PutUint16(data[4:], ^x)
	in := ip6(fbHost, legacy, 17, udp(fbHost, legacy, 7, data, false))
	r := newRewriter(t, siteConfig(true))
	buf, start, end := place(in)
	res := r.Process(rewrite.Outbound, buf, start, end, 1)
	out := buf[res.Start:res.End]
	if res.Path != rewrite.PathFallbackOut {
		t.Fatalf("path %v", res.Path)
	}
	if ck := binary.BigEndian.Uint16(out[46:]); ck != 0xffff {
		t.Errorf("checksum %#04x, want 0xffff", ck)
	}
	transportOK(t, out)
}

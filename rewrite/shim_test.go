package rewrite_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/rewrite"
)

func TestOutbound(t *testing.T) {
	data := pattern(100)
	seg := tcp(hostULID, peerULID, 0x10, nil, data)
	useg := udp(host2, peer2, 5000, data, false)
	tests := []struct {
		name      string
		in        []byte
		want      []byte
		path      rewrite.PathKind
		headDelta int // new start − old start
	}{
		{
			name: "shimmed pair gets locators and payload header",
			in:   ip6(hostULID, peerULID, 6, seg),
			// RFC 5533 §5.2: payload header right after the IPv6 header,
			// Receiver Context Tag = CT(peer); TCP bytes untouched.
			want:      ip6(hostLoc, peerLoc, 140, append([]byte{6, 0, 0xaa, 0x5b, 0x3c, 0x4d, 0x5e, 0x6f}, seg...)),
			path:      rewrite.PathOutboundShim,
			headDelta: -8,
		},
		{
			name:      "header goes after hop-by-hop (RFC 5533 §4.6)",
			in:        ip6(hostULID, peerULID, 6, seg, hbh()),
			want:      ip6(hostLoc, peerLoc, 6, seg, hbh(), shimHdr(tagPeer)),
			path:      rewrite.PathOutboundShim,
			headDelta: -8,
		},
		{
			name:      "header goes after dstopts+routing, before endpoint dstopts",
			in:        ip6(hostULID, peerULID, 6, seg, dstOpts(), routing(), dstOpts()),
			want:      ip6(hostLoc, peerLoc, 6, seg, dstOpts(), routing(), shimHdr(tagPeer), dstOpts()),
			path:      rewrite.PathOutboundShim,
			headDelta: -8,
		},
		{
			name:      "header goes before fragment header",
			in:        ip6(hostULID, peerULID, 6, seg[:24], frag(0)),
			want:      ip6(hostLoc, peerLoc, 6, seg[:24], shimHdr(tagPeer), frag(0)),
			path:      rewrite.PathOutboundShim,
			headDelta: -8,
		},
		{
			name:      "header goes before AH",
			in:        ip6(hostULID, peerULID, 6, seg, hbh(), ah()),
			want:      ip6(hostLoc, peerLoc, 6, seg, hbh(), shimHdr(tagPeer), ah()),
			path:      rewrite.PathOutboundShim,
			headDelta: -8,
		},
		{
			name:      "non-first fragment is shimmed too",
			in:        ip6(hostULID, peerULID, 6, data[:16], frag(1448)),
			want:      ip6(hostLoc, peerLoc, 6, data[:16], shimHdr(tagPeer), frag(1448)),
			path:      rewrite.PathOutboundShim,
			headDelta: -8,
		},
		{
			name: "context on the ULID pair forwards unchanged",
			in:   ip6(host2, peer2, 17, useg),
			want: ip6(host2, peer2, 17, useg),
			path: rewrite.PathPassthrough,
		},
		{
			name: "no context forwards unchanged",
			in:   ip6(hostULID, legacy, 17, useg),
			want: ip6(hostULID, legacy, 17, useg),
			path: rewrite.PathPassthrough,
		},
		{
			name: "host's own shim6 traffic is left alone",
			in:   ip6(hostULID, peerULID, 59, nil, shimHdr(9)),
			want: ip6(hostULID, peerULID, 59, nil, shimHdr(9)),
			path: rewrite.PathPassthrough,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRewriter(t, siteConfig(false))
			buf, start, end := place(tt.in)
			res := r.Process(rewrite.Outbound, buf, start, end, 1)
			if res.Verdict != rewrite.Forward || res.Path != tt.path {
				t.Fatalf("verdict %v path %v reason %v, want forward %v", res.Verdict, res.Path, res.Reason, tt.path)
			}
			if res.Start-start != tt.headDelta || res.End != end {
				t.Fatalf("bounds [%d,%d), want [%d,%d)", res.Start, res.End, start+tt.headDelta, end)
			}
			if diff := cmp.Diff(tt.want, buf[res.Start:res.End]); diff != "" {
				t.Errorf("packet (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInbound(t *testing.T) {
	data := pattern(64)
	seg := tcp(peerULID, hostULID, 0x10, nil, data)
	tests := []struct {
		name   string
		in     []byte
		want   []byte
		path   rewrite.PathKind
		reason rewrite.DropReason
		v      rewrite.Verdict
	}{
		{
			name: "payload header stripped, ULIDs restored",
			in:   ip6(peerLoc, hostLoc, 6, seg, shimHdr(tagLocal)),
			want: ip6(peerULID, hostULID, 6, seg),
			path: rewrite.PathInboundShim,
		},
		{
			name: "accepted alternate locators",
			in:   ip6(peerULID, hostULID, 6, seg, shimHdr(tagLocal)),
			want: ip6(peerULID, hostULID, 6, seg),
			path: rewrite.PathInboundShim,
		},
		{
			name: "hop-by-hop and dstopts before payload header",
			in:   ip6(peerLoc, hostLoc, 6, seg, hbh(), dstOpts(), shimHdr(tagLocal)),
			want: ip6(peerULID, hostULID, 6, seg, hbh(), dstOpts()),
			path: rewrite.PathInboundShim,
		},
		{
			name: "payload header before fragment header",
			in:   ip6(peerLoc, hostLoc, 6, seg[:24], shimHdr(tagLocal), frag(0)),
			want: ip6(peerULID, hostULID, 6, seg[:24], frag(0)),
			path: rewrite.PathInboundShim,
		},
		{
			name: "payload header before AH",
			in:   ip6(peerLoc, hostLoc, 6, seg, shimHdr(tagLocal), ah()),
			want: ip6(peerULID, hostULID, 6, seg, ah()),
			path: rewrite.PathInboundShim,
		},
		{
			name:   "payload header behind a fragment header",
			in:     ip6(peerLoc, hostLoc, 6, seg[:24], frag(0), shimHdr(tagLocal)),
			want:   ip6(peerLoc, hostLoc, 6, seg[:24], frag(0), shimHdr(tagLocal)),
			v:      rewrite.Drop,
			path:   rewrite.PathDropped,
			reason: rewrite.DropFragmentedShim,
		},
		{
			name:   "locator pair not in the context",
			in:     ip6(legacy, hostLoc, 6, seg, shimHdr(tagLocal)),
			want:   ip6(legacy, hostLoc, 6, seg, shimHdr(tagLocal)),
			v:      rewrite.Drop,
			path:   rewrite.PathDropped,
			reason: rewrite.DropLocatorMismatch,
		},
		{
			name:   "local locator not in the context",
			in:     ip6(peerLoc, fbHostLoc, 6, seg, shimHdr(tagLocal)),
			want:   ip6(peerLoc, fbHostLoc, 6, seg, shimHdr(tagLocal)),
			v:      rewrite.Drop,
			path:   rewrite.PathDropped,
			reason: rewrite.DropLocatorMismatch,
		},
		{
			name:   "payload header with Hdr Ext Len 1",
			in:     ip6(peerLoc, hostLoc, 6, append([]byte{1, 0, 0, 0, 0, 0, 0, 0}, seg...), ext{140, []byte{1, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab}}),
			want:   ip6(peerLoc, hostLoc, 6, append([]byte{1, 0, 0, 0, 0, 0, 0, 0}, seg...), ext{140, []byte{1, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab}}),
			v:      rewrite.Drop,
			path:   rewrite.PathDropped,
			reason: rewrite.DropBadPayloadHeader,
		},
		{
			name: "control message diverted unchanged",
			in:   ip6(peerLoc, hostLoc, 59, []byte{0x42, 0, 0xb2, 0xc8, 1, 0x23, 0x45, 0x67, 0x89, 0xab, 0, 0, 0, 0}, ext{140, []byte{1}}),
			want: ip6(peerLoc, hostLoc, 59, []byte{0x42, 0, 0xb2, 0xc8, 1, 0x23, 0x45, 0x67, 0x89, 0xab, 0, 0, 0, 0}, ext{140, []byte{1}}),
			v:    rewrite.Divert,
			path: rewrite.PathControl,
		},
		{
			name: "plain packet passes",
			in:   ip6(peerULID, hostULID, 6, seg),
			want: ip6(peerULID, hostULID, 6, seg),
			path: rewrite.PathPassthrough,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRewriter(t, siteConfig(false))
			buf, start, end := place(tt.in)
			res := r.Process(rewrite.Inbound, buf, start, end, 1)
			if res.Verdict != tt.v || res.Path != tt.path || res.Reason != tt.reason {
				t.Fatalf("got %v/%v/%v, want %v/%v/%v", res.Verdict, res.Path, res.Reason, tt.v, tt.path, tt.reason)
			}
			if diff := cmp.Diff(tt.want, buf[res.Start:res.End]); diff != "" {
				t.Errorf("packet (-want +got):\n%s", diff)
			}
			if tt.v == rewrite.Forward {
				transportOK(t, buf[res.Start:res.End])
			}
			if tt.reason != rewrite.NotDropped {
				if got := r.Stats().Drops[rewrite.Inbound][tt.reason].Load(); got != 1 {
					t.Errorf("drop counter %v = %d, want 1", tt.reason, got)
				}
			}
		})
	}
}

func TestUnknownTag(t *testing.T) {
	r := newRewriter(t, siteConfig(false))
	in := ip6(peerLoc, hostLoc, 17, udp(peerULID, hostULID, 1, pattern(10), false), shimHdr(0x777))
	run := func(now int64) rewrite.Result {
		buf, start, end := place(in)
		return r.Process(rewrite.Inbound, buf, start, end, now)
	}
	res := run(1000)
	want := rewrite.Notice{Kind: rewrite.NoticeUnknownTag, Local: hostLoc, Peer: peerLoc, Tag: 0x777}
	if res.Verdict != rewrite.Drop || res.Reason != rewrite.DropUnknownTag {
		t.Fatalf("got %v/%v", res.Verdict, res.Reason)
	}
	if diff := cmp.Diff(want, res.Notice, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("notice (-want +got):\n%s", diff)
	}
	if res := run(2000); res.Notice.Kind != rewrite.NoNotice || res.Reason != rewrite.DropUnknownTag {
		t.Errorf("second notice within the interval: %+v", res)
	}
	if res := run(1000 + 2e9); res.Notice.Kind != rewrite.NoticeUnknownTag {
		t.Errorf("no notice after the interval: %+v", res)
	}
	st := r.Stats()
	if d, n, s := st.Drops[rewrite.Inbound][rewrite.DropUnknownTag].Load(), st.Notices.Load(), st.Suppressed.Load(); d != 3 || n != 2 || s != 1 {
		t.Errorf("drops %d notices %d suppressed %d, want 3 2 1", d, n, s)
	}
}

func TestTrafficSeenNotice(t *testing.T) {
	r := newRewriter(t, siteConfig(false))
	other := netip.MustParseAddr("2001:db8:f::9")
	in := ip6(hostULID, other, 17, udp(hostULID, other, 1, nil, false))
	run := func(p []byte, now int64) rewrite.Result {
		buf, start, end := place(p)
		return r.Process(rewrite.Outbound, buf, start, end, now)
	}
	res := run(in, 5)
	if res.Notice.Kind != rewrite.NoticeTrafficSeen || res.Notice.Local != hostULID || res.Notice.Peer != other {
		t.Fatalf("notice %+v", res.Notice)
	}
	if res := run(in, 6); res.Notice.Kind != rewrite.NoNotice {
		t.Errorf("not rate limited: %+v", res.Notice)
	}
	// Known non-shim6 peers and link-local destinations are not reported.
	for _, dst := range []netip.Addr{legacy, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1")} {
		if res := run(ip6(host2, dst, 17, udp(host2, dst, 1, nil, false)), 1e12); res.Notice.Kind != rewrite.NoNotice {
			t.Errorf("notice for %v: %+v", dst, res.Notice)
		}
	}
}

// TestRoundTrip sends packets from a host through gateway A (outbound)
// and gateway B (inbound): the peer host must get exactly the bytes the
// host sent, with a transport checksum valid for the ULIDs.
func TestRoundTrip(t *testing.T) {
	a := newRewriter(t, siteConfig(false))
	b := newRewriter(t, peerConfig())
	for _, in := range [][]byte{
		ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, 0x18, nil, pattern(700))),
		ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 9, pattern(33), false)),
		ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 9, pattern(33), true)),
		ip6(hostULID, peerULID, 58, icmpMsg(hostULID, peerULID, 128, 0, 0x10001, pattern(56))),
		ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, 0x10, nil, pattern(5)), hbh()),
	} {
		buf, start, end := place(in)
		ra := a.Process(rewrite.Auto, buf, start, end, 1)
		if ra.Path != rewrite.PathOutboundShim {
			t.Fatalf("outbound path %v", ra.Path)
		}
		rb := b.Process(rewrite.Auto, buf, ra.Start, ra.End, 1)
		if rb.Path != rewrite.PathInboundShim {
			t.Fatalf("inbound path %v", rb.Path)
		}
		got := buf[rb.Start:rb.End]
		if diff := cmp.Diff(in, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		transportOK(t, got)
	}
	ctxA := a.Table().LookupPair(hostULID, peerULID).Stamps()
	ctxB := b.Table().LookupTag(tagPeer).Stamps()
	if ctxA.SentPackets.Load() != 5 || ctxB.ReceivedPackets.Load() != 5 {
		t.Errorf("sent %d received %d, want 5 5", ctxA.SentPackets.Load(), ctxB.ReceivedPackets.Load())
	}
}

func TestStamps(t *testing.T) {
	cfg := siteConfig(false)
	st := new(rewrite.Stamps)
	cfg.Contexts[1].Stamps = st
	r := newRewriter(t, cfg)
	buf, start, end := place(ip6(host2, peer2, 17, udp(host2, peer2, 1, nil, false)))
	r.Process(rewrite.Outbound, buf, start, end, 111)
	// Republish a new table with the same stamps: they carry over.
	tab, err := rewrite.NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Publish(tab)
	buf, start, end = place(ip6(peer2, host2, 17, udp(peer2, host2, 1, nil, false)))
	r.Process(rewrite.Inbound, buf, start, end, 222)
	if st.LastSent.Load() != 111 || st.LastReceived.Load() != 222 || st.SentPackets.Load() != 1 || st.ReceivedPackets.Load() != 1 {
		t.Errorf("stamps sent %d@%d received %d@%d", st.SentPackets.Load(), st.LastSent.Load(), st.ReceivedPackets.Load(), st.LastReceived.Load())
	}
	if r.Table().LookupPair(host2, peer2).Stamps() != st {
		t.Error("table does not hold the given stamps")
	}
	// A shimmed packet that is dropped leaves LastSent alone.
	sh := r.Table().LookupPair(hostULID, peerULID).Stamps()
	big := ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 1, pattern(1460), false))
	buf, start, end = place(big)
	if res := r.Process(rewrite.Outbound, buf, start, end, 333); res.Verdict != rewrite.Reply || sh.LastSent.Load() != 0 {
		t.Errorf("too big: verdict %v last sent %d", res.Verdict, sh.LastSent.Load())
	}
}

func TestMalformed(t *testing.T) {
	good := ip6(peerLoc, hostLoc, 6, tcp(peerULID, hostULID, 0x10, nil, nil), shimHdr(tagLocal))
	cut := func(n int) []byte { return append([]byte(nil), good[:n]...) }
	v4 := append([]byte(nil), good...)
	v4[0] = 0x45
	long := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(long[4:], uint16(len(good)))
	badHbh := ip6(peerLoc, hostLoc, 6, nil, ext{0, []byte{3, 0, 0, 0, 0, 0, 0}})
	jumbo := append([]byte(nil), badHbh...)
	jumbo[4], jumbo[5] = 0, 0
	for name, in := range map[string][]byte{
		"short": cut(39), "ipv4": v4, "payload length beyond packet": long,
		"truncated hop-by-hop": badHbh, "jumbogram": jumbo,
	} {
		t.Run(name, func(t *testing.T) {
			r := newRewriter(t, siteConfig(false))
			buf, start, end := place(in)
			res := r.Process(rewrite.Inbound, buf, start, end, 1)
			if res.Verdict != rewrite.Drop || res.Reason != rewrite.DropMalformed {
				t.Fatalf("got %v/%v", res.Verdict, res.Reason)
			}
			if diff := cmp.Diff(in, buf[start:end]); diff != "" {
				t.Errorf("dropped packet modified (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("trailing bytes are trimmed", func(t *testing.T) {
		r := newRewriter(t, siteConfig(false))
		buf, start, end := place(append(append([]byte(nil), good...), 0, 0, 0, 0))
		res := r.Process(rewrite.Inbound, buf, start, end, 1)
		if res.Verdict != rewrite.Forward || res.End != end-4 {
			t.Fatalf("got %v end %d, want forward end %d", res.Verdict, res.End, end-4)
		}
	})
	t.Run("no headroom", func(t *testing.T) {
		r := newRewriter(t, siteConfig(false))
		in := ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, 0x10, nil, nil))
		buf := append([]byte{1, 2, 3, 4}, in...)
		res := r.Process(rewrite.Outbound, buf, 4, len(buf), 1)
		if res.Verdict != rewrite.Drop || res.Reason != rewrite.DropNoHeadroom {
			t.Fatalf("got %v/%v", res.Verdict, res.Reason)
		}
	})
	t.Run("bad bounds", func(t *testing.T) {
		r := newRewriter(t, siteConfig(false))
		buf, start, end := place(good)
		for _, se := range [][2]int{{-1, end}, {start, len(buf) + 1}, {end, start}} {
			if res := r.Process(rewrite.Inbound, buf, se[0], se[1], 1); res.Reason != rewrite.DropMalformed {
				t.Errorf("bounds %v: %v", se, res.Reason)
			}
		}
	})
}

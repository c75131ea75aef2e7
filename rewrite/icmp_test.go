package rewrite_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/rewrite"
)

func TestMSSClamp(t *testing.T) {
	mss := func(v uint16) []byte { return []byte{2, 4, byte(v >> 8), byte(v)} }
	tests := []struct {
		name      string
		cfg       func(*rewrite.Config)
		dir       rewrite.Direction
		src, dst  string
		flags     byte
		opts      []byte
		wantOpts  []byte
		shimmedIn bool
	}{
		{name: "outbound SYN 1460 → 1432", dir: rewrite.Outbound, flags: 0x02, opts: mss(1460), wantOpts: mss(1432)},
		{name: "MSS at an odd offset", dir: rewrite.Outbound, flags: 0x02, opts: append([]byte{1}, mss(1460)...), wantOpts: append([]byte{1}, mss(1432)...)},
		{name: "after window scale and SACK-permitted", dir: rewrite.Outbound, flags: 0x02, opts: append([]byte{3, 3, 7, 4, 2}, mss(9000)...), wantOpts: append([]byte{3, 3, 7, 4, 2}, mss(1432)...)},
		{name: "small MSS kept", dir: rewrite.Outbound, flags: 0x02, opts: mss(1200), wantOpts: mss(1200)},
		{name: "not a SYN", dir: rewrite.Outbound, flags: 0x10, opts: mss(1460), wantOpts: mss(1460)},
		{name: "inbound SYN-ACK", dir: rewrite.Inbound, flags: 0x12, opts: mss(1460), wantOpts: mss(1432)},
		{name: "inbound shimmed SYN-ACK", dir: rewrite.Inbound, flags: 0x12, opts: mss(1460), wantOpts: mss(1432), shimmedIn: true},
		{name: "clamp MTU from config", cfg: func(c *rewrite.Config) { c.ClampMTU = 1400 }, dir: rewrite.Outbound, flags: 0x02, opts: mss(1460), wantOpts: mss(1332)},
		{name: "option list ends before MSS", dir: rewrite.Outbound, flags: 0x02, opts: append([]byte{0, 0}, mss(1460)...), wantOpts: append([]byte{0, 0}, mss(1460)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := siteConfig(false)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			r := newRewriter(t, cfg)
			src, dst := host2, peer2
			if tt.dir == rewrite.Inbound {
				src, dst = peer2, host2
			}
			in := ip6(src, dst, 6, tcp(src, dst, tt.flags, tt.opts, pattern(9)))
			want := ip6(src, dst, 6, tcp(src, dst, tt.flags, tt.wantOpts, pattern(9)))
			if tt.shimmedIn {
				in = ip6(peerLoc, hostLoc, 6, tcp(peerULID, hostULID, tt.flags, tt.opts, pattern(9)), shimHdr(tagLocal))
				want = ip6(peerULID, hostULID, 6, tcp(peerULID, hostULID, tt.flags, tt.wantOpts, pattern(9)))
			}
			buf, start, end := place(in)
			res := r.Process(tt.dir, buf, start, end, 1)
			got := buf[res.Start:res.End]
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("packet (-want +got):\n%s", diff)
			}
			transportOK(t, got)
		})
	}
	t.Run("shimmed outbound SYN survives the round trip", func(t *testing.T) {
		a, b := newRewriter(t, siteConfig(false)), newRewriter(t, peerConfig())
		buf, start, end := place(ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, 0x02, mss(1460), nil)))
		ra := a.Process(rewrite.Outbound, buf, start, end, 1)
		rb := b.Process(rewrite.Inbound, buf, ra.Start, ra.End, 1)
		want := ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, 0x02, mss(1432), nil))
		if diff := cmp.Diff(want, buf[rb.Start:rb.End]); diff != "" {
			t.Errorf("packet (-want +got):\n%s", diff)
		}
	})
}

func TestPacketTooBig(t *testing.T) {
	udpData := func(total int) []byte { return pattern(total - 48) }
	t.Run("oversized shimmed packet gets PTB with mtu-8", func(t *testing.T) {
		r := newRewriter(t, siteConfig(false))
		in := ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 7, udpData(1500), false))
		buf, start, end := place(in)
		res := r.Process(rewrite.Outbound, buf, start, end, 1)
		if res.Verdict != rewrite.Reply || res.Path != rewrite.PathTooBig || res.Reason != rewrite.DropTooBig {
			t.Fatalf("got %v/%v/%v", res.Verdict, res.Path, res.Reason)
		}
		// RFC 4443 §3.2: type 2, MTU, as much of the packet as fits in
		// 1280 bytes; from the gateway to the host.
		want := ip6(gwAddr, hostULID, 58, icmpMsg(gwAddr, hostULID, 2, 0, 1492, in[:1232]))
		want[7] = 255
		if diff := cmp.Diff(want, buf[res.Start:res.End]); diff != "" {
			t.Errorf("PTB (-want +got):\n%s", diff)
		}
		transportOK(t, buf[res.Start:res.End])
		if r.Stats().Drops[rewrite.Outbound][rewrite.DropTooBig].Load() != 1 {
			t.Error("too_big not counted")
		}
	})
	t.Run("packet that fits with the header passes", func(t *testing.T) {
		r := newRewriter(t, siteConfig(false))
		buf, start, end := place(ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 7, udpData(1492), false)))
		if res := r.Process(rewrite.Outbound, buf, start, end, 1); res.Verdict != rewrite.Forward || res.End-res.Start != 1500 {
			t.Fatalf("got %v, %d bytes", res.Verdict, res.End-res.Start)
		}
	})
	t.Run("quote limited by the buffer", func(t *testing.T) {
		r := newRewriter(t, siteConfig(false))
		in := ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 7, udpData(1500), false))
		buf := make([]byte, headroom+1100)
		copy(buf[headroom:], in) // the caller's buffer ends early
		res := r.Process(rewrite.Outbound, buf, headroom, headroom+1100, 1)
		if res.Verdict != rewrite.Drop || res.Reason != rewrite.DropMalformed {
			t.Fatalf("truncated packet: %v/%v", res.Verdict, res.Reason)
		}
		buf = make([]byte, headroom+1500)
		copy(buf[headroom:], in)
		res = r.Process(rewrite.Outbound, buf, headroom, headroom+1500, 1)
		want := ip6(gwAddr, hostULID, 58, icmpMsg(gwAddr, hostULID, 2, 0, 1492, in[:1232]))
		want[7] = 255
		if diff := cmp.Diff(want, buf[res.Start:res.End]); diff != "" {
			t.Errorf("PTB (-want +got):\n%s", diff)
		}
	})
	t.Run("no ICMP source: silent drop", func(t *testing.T) {
		cfg := siteConfig(false)
		cfg.ICMPSource = netipZero
		r := newRewriter(t, cfg)
		buf, start, end := place(ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 7, udpData(1500), false)))
		if res := r.Process(rewrite.Outbound, buf, start, end, 1); res.Verdict != rewrite.Drop || res.Reason != rewrite.DropTooBig {
			t.Fatalf("got %v/%v", res.Verdict, res.Reason)
		}
	})
	t.Run("no PTB about an ICMPv6 error", func(t *testing.T) {
		r := newRewriter(t, siteConfig(false))
		buf, start, end := place(ip6(hostULID, peerULID, 58, icmpMsg(hostULID, peerULID, 1, 4, 0, pattern(1452))))
		if res := r.Process(rewrite.Outbound, buf, start, end, 1); res.Verdict != rewrite.Drop || res.Reason != rewrite.DropTooBig {
			t.Fatalf("got %v/%v", res.Verdict, res.Reason)
		}
	})
}

func TestICMPErrorTranslation(t *testing.T) {
	// shimmed returns what gateway A sends for orig.
	shimmed := func(orig []byte) []byte {
		a := newRewriter(t, siteConfig(false))
		buf, start, end := place(orig)
		res := a.Process(rewrite.Outbound, buf, start, end, 1)
		if res.Path != rewrite.PathOutboundShim {
			t.Fatalf("setup: path %v", res.Path)
		}
		return append([]byte(nil), buf[res.Start:res.End]...)
	}
	big := ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, 0x10, nil, pattern(1400)))
	small := ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 7, pattern(20), false))
	sBig, sSmall := shimmed(big), shimmed(small)
	pathErr := rewrite.Notice{Kind: rewrite.NoticePathError, Local: hostLoc, Peer: peerLoc, Tag: tagLocal}
	tests := []struct {
		name   string
		in     []byte
		want   []byte
		path   rewrite.PathKind
		notice rewrite.Notice
	}{
		{
			name: "PTB quoting a shimmed packet: ULIDs back, header out, MTU−8 (RFC 5533 §8)",
			in:   ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 2, 0, 1400, sBig[:1232])),
			want: ip6(router, hostULID, 58, icmpMsg(router, hostULID, 2, 0, 1392, big[:1224])),
			path: rewrite.PathICMPError,
		},
		{
			name:   "destination unreachable quoting a whole shimmed packet",
			in:     ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 1, 3, 0, sSmall)),
			want:   ip6(router, hostULID, 58, icmpMsg(router, hostULID, 1, 3, 0, small)),
			path:   rewrite.PathICMPError,
			notice: pathErr,
		},
		{
			name:   "time exceeded tells the engine too",
			in:     ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 3, 0, 0, sSmall)),
			want:   ip6(router, hostULID, 58, icmpMsg(router, hostULID, 3, 0, 0, small)),
			path:   rewrite.PathICMPError,
			notice: pathErr,
		},
		{
			name: "port unreachable is only for the host",
			in:   ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 1, 4, 0, sSmall)),
			want: ip6(router, hostULID, 58, icmpMsg(router, hostULID, 1, 4, 0, small)),
			path: rewrite.PathICMPError,
		},
		{
			name: "quote cut inside the payload header is left alone",
			in:   ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 1, 3, 0, sSmall[:44])),
			want: ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 1, 3, 0, sSmall[:44])),
			path: rewrite.PathPassthrough,
		},
		{
			name: "quote with a tag of no context is left alone",
			in:   ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 1, 3, 0, ip6(hostLoc, peerLoc, 17, pattern(12), shimHdr(99)))),
			want: ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 1, 3, 0, ip6(hostLoc, peerLoc, 17, pattern(12), shimHdr(99)))),
			path: rewrite.PathPassthrough,
		},
		{
			name: "quote of an unshimmed packet is left alone",
			in:   ip6(router, hostULID, 58, icmpMsg(router, hostULID, 3, 0, 0, small)),
			want: ip6(router, hostULID, 58, icmpMsg(router, hostULID, 3, 0, 0, small)),
			path: rewrite.PathPassthrough,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRewriter(t, siteConfig(false))
			buf, start, end := place(tt.in)
			res := r.Process(rewrite.Inbound, buf, start, end, 1)
			if res.Verdict != rewrite.Forward || res.Path != tt.path {
				t.Fatalf("got %v/%v", res.Verdict, res.Path)
			}
			if diff := cmp.Diff(tt.want, buf[res.Start:res.End]); diff != "" {
				t.Errorf("packet (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.notice, res.Notice, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("notice (-want +got):\n%s", diff)
			}
			transportOK(t, buf[res.Start:res.End])
		})
	}
	t.Run("bad ICMP checksum is not laundered", func(t *testing.T) {
		r := newRewriter(t, siteConfig(false))
		in := ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 1, 3, 0, sSmall))
		binary.BigEndian.PutUint16(in[42:], binary.BigEndian.Uint16(in[42:])^1)
		buf, start, end := place(in)
		res := r.Process(rewrite.Inbound, buf, start, end, 1)
		if res.Path == rewrite.PathICMPError {
			t.Fatal("translated an error with a bad checksum")
		}
		if diff := cmp.Diff(in, buf[res.Start:res.End]); diff != "" {
			t.Errorf("packet (-want +got):\n%s", diff)
		}
	})
}

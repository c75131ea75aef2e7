package rewrite_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
)

const (
	tagFork     shim6.ContextTag = 0x00F0F0F0F0F1 // CT(local) of the forked context
	tagForkPeer shim6.ContextTag = 0x00E0E0E0E0E1 // CT(peer) of the forked context
)

// forkedContext is a context the peer forked off hostULID ↔ peerULID
// (FII ≠ 0, RFC 5533 §4.2): same ULID pair as siteConfig's first context,
// its own tags and current pair (the ULIDs), the peer's locators accepted.
func forkedContext() rewrite.ContextConfig {
	return rewrite.ContextConfig{
		LocalULID: hostULID, PeerULID: peerULID, LocalTag: tagFork, PeerTag: tagForkPeer,
		LocalLocator: hostULID, PeerLocator: peerULID,
		LocalLocators: []netip.Addr{hostULID, hostLoc}, PeerLocators: []netip.Addr{peerULID, peerLoc},
		InboundOnly: true,
	}
}

// forkConfig is siteConfig with the forked context, placed first or last
// (NewTable must not depend on the order).
func forkConfig(first bool) rewrite.Config {
	cfg := siteConfig(false)
	if first {
		cfg.Contexts = slices.Insert(cfg.Contexts, 0, forkedContext())
	} else {
		cfg.Contexts = append(cfg.Contexts, forkedContext())
	}
	return cfg
}

func TestForkedTable(t *testing.T) {
	for _, first := range []bool{true, false} {
		tab, err := rewrite.NewTable(forkConfig(first))
		if err != nil {
			t.Fatal(err)
		}
		def, fork := tab.LookupPair(hostULID, peerULID), tab.LookupTag(tagFork)
		if def == nil || def.Config().LocalTag != tagLocal || def.InboundOnly() {
			t.Errorf("first=%v: pair lookup found %+v, want the default context", first, def)
		}
		if fork == nil || fork == def || !fork.InboundOnly() || fork.Config().PeerTag != tagForkPeer {
			t.Errorf("first=%v: tag lookup found %+v, want the forked context", first, fork)
		}
		if tab.LookupTag(tagLocal) != def || tab.Len() != 3 {
			t.Errorf("first=%v: default by tag %v, len %d, want 3", first, tab.LookupTag(tagLocal) == def, tab.Len())
		}
	}
}

func TestForkedTableErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(*rewrite.Config)
		want   error
	}{
		{"forked context not inbound-only", func(c *rewrite.Config) {
			c.Contexts[len(c.Contexts)-1].InboundOnly = false
		}, rewrite.ErrDuplicate},
		{"second sending context besides the fork", func(c *rewrite.Config) {
			d := c.Contexts[0]
			d.LocalTag = 55
			c.Contexts = append(c.Contexts, d)
		}, rewrite.ErrDuplicate},
		{"fork reuses the default context's CT(local)", func(c *rewrite.Config) {
			c.Contexts[len(c.Contexts)-1].LocalTag = tagLocal
		}, rewrite.ErrDuplicate},
		{"fork with a bad locator", func(c *rewrite.Config) {
			c.Contexts[len(c.Contexts)-1].PeerLocators = []netip.Addr{netip.MustParseAddr("ff02::1")}
		}, rewrite.ErrBadConfig},
		{"two forks of one pair", func(c *rewrite.Config) {
			d := forkedContext()
			d.LocalTag = 0x99
			c.Contexts = append(c.Contexts, d)
		}, nil},
		{"fork without a default context", func(c *rewrite.Config) {
			c.Contexts = c.Contexts[1:]
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := forkConfig(false)
			tt.change(&cfg)
			if _, err := rewrite.NewTable(cfg); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestForkedInbound(t *testing.T) {
	seg := tcp(peerULID, hostULID, 0x10, nil, pattern(64))
	tests := []struct {
		name   string
		in     []byte
		want   []byte
		path   rewrite.PathKind
		reason rewrite.DropReason
		fork   uint64 // received packets stamped on the forked context
	}{
		{
			name: "forked tag on the ULID pair",
			in:   ip6(peerULID, hostULID, 6, seg, shimHdr(tagFork)),
			want: ip6(peerULID, hostULID, 6, seg),
			path: rewrite.PathInboundShim, fork: 1,
		},
		{
			name: "forked tag on accepted locators",
			in:   ip6(peerLoc, hostLoc, 6, seg, shimHdr(tagFork)),
			want: ip6(peerULID, hostULID, 6, seg),
			path: rewrite.PathInboundShim, fork: 1,
		},
		{
			name:   "forked tag on a foreign locator",
			in:     ip6(legacy, hostLoc, 6, seg, shimHdr(tagFork)),
			want:   ip6(legacy, hostLoc, 6, seg, shimHdr(tagFork)),
			path:   rewrite.PathDropped,
			reason: rewrite.DropLocatorMismatch,
		},
		{
			// RFC 5533 §12.1: without the header the pair's default
			// context is the one in use.
			name: "plain packet on the pair stamps the default context",
			in:   ip6(peerULID, hostULID, 6, seg),
			want: ip6(peerULID, hostULID, 6, seg),
			path: rewrite.PathPassthrough,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRewriter(t, forkConfig(true))
			buf, start, end := place(tt.in)
			res := r.Process(rewrite.Inbound, buf, start, end, 7)
			if res.Path != tt.path || res.Reason != tt.reason || res.Notice.Kind != rewrite.NoNotice {
				t.Fatalf("got %v/%v notice %v, want %v/%v", res.Path, res.Reason, res.Notice.Kind, tt.path, tt.reason)
			}
			if diff := cmp.Diff(tt.want, buf[res.Start:res.End]); diff != "" {
				t.Errorf("packet (-want +got):\n%s", diff)
			}
			if tt.reason == rewrite.NotDropped {
				transportOK(t, buf[res.Start:res.End])
			}
			tab := r.Table()
			fork, def := tab.LookupTag(tagFork).Stamps(), tab.LookupPair(hostULID, peerULID).Stamps()
			wantDef := uint64(0)
			if tt.path == rewrite.PathPassthrough {
				wantDef = 1
			}
			if got := fork.ReceivedPackets.Load(); got != tt.fork {
				t.Errorf("forked context received %d, want %d", got, tt.fork)
			}
			if tt.fork == 1 && fork.LastReceived.Load() != 7 {
				t.Errorf("forked context last received %d, want 7", fork.LastReceived.Load())
			}
			if got := def.ReceivedPackets.Load(); got != wantDef {
				t.Errorf("default context received %d, want %d", got, wantDef)
			}
		})
	}
}

func TestForkedOutbound(t *testing.T) {
	for _, first := range []bool{true, false} {
		r := newRewriter(t, forkConfig(first))
		seg := tcp(hostULID, peerULID, 0x10, nil, pattern(100))
		buf, start, end := place(ip6(hostULID, peerULID, 6, seg))
		res := r.Process(rewrite.Outbound, buf, start, end, 9)
		// The default context's pair and CT(peer) 0x2A5B3C4D5E6F (P bit
		// set), never the fork's.
		want := ip6(hostLoc, peerLoc, 140, append([]byte{6, 0, 0xaa, 0x5b, 0x3c, 0x4d, 0x5e, 0x6f}, seg...))
		if res.Path != rewrite.PathOutboundShim {
			t.Fatalf("first=%v: path %v", first, res.Path)
		}
		if diff := cmp.Diff(want, buf[res.Start:res.End]); diff != "" {
			t.Errorf("first=%v: packet (-want +got):\n%s", first, diff)
		}
		tab := r.Table()
		if n := tab.LookupPair(hostULID, peerULID).Stamps().SentPackets.Load(); n != 1 {
			t.Errorf("first=%v: default context sent %d, want 1", first, n)
		}
		if n := tab.LookupTag(tagFork).Stamps().SentPackets.Load(); n != 0 {
			t.Errorf("first=%v: forked context sent %d, want 0", first, n)
		}
	}
}

// A fork alone (its default context gone) leaves the pair's outbound
// packets untouched and still strips what arrives on its tag.
func TestForkWithoutDefault(t *testing.T) {
	cfg := forkConfig(false)
	cfg.Contexts = cfg.Contexts[1:]
	r := newRewriter(t, cfg)
	out := ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 1, pattern(20), false))
	buf, start, end := place(out)
	if res := r.Process(rewrite.Outbound, buf, start, end, 1); res.Path != rewrite.PathPassthrough || !slices.Equal(buf[res.Start:res.End], out) {
		t.Errorf("outbound: path %v, packet changed %v", res.Path, !slices.Equal(buf[res.Start:res.End], out))
	}
	seg := udp(peerULID, hostULID, 1, pattern(20), false)
	buf, start, end = place(ip6(peerLoc, hostLoc, 17, seg, shimHdr(tagFork)))
	res := r.Process(rewrite.Inbound, buf, start, end, 1)
	if diff := cmp.Diff(ip6(peerULID, hostULID, 17, seg), buf[res.Start:res.End]); res.Path != rewrite.PathInboundShim || diff != "" {
		t.Errorf("inbound: path %v, packet (-want +got):\n%s", res.Path, diff)
	}
}

// ICMPv6 errors quote packets we sent; none carries the fork's CT(peer),
// so such a quote is not translated (RFC 5533 §8).
func TestForkedICMPErrorNotTranslated(t *testing.T) {
	r := newRewriter(t, forkConfig(true))
	in := ip6(router, hostULID, 58, icmpMsg(router, hostULID, 1, 3, 0, ip6(hostULID, peerULID, 17, pattern(20), shimHdr(tagForkPeer))))
	buf, start, end := place(in)
	res := r.Process(rewrite.Inbound, buf, start, end, 1)
	if res.Path == rewrite.PathICMPError || res.Notice.Kind != rewrite.NoNotice {
		t.Errorf("path %v notice %v, want no translation", res.Path, res.Notice.Kind)
	}
	if diff := cmp.Diff(in, buf[res.Start:res.End]); diff != "" {
		t.Errorf("packet (-want +got):\n%s", diff)
	}
}

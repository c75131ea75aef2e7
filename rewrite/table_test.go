package rewrite_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
)

func TestNewTableErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(*rewrite.Config)
		want   error
	}{
		{"duplicate pair", func(c *rewrite.Config) {
			d := c.Contexts[0]
			d.LocalTag = 55
			c.Contexts = append(c.Contexts, d)
		}, rewrite.ErrDuplicate},
		{"duplicate local tag", func(c *rewrite.Config) {
			d := c.Contexts[0]
			d.PeerULID = legacy
			c.Contexts = append(c.Contexts, d)
		}, rewrite.ErrDuplicate},
		{"tag beyond 47 bits", func(c *rewrite.Config) { c.Contexts[0].PeerTag = shim6.MaxTag + 1 }, rewrite.ErrBadConfig},
		{"multicast locator", func(c *rewrite.Config) { c.Contexts[0].PeerLocator = netip.MustParseAddr("ff02::1") }, rewrite.ErrBadConfig},
		{"ipv4 ULID", func(c *rewrite.Config) { c.Contexts[0].LocalULID = netip.MustParseAddr("192.0.2.1") }, rewrite.ErrBadConfig},
		{"uplink mtu below 1280", func(c *rewrite.Config) { c.Uplinks[0].MTU = 1000 }, rewrite.ErrBadConfig},
		{"clamp mtu below 1280", func(c *rewrite.Config) { c.ClampMTU = 576 }, rewrite.ErrBadConfig},
		{"duplicate fallback locator", func(c *rewrite.Config) {
			c.Fallback = append(c.Fallback, rewrite.FallbackEntry{ULID: host2, Locator: fbHostLoc})
		}, rewrite.ErrDuplicate},
		{"fallback locator is a ULID", func(c *rewrite.Config) {
			c.Fallback = append(c.Fallback, rewrite.FallbackEntry{ULID: host2, Locator: fbHost})
		}, rewrite.ErrDuplicate},
		{"too many alternates", func(c *rewrite.Config) {
			for i := range rewrite.MaxAlternates {
				c.Fallback = append(c.Fallback, rewrite.FallbackEntry{ULID: fbHost, Locator: netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 0, 0xb, 0, 2, 15: byte(i)})})
			}
		}, rewrite.ErrBadConfig},
		{"bad icmp source", func(c *rewrite.Config) { c.ICMPSource = netip.MustParseAddr("::") }, rewrite.ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := siteConfig(false)
			tt.change(&cfg)
			if _, err := rewrite.NewTable(cfg); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTableLookups(t *testing.T) {
	tab, err := rewrite.NewTable(siteConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	c := tab.LookupPair(hostULID, peerULID)
	if c == nil || tab.LookupTag(tagLocal) != c || !c.Shimmed() || c.MTU() != 1500 || c.Stamps() == nil {
		t.Fatalf("context lookups: %+v", c)
	}
	if c2 := tab.LookupPair(host2, peer2); c2 == nil || c2.Shimmed() {
		t.Errorf("ULID-pair context: %+v", c2)
	}
	if tab.LookupPair(peerULID, hostULID) != nil || tab.LookupTag(tagPeer) != nil {
		t.Error("lookup matched the reverse pair or CT(peer)")
	}
	if tab.Len() != 2 || tab.MSS() != 1432 {
		t.Errorf("len %d mss %d", tab.Len(), tab.MSS())
	}
	for a, want := range map[string]bool{"2001:db8:a:1::99": true, "2001:db8:b:1::1": true, "2001:db8:a:2::1": false, "2001:db8:c:1::20": false} {
		if got := tab.IsLocalAddr(netip.MustParseAddr(a)); got != want {
			t.Errorf("IsLocalAddr(%s) = %v", a, got)
		}
	}
	out := ip6(hostULID, peerULID, 59, nil)
	in := ip6(peerULID, hostULID, 59, nil)
	if tab.DirectionOf(out) != rewrite.Outbound || tab.DirectionOf(in) != rewrite.Inbound || tab.DirectionOf(out[:20]) != rewrite.Inbound {
		t.Error("DirectionOf")
	}
	if diff := cmp.Diff([]string{"not_dropped", "malformed", "no_headroom", "too_big", "unknown_tag", "locator_mismatch", "bad_payload_header", "fragmented_shim"},
		func() (s []string) {
			for r := range rewrite.NumDropReasons {
				s = append(s, r.String())
			}
			return s
		}()); diff != "" {
		t.Errorf("drop reason names (-want +got):\n%s", diff)
	}
}

// randomPacket builds a packet from hostULID to peerULID with random
// extension headers, upper layer and size.
func randomPacket(rng *rand.Rand) []byte {
	var exts []ext
	if rng.IntN(4) == 0 {
		exts = append(exts, hbh())
	}
	if rng.IntN(4) == 0 {
		exts = append(exts, dstOpts(), routing())
	}
	if rng.IntN(4) == 0 {
		exts = append(exts, frag(0))
	}
	if rng.IntN(4) == 0 {
		exts = append(exts, dstOpts())
	}
	data := make([]byte, rng.IntN(1380)) // + ≤ 40 B extension headers + TCP + shim ≤ 1500
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	switch rng.IntN(4) {
	case 0:
		return ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, 0x18, nil, data), exts...)
	case 1:
		return ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 9, data, rng.IntN(2) == 0), exts...)
	case 2:
		return ip6(hostULID, peerULID, 58, icmpMsg(hostULID, peerULID, 128, 0, 1, data), exts...)
	}
	return ip6(hostULID, peerULID, 253, data, exts...)
}

// TestInsertStripProperty: outbound at gateway A followed by inbound at
// gateway B gives back the exact bytes, for random packets.
func TestInsertStripProperty(t *testing.T) {
	a, b := newRewriter(t, siteConfig(false)), newRewriter(t, peerConfig())
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		in := randomPacket(rng)
		buf, start, end := place(in)
		ra := a.Process(rewrite.Outbound, buf, start, end, 1)
		if ra.Path != rewrite.PathOutboundShim || ra.End-ra.Start != len(in)+8 {
			t.Fatalf("#%d outbound: %v, %d bytes", i, ra.Path, ra.End-ra.Start)
		}
		rb := b.Process(rewrite.Inbound, buf, ra.Start, ra.End, 1)
		if rb.Path != rewrite.PathInboundShim {
			t.Fatalf("#%d inbound: %v/%v", i, rb.Path, rb.Reason)
		}
		if got := buf[rb.Start:rb.End]; !bytes.Equal(in, got) {
			t.Fatalf("#%d round trip (-want +got):\n%s", i, cmp.Diff(in, got))
		}
	}
}

// TestConcurrentPublish rewrites in several goroutines while the table is
// republished; run with -race.
func TestConcurrentPublish(t *testing.T) {
	r := newRewriter(t, siteConfig(false))
	stamps := r.Table().LookupPair(hostULID, peerULID).Stamps()
	const perWorker = 3000
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var in []byte
			if w%2 == 0 {
				in = ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, 1, pattern(100), false))
			} else {
				in = ip6(peerLoc, hostLoc, 17, udp(peerULID, hostULID, 1, pattern(100), false), shimHdr(tagLocal))
			}
			buf := make([]byte, 64+len(in))
			for i := range perWorker {
				copy(buf[32:], in)
				res := r.Process(rewrite.Auto, buf, 32, 32+len(in), int64(i))
				if res.Path != rewrite.PathOutboundShim && res.Path != rewrite.PathInboundShim {
					errs <- res.Path.String()
					return
				}
			}
		}()
	}
	for i := range 300 {
		cfg := siteConfig(i%2 == 0)
		cfg.Contexts[0].Stamps = stamps
		tab, err := rewrite.NewTable(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.Publish(tab)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("unexpected path %s", e)
	}
	if got := stamps.SentPackets.Load() + stamps.ReceivedPackets.Load(); got != 4*perWorker {
		t.Errorf("stamped %d packets, want %d", got, 4*perWorker)
	}
}

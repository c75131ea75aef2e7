package gateway

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/lan/slaac"
	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
)

// TestDataplaneSLAACTranslatesAroundTheShim checks the order of the two
// rewrites: a SLAAC host's packet gets its entry's ULID before the shim6
// rewriter looks for a context, and an inbound packet is restored to the
// ULID by the rewriter before the translator gives it back to the host.
func TestDataplaneSLAACTranslatesAroundTheShim(t *testing.T) {
	lanA, lanB := netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")
	book, err := hba.NewBook([]byte("0123456789abcdef"), []netip.Prefix{lanA, lanB}, 4)
	if err != nil {
		t.Fatal(err)
	}
	ulid, loc := book.Entry(0).Addresses[0], book.Entry(0).Addresses[1]
	tbl, err := rewrite.NewTable(rewrite.Config{
		SitePrefixes: []netip.Prefix{lanA, lanB},
		Uplinks: []rewrite.Uplink{{Prefix: netip.MustParsePrefix("2001:db8:a::/48"), MTU: 1500},
			{Prefix: netip.MustParsePrefix("2001:db8:b::/48"), MTU: 1500}},
		Contexts: []rewrite.ContextConfig{{
			LocalULID: ulid, PeerULID: dpPeer, LocalTag: dpTagLocal, PeerTag: dpTagPeer,
			LocalLocator: loc, PeerLocator: dpPeerLoc,
			LocalLocators: []netip.Addr{ulid, loc}, PeerLocators: []netip.Addr{dpPeer, dpPeerLoc},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := slaac.DefaultConfig()
	cfg.Prefix = netip.MustParsePrefix("2001:db8:a:5::/64")
	cfg.StateFile = filepath.Join(t.TempDir(), "slaac.json")
	tr, err := slaac.New(cfg, book, slaac.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := newDPRig(t, 8, false)
	r.dp.rw.Publish(tbl)
	r.dp.SetSLAAC(tr)

	host := netip.MustParseAddr("2001:db8:a:5::7")
	r.dev.Inbound <- udpPacket(host, dpPeer, "hello")
	got := r.out(t)
	src, dst, ok := isShimmed(got)
	if !ok || src != loc || dst != dpPeerLoc {
		t.Fatalf("outbound not shimmed on the entry's context %v→%v: %x", src, dst, got)
	}
	// The peer restores the ULIDs; the UDP checksum must hold for them.
	if want := udpPacket(ulid, dpPeer, "hello")[40:]; !bytes.Equal(got[48:], want) {
		t.Fatalf("payload %x, want %x (checksum for the ULID)", got[48:], want)
	}
	if m := tr.Mappings(); len(m) != 1 || m[0].Host != host || m[0].ULID != ulid {
		t.Fatalf("mappings %+v, want %v → %v", m, host, ulid)
	}

	in := make([]byte, 48, 48+16)
	shim6.PutIPv6Header(in, dpPeerLoc, loc, shim6.ProtocolNumber, 8+8+2)
	shim6.PutPayloadHeader(in[40:48], 17, dpTagLocal)
	in = append(in, udpPacket(dpPeer, ulid, "hi")[40:]...)
	r.dev.Inbound <- in
	if back, want := r.out(t), udpPacket(dpPeer, host, "hi"); !bytes.Equal(back, want) {
		t.Fatalf("inbound\n%x\nwant\n%x", back, want)
	}
}

package fastpath

import (
	"net/netip"
	"testing"

	"github.com/shim6gw/shim6gw/rewrite"
)

// fuzzConfig derives a table from sel: which contexts are shimmed, a
// forked context, uplink A down, a smaller uplink MTU, the peer's side.
func fuzzConfig(sel uint8) rewrite.Config {
	if sel&0x80 != 0 {
		return peerConfig()
	}
	cfg := siteConfig(sel&1 != 0, sel&2 != 0)
	if sel&4 != 0 {
		cfg.Uplinks[1].MTU = 1280
	}
	i := len(cfg.Contexts) - 2 // the shimmed context
	if sel&8 != 0 {
		cfg.Contexts[i].LocalLocator, cfg.Contexts[i].PeerLocator = hostULID, peerULID
	}
	if sel&16 != 0 {
		cfg.Contexts[i].LocalLocator = hostULID // shimmed, new pair
	}
	if sel&32 != 0 {
		cfg.Contexts[i].PeerLocators = []netip.Addr{legacy}
	}
	return cfg
}

// FuzzProgramMatchesRewrite feeds random packets and tables to the
// program and to rewrite.Rewriter: whatever the program forwards, the Go
// path forwards with the same bytes; everything else it hands over
// unchanged (pair.run checks both).
func FuzzProgramMatchesRewrite(f *testing.F) {
	seg := tcp(hostULID, peerULID, 0x10, nil, pattern(40))
	for i, s := range [][]byte{
		ip6(hostULID, peerULID, 6, seg),
		ip6(host2, peer2, 17, udp(host2, peer2, pattern(30), false)),
		ip6(peerLoc, hostLoc, 6, seg, shimHdr(tagLocal)),
		ip6(peerULID, hostULID, 17, udp(peerULID, hostULID, nil, true), shimHdr(tagLocal)),
		ip6(peerLoc, hostLoc, 6, seg, shimHdr(tagFork)),
		ip6(hostLoc, peerLoc, 6, seg, shimHdr(tagPeer)),
		ip6(peerULID, hostULID, 6, seg),
		ip6(peerLoc, hostLoc, 59, pattern(8), ext{140, []byte{1, 0x42, 0, 0, 0, 0, 0}}),
		ip6(legacy, fbHostLoc, 17, udp(legacy, fbHostLoc, pattern(9), false)),
		ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 2, 0, 1400, ip6(hostLoc, peerLoc, 17, pattern(20), shimHdr(tagPeer)))),
		ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, pattern(1460), false)),
	} {
		f.Add(s, uint8(i*37))
	}
	p := loadTestRun(f)
	pp := newPair(f, p, fuzzConfig(0))
	f.Fuzz(func(t *testing.T, pkt []byte, sel uint8) {
		if len(pkt) > 4000 {
			return
		}
		pp.publish(t, fuzzConfig(sel))
		pp.run(t, pkt)
	})
}

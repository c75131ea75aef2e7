package fastpath

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/shim6gw/shim6gw/internal/checksum"
	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
)

// The sites of package rewrite's tests, so that the program runs on the
// same packets and tables: site 1 has uplinks A (2001:db8:a::/48) and B
// (2001:db8:b::/48), the peer site ULIDs under 2001:db8:c:: and locators
// under 2001:db8:d::.
var (
	hostULID  = netip.MustParseAddr("2001:db8:a:1::10")
	hostLoc   = netip.MustParseAddr("2001:db8:b:1::10")
	peerULID  = netip.MustParseAddr("2001:db8:c:1::20")
	peerLoc   = netip.MustParseAddr("2001:db8:d:1::20")
	host2     = netip.MustParseAddr("2001:db8:a:1::11")
	peer2     = netip.MustParseAddr("2001:db8:c:1::21")
	fbHost    = netip.MustParseAddr("2001:db8:a:1::30")
	fbHostLoc = netip.MustParseAddr("2001:db8:b:1::30")
	legacy    = netip.MustParseAddr("2001:db8:e::1")
	gwAddr    = netip.MustParseAddr("2001:db8:b::1")
	router    = netip.MustParseAddr("2001:db8:ff::1")
)

const (
	tagLocal    shim6.ContextTag = 0x0123456789AB
	tagPeer     shim6.ContextTag = 0x2A5B3C4D5E6F
	tagFork     shim6.ContextTag = 0x00F0F0F0F0F1
	tagForkPeer shim6.ContextTag = 0x00E0E0E0E0E1
)

// siteConfig is gateway A's table: a shimmed context, one on its ULID
// pair, a fallback host, optionally uplink A down and a forked context.
func siteConfig(aDown, fork bool) rewrite.Config {
	cfg := rewrite.Config{
		SitePrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")},
		Uplinks: []rewrite.Uplink{
			{Prefix: netip.MustParsePrefix("2001:db8:a::/48"), MTU: 1500, Down: aDown},
			{Prefix: netip.MustParsePrefix("2001:db8:b::/48"), MTU: 1500},
		},
		ICMPSource: gwAddr,
		Contexts: []rewrite.ContextConfig{
			{
				LocalULID: hostULID, PeerULID: peerULID, LocalTag: tagLocal, PeerTag: tagPeer,
				LocalLocator: hostLoc, PeerLocator: peerLoc,
				LocalLocators: []netip.Addr{hostULID, hostLoc}, PeerLocators: []netip.Addr{peerULID, peerLoc},
			},
			{LocalULID: host2, PeerULID: peer2, LocalTag: 7, PeerTag: 8, LocalLocator: host2, PeerLocator: peer2},
		},
		Fallback:     []rewrite.FallbackEntry{{ULID: fbHost, Locator: fbHostLoc}},
		NoShim6Peers: []netip.Addr{legacy},
	}
	if fork {
		cfg.Contexts = slices.Insert(cfg.Contexts, 0, rewrite.ContextConfig{
			LocalULID: hostULID, PeerULID: peerULID, LocalTag: tagFork, PeerTag: tagForkPeer,
			LocalLocator: hostULID, PeerLocator: peerULID,
			LocalLocators: []netip.Addr{hostULID, hostLoc}, PeerLocators: []netip.Addr{peerULID, peerLoc},
			InboundOnly: true,
		})
	}
	return cfg
}

// peerConfig is the mirror context at the peer's gateway.
func peerConfig() rewrite.Config {
	return rewrite.Config{
		SitePrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:c:1::/64"), netip.MustParsePrefix("2001:db8:d:1::/64")},
		Uplinks: []rewrite.Uplink{
			{Prefix: netip.MustParsePrefix("2001:db8:c::/48"), MTU: 1500},
			{Prefix: netip.MustParsePrefix("2001:db8:d::/48"), MTU: 1500},
		},
		Contexts: []rewrite.ContextConfig{{
			LocalULID: peerULID, PeerULID: hostULID, LocalTag: tagPeer, PeerTag: tagLocal,
			LocalLocator: peerLoc, PeerLocator: hostLoc,
			LocalLocators: []netip.Addr{peerULID, peerLoc}, PeerLocators: []netip.Addr{hostULID, hostLoc},
		}},
	}
}

// ext is an extension header: its protocol number and its bytes after
// the Next Header octet.
type ext struct {
	proto uint8
	body  []byte
}

func hbh() ext     { return ext{0, []byte{0, 1, 4, 0, 0, 0, 0}} }
func dstOpts() ext { return ext{60, []byte{0, 1, 4, 0, 0, 0, 0}} }
func routing() ext { return ext{43, []byte{0, 4, 0, 0, 0, 0, 0}} }
func ah() ext      { return ext{51, []byte{1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1}} }
func frag(off uint16) ext {
	return ext{44, []byte{0, byte(off >> 8), byte(off), 0, 0, 0, 1}}
}
func shimHdr(tag shim6.ContextTag) ext {
	var b [8]byte
	shim6.PutPayloadHeader(b[:], 0, tag)
	return ext{140, b[1:]}
}

// ip6 builds an IPv6 packet with the extension headers and an upper
// layer of protocol ulp.
func ip6(src, dst netip.Addr, ulp uint8, payload []byte, exts ...ext) []byte {
	var body []byte
	for i, e := range exts {
		next := ulp
		if i+1 < len(exts) {
			next = exts[i+1].proto
		}
		body = append(append(body, next), e.body...)
	}
	body = append(body, payload...)
	first := ulp
	if len(exts) > 0 {
		first = exts[0].proto
	}
	p := make([]byte, 40, 40+len(body))
	shim6.PutIPv6Header(p, src, dst, first, len(body))
	return append(p, body...)
}

func cksum(src, dst netip.Addr, proto uint8, seg []byte, off int) {
	seg[off], seg[off+1] = 0, 0
	ck := checksum.Checksum(seg, checksum.PseudoHeader(src, dst, uint32(len(seg)), proto))
	if ck == 0 && proto == 17 {
		ck = 0xffff
	}
	binary.BigEndian.PutUint16(seg[off:], ck)
}

func tcp(src, dst netip.Addr, flags byte, opts, data []byte) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	seg := make([]byte, 20+len(opts)+len(data))
	binary.BigEndian.PutUint16(seg[0:], 40000)
	binary.BigEndian.PutUint16(seg[2:], 443)
	seg[12] = byte((20+len(opts))/4) << 4
	seg[13] = flags
	binary.BigEndian.PutUint16(seg[14:], 65535)
	copy(seg[20:], opts)
	copy(seg[20+len(opts):], data)
	cksum(src, dst, 6, seg, 16)
	return seg
}

func udp(src, dst netip.Addr, data []byte, zero bool) []byte {
	seg := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(seg[0:], 4000)
	binary.BigEndian.PutUint16(seg[2:], 53)
	binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	copy(seg[8:], data)
	if !zero {
		cksum(src, dst, 17, seg, 6)
	}
	return seg
}

func icmpMsg(src, dst netip.Addr, typ, code uint8, word uint32, data []byte) []byte {
	m := make([]byte, 8+len(data))
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint32(m[4:], word)
	copy(m[8:], data)
	cksum(src, dst, 58, m, 2)
	return m
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// mss is a TCP MSS option.
func mss(v uint16) []byte { return []byte{2, 4, byte(v >> 8), byte(v)} }

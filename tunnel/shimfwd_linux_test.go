package tunnel_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
	"github.com/shim6gw/shim6gw/tunnel"
)

// shimTopo is client — gw1 — gw2 — server, IPv6 only. Between the
// gateways, packets of the client/server context carry the locators
// fd00:6:a::2 (client) and fd00:6:b::2 (server) and the Shim6 payload
// header; each gateway's forwarder (TUN + rewrite with a static table)
// shims what its LAN host sends and strips what comes back, so the hosts
// only ever see their ULIDs:
//
//	client c0 fd00:5:a::2 ─ g0 [gw1] m0 fd00:5:c::1 ─ m1 fd00:5:c::2 [gw2] g1 ─ s0 fd00:5:b::2 server
type shimTopo struct {
	chain
	g1, g2 string
}

var (
	clientLoc = netip.MustParseAddr("fd00:6:a::2")
	serverLoc = netip.MustParseAddr("fd00:6:b::2")
)

const (
	clientTag shim6.ContextTag = 0x0a0a0a0a0a0a // CT at gw1
	serverTag shim6.ContextTag = 0x0b0b0b0b0b0b // CT at gw2
)

func newShimTopo(t testing.TB, tag string) *shimTopo {
	t.Helper()
	c, g1, g2, s := newNS(t, tag+"c"), newNS(t, tag+"g"), newNS(t, tag+"h"), newNS(t, tag+"s")
	veth(t, c, "c0", "fd00:5:a::2/64", g1, "g0", "fd00:5:a::1/64")
	veth(t, g1, "m0", "fd00:5:c::1/64", g2, "m1", "fd00:5:c::2/64")
	veth(t, s, "s0", "fd00:5:b::2/64", g2, "g1", "fd00:5:b::1/64")
	routeVia(t, c, "fd00:5:a::1", "default")
	routeVia(t, s, "fd00:5:b::1", "default")
	// ULIDs (kernel forwarding) and locators (shimmed) across the middle.
	routeVia(t, g1, "fd00:5:c::2", "fd00:5:b::/64", "fd00:6:b::/64")
	routeVia(t, g2, "fd00:5:c::1", "fd00:5:a::/64", "fd00:6:a::/64")
	return &shimTopo{chain: newChain(t, c, s, gateway{g1, "g0", "m0"}, gateway{g2, "g1", "m1"}), g1: g1, g2: g2}
}

// shimTables returns gw1's and gw2's rewrite tables: one context each,
// shimmed onto the locators.
func shimTables(t testing.TB) (*rewrite.Table, *rewrite.Table) {
	t.Helper()
	build := func(site, uplink string, local, peer, localLoc, peerLoc netip.Addr, lt, pt shim6.ContextTag) *rewrite.Table {
		tab, err := rewrite.NewTable(rewrite.Config{
			SitePrefixes: []netip.Prefix{netip.MustParsePrefix(site)},
			Uplinks:      []rewrite.Uplink{{Prefix: netip.MustParsePrefix(uplink), MTU: 1500}},
			Contexts: []rewrite.ContextConfig{{
				LocalULID: local, PeerULID: peer, LocalTag: lt, PeerTag: pt,
				LocalLocator: localLoc, PeerLocator: peerLoc,
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}
	return build("fd00:5:a::/64", "fd00:6:a::/64", clientAddr, serverAddr, clientLoc, serverLoc, clientTag, serverTag),
		build("fd00:5:b::/64", "fd00:6:b::/64", serverAddr, clientAddr, serverLoc, clientLoc, serverTag, clientTag)
}

// rwProc is a gateway's data plane as the gateway package builds it: the
// rewriter on every packet, and GSO super-packets kept whole when the
// rewriter leaves them untouched.
type rwProc struct {
	rw   *rewrite.Rewriter
	base time.Time
}

func newRWProc(tab *rewrite.Table) *rwProc {
	rw := rewrite.NewRewriter(rewrite.RewriterConfig{})
	rw.Publish(tab)
	return &rwProc{rw: rw, base: time.Now()}
}

func (p *rwProc) KeepWhole(pkt []byte, _ tunnel.GSOInfo) bool {
	return p.rw.Table().Untouched(rewrite.Auto, pkt)
}

func (p *rwProc) Process(b *tunnel.Batch) {
	now := int64(time.Since(p.base))
	for i := range b.Packets {
		pk := &b.Packets[i]
		res := p.rw.Process(rewrite.Auto, b.Buf(i), pk.Start, pk.End, now)
		pk.Start, pk.End = res.Start, res.End
		switch res.Verdict {
		case rewrite.Forward, rewrite.Reply:
			pk.Verdict = tunnel.Forward
		case rewrite.Divert:
			pk.Verdict = tunnel.Divert
		default:
			pk.Verdict = tunnel.Drop
		}
	}
}

func (p *rwProc) packets(dir rewrite.Direction, k rewrite.PathKind) uint64 {
	return p.rw.Stats().Packets[dir][k].Load()
}

// streamSHA sends size pseudo-random bytes over TCP from the client
// namespace to serverAddr in the server namespace and fails unless they
// arrive complete with the same SHA-256.
func streamSHA(t *testing.T, clientNS, serverNS string, size int) {
	t.Helper()
	ln := inNS(t, serverNS, "listen tcp", func() (net.Listener, error) {
		return net.Listen("tcp6", netip.AddrPortFrom(serverAddr, 0).String())
	})
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(90 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		done <- result{sum: [32]byte(h.Sum(nil)), n: n, err: err}
	}()
	conn := inNS(t, clientNS, "dial tcp", func() (net.Conn, error) {
		return net.DialTimeout("tcp6", ln.Addr().String(), 10*time.Second)
	})
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(90 * time.Second))
	rng := rand.New(rand.NewChaCha8([32]byte{7}))
	h := sha256.New()
	chunk := make([]byte, 256<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		for i := 0; i < len(chunk); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				chunk[i+j] = byte(v >> (8 * j))
			}
		}
		h.Write(chunk)
		if _, err := conn.Write(chunk); err != nil {
			t.Fatalf("write after %d bytes: %v", sent, err)
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	select {
	case res := <-done:
		if res.err != nil || res.n != int64(size) || !bytes.Equal(res.sum[:], h.Sum(nil)) {
			t.Fatalf("server got %d bytes (err %v), hash match %v; want %d", res.n, res.err, bytes.Equal(res.sum[:], h.Sum(nil)), size)
		}
	case <-time.After(100 * time.Second):
		t.Fatal("server did not finish")
	}
}

var offloadBackend = &backends[3]

// TestIntegrationOffloadGSOPass sends a TCP stream through a forwarder on
// the offload backend with a pass-through processor: super-packets must
// come in (GSOPackets), be kept whole (no segments), go out as frames
// larger than the MTU, and the bytes must arrive intact.
func TestIntegrationOffloadGSOPass(t *testing.T) {
	skipUnlessRoot(t)
	tp := newTopo(t, "off")
	fw := openForwarder(t, tp.g, *offloadBackend, passthrough, nil)
	tp.divert(t)
	tx0 := txStats(t, tp.g, "g1")
	const size = 16 << 20
	streamSHA(t, tp.c, tp.s, size)
	sum := func(get func(*tunnel.Stats) *atomic.Uint64) uint64 { return fw.sum(get) }
	if n := sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.GSOPackets }); n == 0 {
		t.Error("no GSO super-packet read")
	}
	if k, p := sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.GSOKept }), sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.GSOPackets }); k != p {
		t.Errorf("kept %d of %d super-packets whole, want all", k, p)
	}
	if n := sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.GSOSegments }); n != 0 {
		t.Errorf("%d segments split for a pass-through processor, want 0", n)
	}
	if rx := sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.RxBytes }); rx < size {
		t.Errorf("forwarder read %d bytes, want ≥ %d", rx, size)
	}
	tx1 := txStats(t, tp.g, "g1")
	bytes, frames := tx1.Bytes-tx0.Bytes, tx1.Packets-tx0.Packets
	if avg := bytes / max(frames, 1); avg <= 3000 {
		t.Errorf("gateway sent %d bytes in %d frames (avg %d): super-packets were not written whole", bytes, frames, avg)
	}
}

// TestIntegrationShimStream sends a TCP stream client → server through two
// forwarders, with pass-through processors and with the rewrite
// processors that shim between the gateways, on the wireguard and offload
// backends; the data must arrive intact (so the server saw its ULIDs and
// checksums held) and, shimmed, the rewriters must have inserted and
// stripped payload headers for it.
func TestIntegrationShimStream(t *testing.T) {
	skipUnlessRoot(t)
	const size = 8 << 20
	for _, b := range []*backend{&backends[0], offloadBackend} {
		for _, shim := range []bool{false, true} {
			name := b.name + "/passthrough"
			if shim {
				name = b.name + "/shim"
			}
			t.Run(name, func(t *testing.T) {
				tp := newShimTopo(t, "st")
				tab1, tab2 := shimTables(t)
				p1, p2 := newRWProc(tab1), newRWProc(tab2)
				var fws [2]*forwarder
				for i, g := range []string{tp.g1, tp.g2} {
					proc := passthrough
					if shim {
						pr := []*rwProc{p1, p2}[i]
						proc = func() tunnel.Processor { return pr }
					}
					fws[i] = openForwarder(t, g, *b, proc, nil)
				}
				tp.divert(t)
				tx0 := txStats(t, tp.g2, "g1")
				streamSHA(t, tp.c, tp.s, size)
				tx1 := txStats(t, tp.g2, "g1")
				for i, fw := range fws {
					if rx := fw.sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.RxBytes }); rx < size && i == 0 {
						t.Errorf("gw1 forwarder read %d bytes, want ≥ %d", rx, size)
					}
				}
				if !shim {
					return
				}
				// Data packets client → server, shimmed by gw1, stripped
				// by gw2; ACKs the other way.
				if n := p1.packets(rewrite.Outbound, rewrite.PathOutboundShim); n < size/1500 {
					t.Errorf("gw1 shimmed %d packets, want ≥ %d", n, size/1500)
				}
				if n := p2.packets(rewrite.Inbound, rewrite.PathInboundShim); n < size/1500 {
					t.Errorf("gw2 stripped %d packets, want ≥ %d", n, size/1500)
				}
				if n := p2.packets(rewrite.Outbound, rewrite.PathOutboundShim); n == 0 {
					t.Error("gw2 shimmed no ACK")
				}
				if n := p1.packets(rewrite.Inbound, rewrite.PathInboundShim); n == 0 {
					t.Error("gw1 stripped no ACK")
				}
				for i, p := range []*rwProc{p1, p2} {
					for dir := range rewrite.NumDirections {
						if n := p.packets(dir, rewrite.PathDropped); n != 0 {
							t.Errorf("gw%d dropped %d %v packets", i+1, n, dir)
						}
					}
				}
				if b == offloadBackend {
					if n := fws[0].sum(func(s *tunnel.Stats) *atomic.Uint64 { return &s.GSOSegments }); n == 0 {
						t.Error("gw1 split no super-packet")
					}
					// gw2 coalesces the segments it stripped (Offload's
					// userspace GRO): frames to the server exceed the MTU.
					bytes, frames := tx1.Bytes-tx0.Bytes, tx1.Packets-tx0.Packets
					t.Logf("gw2 sent %d bytes in %d frames to the server", bytes, frames)
					if avg := bytes / max(frames, 1); avg <= 3000 {
						t.Errorf("gw2 sent %d bytes in %d frames (avg %d): stripped segments were not coalesced", bytes, frames, avg)
					}
				}
			})
		}
	}
}

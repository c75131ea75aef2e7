package fastpath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/rewrite"
)

const (
	tcxNext       = 0xffffffff // FP_PASS, TCX_NEXT (-1)
	tcActRedirect = 7
)

// loadTestRun loads the program in BPF_PROG_TEST_RUN mode, or skips.
func loadTestRun(t testing.TB) *Program {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("fastpath: loading eBPF needs root")
	}
	p, err := Load(Options{testRun: true})
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("fastpath: kernel lacks support: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// pair runs packets through rewrite.Rewriter and the program with the
// same table.
type pair struct {
	rw   *rewrite.Rewriter
	prog *Program
	cfg  rewrite.Config
}

func newPair(t testing.TB, p *Program, cfg rewrite.Config) *pair {
	t.Helper()
	pp := &pair{rw: rewrite.NewRewriter(rewrite.RewriterConfig{}), prog: p, cfg: cfg}
	pp.publish(t, cfg)
	return pp
}

func (pp *pair) publish(t testing.TB, cfg rewrite.Config) {
	t.Helper()
	tab, err := rewrite.NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pp.rw.Publish(tab)
	if err := pp.prog.Maps().Apply(cfg, tab); err != nil {
		t.Fatal(err)
	}
}

var ethHeader = []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd}

// outcome is what happened to one packet on both paths.
type outcome struct {
	fast   bool // the program forwarded it
	goRes  rewrite.Result
	goOut  []byte
	progIn []byte
}

// run sends pkt through both. The program must either leave the packet
// unchanged for the TUN path or forward exactly the bytes the Go path
// forwards.
func (pp *pair) run(t testing.TB, pkt []byte) outcome {
	t.Helper()
	buf := make([]byte, 32+len(pkt)+2048)
	copy(buf[32:], pkt)
	res := pp.rw.Process(rewrite.Auto, buf, 32, 32+len(pkt), 1)
	o := outcome{goRes: res, goOut: buf[res.Start:res.End]}

	in := append(append([]byte(nil), ethHeader...), pkt...)
	out := make([]byte, len(in)+256)
	opts := ebpf.RunOptions{Data: in, DataOut: out, Repeat: 1}
	ret, err := pp.prog.objs.Shim6gwFastpath.Run(&opts)
	if err != nil && len(pkt) < 40 {
		// The kernel builds no skb for an IPv6 frame shorter than the
		// IPv6 header; the program checks the length anyway.
		o.progIn = in
		return o
	}
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	got := opts.DataOut
	switch ret {
	case tcxNext:
		if !bytes.Equal(got, in) {
			t.Fatalf("packet handed to the TUN path modified:\n%s", cmp.Diff(in, got))
		}
	case tcActRedirect:
		o.fast = true
		if res.Verdict != rewrite.Forward {
			t.Fatalf("program forwarded a packet the Go path gives verdict %v (%v, %v)", res.Verdict, res.Path, res.Reason)
		}
		if !bytes.Equal(got[:14], ethHeader) {
			t.Fatalf("Ethernet header changed: % x", got[:14])
		}
		if diff := cmp.Diff(o.goOut, got[14:]); diff != "" {
			t.Fatalf("program and Go path differ (-go +program):\n%s", diff)
		}
	default:
		t.Fatalf("program returned %d", ret)
	}
	o.progIn = in
	return o
}

// TestSameBytesAsRewrite runs the cases of package rewrite's table tests
// (every path kind, extension header layout and malformed case) through
// both paths and checks which ones the program takes itself.
func TestSameBytesAsRewrite(t *testing.T) {
	p := loadTestRun(t)
	data := pattern(100)
	seg := tcp(hostULID, peerULID, 0x10, nil, data)
	inSeg := tcp(peerULID, hostULID, 0x10, nil, pattern(64))
	useg := udp(host2, peer2, data, false)
	shimmedSmall := ip6(hostLoc, peerLoc, 17, pattern(20), shimHdr(tagPeer))
	good := ip6(peerLoc, hostLoc, 6, tcp(peerULID, hostULID, 0x10, nil, nil), shimHdr(tagLocal))
	v4 := append([]byte(nil), good...)
	v4[0] = 0x45
	long := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(long[4:], uint16(len(good)))
	badHbh := ip6(peerLoc, hostLoc, 6, nil, ext{0, []byte{3, 0, 0, 0, 0, 0, 0}})
	jumbo := append([]byte(nil), badHbh...)
	jumbo[4], jumbo[5] = 0, 0

	tests := []struct {
		name string
		cfg  rewrite.Config
		in   []byte
		fast Verdict // NumVerdicts: must go to the TUN path
	}{
		// rewrite's TestOutbound.
		{"outbound shimmed", siteConfig(false, false), ip6(hostULID, peerULID, 6, seg), FastOutShim},
		{"outbound shimmed UDP", siteConfig(false, false), ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, data, false)), FastOutShim},
		{"outbound shimmed UDP zero checksum", siteConfig(false, false), ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, data, true)), FastOutShim},
		{"outbound shimmed ICMPv6 echo", siteConfig(false, false), ip6(hostULID, peerULID, 58, icmpMsg(hostULID, peerULID, 128, 0, 1, data)), FastOutShim},
		{"outbound shimmed no next header", siteConfig(false, false), ip6(hostULID, peerULID, 59, nil), FastOutShim},
		{"outbound shimmed with a fork", siteConfig(false, true), ip6(hostULID, peerULID, 6, seg), FastOutShim},
		{"outbound after hop-by-hop", siteConfig(false, false), ip6(hostULID, peerULID, 6, seg, hbh()), NumVerdicts},
		{"outbound dstopts+routing+dstopts", siteConfig(false, false), ip6(hostULID, peerULID, 6, seg, dstOpts(), routing(), dstOpts()), NumVerdicts},
		{"outbound before fragment", siteConfig(false, false), ip6(hostULID, peerULID, 6, seg[:24], frag(0)), NumVerdicts},
		{"outbound before AH", siteConfig(false, false), ip6(hostULID, peerULID, 6, seg, hbh(), ah()), NumVerdicts},
		{"outbound non-first fragment", siteConfig(false, false), ip6(hostULID, peerULID, 6, data[:16], frag(1448)), NumVerdicts},
		{"outbound ULID-pair context", siteConfig(false, false), ip6(host2, peer2, 17, useg), FastOutPass},
		{"outbound no context", siteConfig(false, false), ip6(hostULID, legacy, 17, useg), NumVerdicts},
		{"outbound host's own shim6", siteConfig(false, false), ip6(hostULID, peerULID, 59, nil, shimHdr(9)), NumVerdicts},
		{"outbound SYN clamped", siteConfig(false, false), ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, 0x02, mss(1460), nil)), NumVerdicts},
		{"outbound ULID-pair SYN clamped", siteConfig(false, false), ip6(host2, peer2, 6, tcp(host2, peer2, 0x02, mss(1460), nil)), NumVerdicts},
		{"outbound ULID-pair TCP ack", siteConfig(false, false), ip6(host2, peer2, 6, tcp(host2, peer2, 0x10, mss(1460), data)), FastOutPass},
		{"outbound TCP too short to tell", siteConfig(false, false), ip6(hostULID, peerULID, 6, seg[:19]), NumVerdicts},
		{"outbound 1492 fits with the header", siteConfig(false, false), ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, pattern(1492-48), false)), FastOutShim},
		{"outbound 1493 needs Packet Too Big", siteConfig(false, false), ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, pattern(1493-48), false)), NumVerdicts},
		{"outbound fallback uplink down", siteConfig(true, false), ip6(fbHost, legacy, 17, udp(fbHost, legacy, data, false)), NumVerdicts},
		{"outbound fallback uplink up", siteConfig(false, false), ip6(fbHost, legacy, 17, udp(fbHost, legacy, data, false)), NumVerdicts},
		// rewrite's TestInbound.
		{"inbound strip", siteConfig(false, false), ip6(peerLoc, hostLoc, 6, inSeg, shimHdr(tagLocal)), FastInStrip},
		{"inbound strip UDP", siteConfig(false, false), ip6(peerLoc, hostLoc, 17, udp(peerULID, hostULID, data, false), shimHdr(tagLocal)), FastInStrip},
		{"inbound alternate locators", siteConfig(false, false), ip6(peerULID, hostULID, 6, inSeg, shimHdr(tagLocal)), FastInStrip},
		{"inbound strip forked context", siteConfig(false, true), ip6(peerLoc, hostLoc, 6, inSeg, shimHdr(tagFork)), FastInStrip},
		{"inbound header before fragment", siteConfig(false, false), ip6(peerLoc, hostLoc, 6, inSeg[:24], shimHdr(tagLocal), frag(0)), FastInStrip},
		{"inbound header before AH", siteConfig(false, false), ip6(peerLoc, hostLoc, 6, inSeg, shimHdr(tagLocal), ah()), FastInStrip},
		{"inbound hbh+dstopts before header", siteConfig(false, false), ip6(peerLoc, hostLoc, 6, inSeg, hbh(), dstOpts(), shimHdr(tagLocal)), NumVerdicts},
		{"inbound header behind fragment", siteConfig(false, false), ip6(peerLoc, hostLoc, 6, inSeg[:24], frag(0), shimHdr(tagLocal)), NumVerdicts},
		{"inbound locator pair not in context", siteConfig(false, false), ip6(legacy, hostLoc, 6, inSeg, shimHdr(tagLocal)), NumVerdicts},
		{"inbound local locator not in context", siteConfig(false, false), ip6(peerLoc, fbHostLoc, 6, inSeg, shimHdr(tagLocal)), NumVerdicts},
		{"inbound unknown tag", siteConfig(false, false), ip6(peerLoc, hostLoc, 6, inSeg, shimHdr(0x777)), NumVerdicts},
		{"inbound Hdr Ext Len 1", siteConfig(false, false), ip6(peerLoc, hostLoc, 6, append([]byte{1, 0, 0, 0, 0, 0, 0, 0}, inSeg...), ext{140, []byte{1, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab}}), NumVerdicts},
		{"inbound control message", siteConfig(false, false), ip6(peerLoc, hostLoc, 59, []byte{0x42, 0, 0xb2, 0xc8, 1, 0x23, 0x45, 0x67, 0x89, 0xab, 0, 0, 0, 0}, ext{140, []byte{1}}), NumVerdicts},
		{"inbound payload header cut short", siteConfig(false, false), ip6(peerLoc, hostLoc, 140, []byte{6, 0, 0x81, 0x23}), NumVerdicts},
		{"inbound plain on the shimmed pair", siteConfig(false, false), ip6(peerULID, hostULID, 6, inSeg), FastInPass},
		{"inbound plain on the ULID pair", siteConfig(false, false), ip6(peer2, host2, 17, udp(peer2, host2, data, false)), FastInPass},
		{"inbound plain no context", siteConfig(false, false), ip6(legacy, host2, 17, udp(legacy, host2, data, false)), NumVerdicts},
		{"inbound SYN-ACK clamped", siteConfig(false, false), ip6(peer2, host2, 6, tcp(peer2, host2, 0x12, mss(1460), nil)), NumVerdicts},
		{"inbound shimmed SYN-ACK clamped", siteConfig(false, false), ip6(peerLoc, hostLoc, 6, tcp(peerULID, hostULID, 0x12, mss(1460), nil), shimHdr(tagLocal)), NumVerdicts},
		{"inbound fallback locator", siteConfig(false, false), ip6(legacy, fbHostLoc, 17, udp(legacy, fbHostLoc, data, false)), NumVerdicts},
		{"inbound ICMPv6 echo reply on the ULID pair", siteConfig(false, false), ip6(peer2, host2, 58, icmpMsg(peer2, host2, 129, 0, 1, data)), FastInPass},
		// rewrite's TestICMPErrorTranslation and TestPacketTooBig.
		{"inbound ICMPv6 error quoting a shimmed packet", siteConfig(false, false), ip6(router, hostLoc, 58, icmpMsg(router, hostLoc, 1, 3, 0, shimmedSmall)), NumVerdicts},
		{"inbound ICMPv6 error on the ULID pair", siteConfig(false, false), ip6(peer2, host2, 58, icmpMsg(peer2, host2, 1, 4, 0, ip6(host2, peer2, 17, useg))), NumVerdicts},
		// Round trip through the peer's gateway (rewrite's TestRoundTrip).
		{"peer strips", peerConfig(), ip6(hostLoc, peerLoc, 6, seg, shimHdr(tagPeer)), FastInStrip},
		{"peer shims", peerConfig(), ip6(peerULID, hostULID, 6, inSeg), FastOutShim},
		// rewrite's TestMalformed.
		{"short", siteConfig(false, false), good[:39], NumVerdicts},
		{"ipv4", siteConfig(false, false), v4, NumVerdicts},
		{"payload length beyond packet", siteConfig(false, false), long, NumVerdicts},
		{"truncated hop-by-hop", siteConfig(false, false), badHbh, NumVerdicts},
		{"jumbogram", siteConfig(false, false), jumbo, NumVerdicts},
		{"trailing bytes", siteConfig(false, false), append(append([]byte(nil), good...), 0, 0, 0, 0), NumVerdicts},
		{"empty", siteConfig(false, false), nil, NumVerdicts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pp := newPair(t, p, tt.cfg)
			before, err := p.Maps().Stats()
			if err != nil {
				t.Fatal(err)
			}
			o := pp.run(t, tt.in)
			after, err := p.Maps().Stats()
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.fast != NumVerdicts; o.fast != want {
				t.Fatalf("fast %v, want %v (Go path %v)", o.fast, want, o.goRes.Path)
			}
			if tt.fast != NumVerdicts && after[tt.fast].Packets != before[tt.fast].Packets+1 {
				t.Errorf("verdict %v not counted", tt.fast)
			}
		})
	}
}

// TestEverySizeSameBytes sends every size from the smallest packet to the
// uplink MTU through both paths, on each path kind the program takes.
func TestEverySizeSameBytes(t *testing.T) {
	p := loadTestRun(t)
	a := newPair(t, p, siteConfig(false, false))
	kinds := []struct {
		name string
		pkt  func(n int) []byte
	}{
		{"passthrough", func(n int) []byte { return ip6(host2, peer2, 17, udp(host2, peer2, pattern(n), false)) }},
		{"outbound shim", func(n int) []byte { return ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, pattern(n), false)) }},
		{"inbound strip", func(n int) []byte {
			return ip6(peerLoc, hostLoc, 17, udp(peerULID, hostULID, pattern(n), false), shimHdr(tagLocal))
		}},
	}
	for _, k := range kinds {
		fast := 0
		for n := 0; n <= 1460; n += 7 {
			if a.run(t, k.pkt(n)).fast {
				fast++
			}
		}
		if fast == 0 {
			t.Errorf("%s: the program forwarded nothing", k.name)
		}
	}
}

// TestApplyFollowsTable republishes the table as the control plane does
// on failover, and on context removal: the program must follow at once.
func TestApplyFollowsTable(t *testing.T) {
	p := loadTestRun(t)
	cfg := siteConfig(false, false)
	pp := newPair(t, p, cfg)
	pkt := ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, 0x10, nil, pattern(50)))
	if o := pp.run(t, pkt); !o.fast || netip.AddrFrom16([16]byte(o.goOut[8:24])) != hostLoc {
		t.Fatalf("before failover: fast %v", o.fast)
	}
	// Failover: new current pair, same stamps.
	st := pp.rw.Table().LookupTag(tagLocal).Stamps()
	cfg.Contexts[0].LocalLocator, cfg.Contexts[0].PeerLocator = hostULID, peerLoc
	cfg.Contexts[0].Stamps = st
	pp.publish(t, cfg)
	o := pp.run(t, pkt)
	if !o.fast || netip.AddrFrom16([16]byte(o.goOut[8:24])) != hostULID {
		t.Fatalf("after failover: fast %v src %v", o.fast, netip.AddrFrom16([16]byte(o.goOut[8:24])))
	}
	// The context goes away: its packets go to the TUN path.
	cfg.Contexts = cfg.Contexts[1:]
	pp.publish(t, cfg)
	if o := pp.run(t, pkt); o.fast {
		t.Fatal("removed context still forwarded by the program")
	}
	if o := pp.run(t, ip6(peerLoc, hostLoc, 6, tcp(peerULID, hostULID, 0x10, nil, nil), shimHdr(tagLocal))); o.fast {
		t.Fatal("removed context's tag still stripped by the program")
	}
	if nt, np := p.Maps().Len(); nt != 1 || np != 1 {
		t.Errorf("maps hold %d tags %d pairs, want 1 1", nt, np)
	}
	for _, m := range []*ebpf.Map{p.objs.ByTag, p.objs.ByPair, p.objs.Locators} {
		n := 0
		it := m.Iterate()
		var k, v []byte
		for it.Next(&k, &v) {
			n++
		}
		if want := map[*ebpf.Map]int{p.objs.ByTag: 1, p.objs.ByPair: 1, p.objs.Locators: 2}[m]; n != want {
			t.Errorf("kernel map has %d entries, want %d", n, want)
		}
	}
}

// TestApplyBeyondCapacity: contexts beyond the stamp slots stay on the
// TUN path, the others are mirrored, and a slot freed by a removed
// context is taken by the next table.
func TestApplyBeyondCapacity(t *testing.T) {
	p := loadTestRun(t)
	p.maps.maxSlots = 1
	cfg := siteConfig(false, false)
	tab, err := rewrite.NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Maps().Apply(cfg, tab); !errors.Is(err, ErrTooMany) {
		t.Fatalf("apply: %v, want ErrTooMany", err)
	}
	pp := &pair{rw: rewrite.NewRewriter(rewrite.RewriterConfig{}), prog: p}
	pp.rw.Publish(tab)
	shim := ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, pattern(9), false))
	pass := ip6(host2, peer2, 17, udp(host2, peer2, pattern(9), false))
	if !pp.run(t, shim).fast || pp.run(t, pass).fast {
		t.Fatal("want the first context mirrored, the second on the TUN path")
	}
	cfg.Contexts = cfg.Contexts[1:]
	pp.publish(t, cfg) // fails the test on any error: the slot was freed
	if pp.run(t, shim).fast || !pp.run(t, pass).fast {
		t.Fatal("want the remaining context mirrored in the freed slot")
	}
}

// TestGSOSkbNeverShimmed runs a GSO skb (gso_size set through the test
// run's __sk_buff) of a shimmed context: it must reach the TUN path
// unchanged, since the kernel cannot segment next header 140, while a
// GSO skb of a context on its ULID pair is forwarded whole.
func TestGSOSkbNeverShimmed(t *testing.T) {
	p := loadTestRun(t)
	newPair(t, p, siteConfig(false, false))
	// struct __sk_buff: 192 bytes, gso_segs at 164, gso_size at 176.
	var skb [192]byte
	binary.LittleEndian.PutUint32(skb[164:], 2)
	binary.LittleEndian.PutUint32(skb[176:], 1400)
	for _, tt := range []struct {
		name string
		pkt  []byte
		ret  uint32
		v    Verdict
	}{
		{"shimmed context", ip6(hostULID, peerULID, 6, tcp(hostULID, peerULID, 0x10, nil, pattern(2800))), tcxNext, TUNGSO},
		{"ULID-pair context", ip6(host2, peer2, 6, tcp(host2, peer2, 0x10, nil, pattern(2800))), tcActRedirect, FastOutPass},
	} {
		before, _ := p.Maps().Stats()
		in := append(append([]byte(nil), ethHeader...), tt.pkt...)
		out := make([]byte, len(in)+64)
		opts := ebpf.RunOptions{Data: in, DataOut: out, Context: skb[:], Repeat: 1}
		ret, err := p.objs.Shim6gwFastpath.Run(&opts)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		after, _ := p.Maps().Stats()
		if ret != tt.ret || after[tt.v].Packets != before[tt.v].Packets+1 {
			t.Errorf("%s: returned %d, %v +%d; want %d and %v counted", tt.name, ret, tt.v, after[tt.v].Packets-before[tt.v].Packets, tt.ret, tt.v)
		}
		if !bytes.Equal(opts.DataOut, in) {
			t.Errorf("%s: GSO skb modified", tt.name)
		}
	}
}

// TestHarvestStamps checks that the program's stamps reach the contexts'
// rewrite.Stamps, converted to the caller's clock, as the TUN path's do.
func TestHarvestStamps(t *testing.T) {
	const offset = int64(1e15) // the caller's clock runs far from the kernel's
	p := loadTestRun(t)
	pp := newPair(t, p, siteConfig(false, false))
	st := pp.rw.Table().LookupTag(tagLocal).Stamps()
	t0 := monotonic() + offset
	for range 3 {
		pp.run(t, ip6(hostULID, peerULID, 17, udp(hostULID, peerULID, pattern(9), false)))
	}
	pp.run(t, ip6(peerLoc, hostLoc, 17, udp(peerULID, hostULID, pattern(9), false), shimHdr(tagLocal)))
	// The Go path in pp.run stamped with time 1 and counted too.
	sent0, recv0 := st.SentPackets.Load(), st.ReceivedPackets.Load()
	p.Maps().Harvest(monotonic() + offset)
	t1 := monotonic() + offset
	if d := st.SentPackets.Load() - sent0; d != 3 {
		t.Errorf("sent packets +%d, want +3", d)
	}
	if d := st.ReceivedPackets.Load() - recv0; d != 1 {
		t.Errorf("received packets +%d, want +1", d)
	}
	for name, v := range map[string]int64{"last sent": st.LastSent.Load(), "last received": st.LastReceived.Load()} {
		if v < t0 || v > t1 {
			t.Errorf("%s %d outside [%d, %d]", name, v, t0, t1)
		}
	}
	// A second harvest adds nothing.
	p.Maps().Harvest(monotonic() + offset)
	if st.SentPackets.Load()-sent0 != 3 {
		t.Error("harvest counted twice")
	}
}

func (v Verdict) GoString() string { return fmt.Sprintf("fastpath.Verdict(%s)", v) }

func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

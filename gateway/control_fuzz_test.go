package gateway

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/internal/ip6"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/shim6"
	"github.com/shim6gw/shim6gw/tunnel"
	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

// writeSecret writes the HBA secret siteYAML refers to.
func writeSecret(tb testing.TB, dir string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("fuzz-site-secret-0123456789abcdef"), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// FuzzControlReceived feeds arbitrary diverted packets (the data plane
// hands over anything with Next Header 140, P = 0, behind any extension
// headers, and ICMPv6 errors) to the control loop: it must never panic.
func FuzzControlReceived(f *testing.F) {
	dir := f.TempDir()
	writeSecret(f, dir)
	cfg, err := config.Parse([]byte(siteYAML(1)), dir, "fuzz.yaml")
	if err != nil {
		f.Fatal(err)
	}
	c := NewController(ControllerOptions{Seed: [32]byte{7}})
	l, err := newControlLoop(c, cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	p, err := tunnel.NewPipeline(tuntest.New(tuntest.Config{Discard: true}), tunnel.Config{BufSize: tunnel.Offset + 4096})
	if err != nil {
		f.Fatal(err)
	}
	l.pipes = []*tunnel.Pipeline{p}
	local := l.site.hosts[0].ULID
	peer := netip.MustParseAddr("2001:db8:c:1::2")
	i1 := shim6.AppendI1(nil, 0x42, 7)
	if err := shim6.FinishMessage(i1); err != nil {
		f.Fatal(err)
	}
	pkt := shim6.AppendIPv6Control(nil, peer, local, i1)
	f.Add(pkt)
	// Behind a destination options header.
	withExt := append([]byte(nil), pkt[:40]...)
	withExt[6] = 60
	withExt = append(withExt, shim6.ProtocolNumber, 0, 1, 4, 0, 0, 0, 0)
	withExt = append(withExt, i1...)
	withExt[5] += 8
	f.Add(withExt)
	icmp := append([]byte{icmpParamProblem, icmpUnrecognizedNext, 0, 0, 0, 0, 0, 6}, shim6.AppendIPv6Control(nil, local, peer, i1)...)
	pp := make([]byte, 40, 40+len(icmp))
	shim6.PutIPv6Header(pp, peer, local, ip6.ProtoICMPv6, len(icmp))
	f.Add(append(pp, icmp...))
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 0, 64})
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		now = now.Add(time.Millisecond)
		l.received(now, b)
		if l.tableDirty {
			l.publishTable()
		}
	})
}

// FuzzIsShim6ParamProblem: the per-packet ICMPv6 check never panics and
// only accepts what it promises.
func FuzzIsShim6ParamProblem(f *testing.F) {
	i1 := shim6.AppendI1(nil, 0x42, 7)
	_ = shim6.FinishMessage(i1)
	a, b := netip.MustParseAddr("2001:db8:a:1::1"), netip.MustParseAddr("2001:db8:e::1")
	icmp := append([]byte{icmpParamProblem, icmpUnrecognizedNext, 0, 0, 0, 0, 0, 6}, shim6.AppendIPv6Control(nil, a, b, i1)...)
	pp := make([]byte, 40, 40+len(icmp))
	shim6.PutIPv6Header(pp, b, a, ip6.ProtoICMPv6, len(icmp))
	f.Add(append(pp, icmp...))
	f.Add(pp[:40])
	f.Fuzz(func(t *testing.T, p []byte) {
		if isShim6ParamProblem(p) && (p[6] != ip6.ProtoICMPv6 || p[40] != icmpParamProblem || p[48+6] != shim6.ProtocolNumber) {
			t.Fatalf("accepted %x", p)
		}
	})
}

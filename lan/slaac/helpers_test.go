package slaac

import (
	"encoding/binary"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/internal/checksum"
)

var (
	sitePrefixes = []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")}
	slaacPrefix  = netip.MustParsePrefix("2001:db8:a:5::/64")
	hostStable   = netip.MustParseAddr("2001:db8:a:5:5054:ff:fe00:1")
	hostTemp     = netip.MustParseAddr("2001:db8:a:5:9c3e:21d7:aa01:5b2f")
	peer         = netip.MustParseAddr("2001:db8:c:1::80")
	router       = netip.MustParseAddr("2001:db8:c:ff::1")
)

// fixture is a translator over a book of 8 entries, pool entries 4..7,
// with a clock the test moves.
type fixture struct {
	t    testing.TB
	book *hba.Book
	cfg  Config
	now  int64
	tr   *Translator
}

func newFixture(t testing.TB, edit func(*Config)) *fixture {
	t.Helper()
	book, err := hba.NewBook([]byte("0123456789abcdef-slaac-test"), sitePrefixes, 8)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Prefix, cfg.FirstEntry = slaacPrefix, 4
	cfg.StateFile = filepath.Join(t.TempDir(), "slaac.json")
	if edit != nil {
		edit(&cfg)
	}
	f := &fixture{t: t, book: book, cfg: cfg, now: int64(time.Hour)}
	f.restart()
	return f
}

func (f *fixture) restart() {
	f.t.Helper()
	tr, err := New(f.cfg, f.book, Options{Now: func() int64 { return f.now }})
	if err != nil {
		f.t.Fatal(err)
	}
	f.tr = tr
}

func (f *fixture) ulid(e int) netip.Addr { return f.book.Entry(e).ULID() }

// ip6 builds an IPv6 packet whose upper-layer checksum (TCP, UDP, ICMPv6)
// is correct; exts are raw extension headers placed before the upper
// layer, each starting with its Next Header byte (filled in here).
func buildPacket(src, dst netip.Addr, proto uint8, payload []byte, exts ...[]byte) []byte {
	p := make([]byte, 40)
	p[0] = 0x60
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	nhOff := 6
	for _, e := range exts {
		p[nhOff] = e[len(e)-1] // the header's type is carried as its last byte
		nhOff = len(p)
		p = append(p, e[:len(e)-1]...)
	}
	p[nhOff] = proto
	ulp := len(p)
	p = append(p, payload...)
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	if ck := checksumOff(p, ulp, proto); ck >= 0 {
		p[ck], p[ck+1] = 0, 0
		binary.BigEndian.PutUint16(p[ck:], checksum.Checksum(p[ulp:], checksum.PseudoHeader(src, dst, uint32(len(p)-ulp), proto)))
	}
	return p
}

func tcpSeg(n int) []byte {
	b := make([]byte, 20+n)
	b[0], b[1], b[2], b[3] = 0xc0, 0x01, 0x00, 0x50
	b[12] = 5 << 4
	b[13] = 0x18
	for i := 20; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

func udpDgram(n int) []byte {
	b := make([]byte, 8+n)
	b[0], b[1], b[2], b[3] = 0x13, 0x88, 0x00, 0x35
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	for i := 8; i < len(b); i++ {
		b[i] = byte(i * 13)
	}
	return b
}

// icmpErr is an ICMPv6 error body (type, code, 4 bytes unused/MTU) quoting q.
func icmpErr(typ uint8, q []byte) []byte {
	return append([]byte{typ, 0, 0, 0, 0, 0, 0, 0}, q...)
}

func echoReq(n int) []byte {
	b := make([]byte, 8+n)
	b[0] = 128
	return b
}

// checksumOK verifies the upper-layer checksum of p with a full sum.
func checksumOK(p []byte) bool {
	off, ulp := upperLayer(p)
	ck := checksumOff(p, off, ulp)
	if ck < 0 {
		return true
	}
	if ulp == protoUDP && p[ck] == 0 && p[ck+1] == 0 {
		return true
	}
	src, dst := netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
	return checksum.Checksum(p[off:], checksum.PseudoHeader(src, dst, uint32(len(p)-off), ulp)) == 0
}

// place copies pkt into a buffer with headroom, as the data plane holds it.
func place(pkt []byte) ([]byte, int, int) {
	buf := make([]byte, 64+len(pkt)+64)
	copy(buf[64:], pkt)
	return buf, 64, 64 + len(pkt)
}

func addr16(a [16]byte) netip.Addr { return netip.AddrFrom16(a) }

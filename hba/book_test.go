package hba_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/shim6gw/shim6gw/hba"
)

var sitePrefixes = []netip.Prefix{
	netip.MustParsePrefix("2001:db8:a:1::/64"),
	netip.MustParsePrefix("2001:db8:b:1::/64"),
}

func TestNewBookValidation(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name     string
		secret   []byte
		prefixes []netip.Prefix
		count    int
		opts     []hba.Option
		want     string
		is       error
	}{
		{"empty secret", nil, sitePrefixes, 1, nil, "hba: empty secret", hba.ErrInvalid},
		{"one prefix", []byte("s"), sitePrefixes[:1], 1, nil, "hba: need at least 2 prefixes, got 1", hba.ErrInvalid},
		{"no prefix", []byte("s"), nil, 1, nil, "hba: need at least 2 prefixes, got 0", hba.ErrInvalid},
		{"not a /64", []byte("s"), []netip.Prefix{sitePrefixes[0], p("2001:db8:b::/48")}, 1, nil, "hba: prefix 2001:db8:b::/48 is not a /64", hba.ErrInvalid},
		{"host bits", []byte("s"), []netip.Prefix{sitePrefixes[0], p("2001:db8:b:1::5/64")}, 1, nil, "hba: prefix 2001:db8:b:1::5/64 has bits set after the first 64", hba.ErrInvalid},
		{"ipv4", []byte("s"), []netip.Prefix{sitePrefixes[0], p("192.0.2.0/24")}, 1, nil, "hba: prefix 192.0.2.0/24 is not IPv6", hba.ErrInvalid},
		{"4in6", []byte("s"), []netip.Prefix{sitePrefixes[0], p("::ffff:0:0/64")}, 1, nil, "hba: prefix ::ffff:0.0.0.0/64 is not IPv6", hba.ErrInvalid},
		{"zero prefix", []byte("s"), []netip.Prefix{sitePrefixes[0], {}}, 1, nil, "hba: invalid prefix invalid Prefix", hba.ErrInvalid},
		{"duplicate", []byte("s"), []netip.Prefix{sitePrefixes[0], sitePrefixes[1], sitePrefixes[0]}, 1, nil, "hba: duplicate prefix 2001:db8:a:1::/64", hba.ErrInvalid},
		{"count 0", []byte("s"), sitePrefixes, 0, nil, "hba: host count 0 is not in 1..1048576", hba.ErrInvalid},
		{"count negative", []byte("s"), sitePrefixes, -3, nil, "hba: host count -3 is not in 1..1048576", hba.ErrInvalid},
		{"sec 3", []byte("s"), sitePrefixes, 1, []hba.Option{hba.WithSec(3)}, "hba: unsupported sec: sec 3, generation supports 0..2", hba.ErrUnsupportedSec},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hba.NewBook(tc.secret, tc.prefixes, tc.count, tc.opts...)
			if b != nil || err == nil {
				t.Fatalf("NewBook = %v, %v", b, err)
			}
			if err.Error() != tc.want || !errors.Is(err, tc.is) {
				t.Fatalf("error %q, want %q (is %v)", err, tc.want, tc.is)
			}
		})
	}
}

func TestBook(t *testing.T) {
	for _, sec := range []uint8{0, 1} {
		secret := []byte("0123456789abcdef-site-secret")
		b, err := hba.NewBook(secret, sitePrefixes, 20, hba.WithSec(sec))
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() != 20 || b.Sec() != sec || !cmp.Equal(b.Prefixes(), sitePrefixes, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })) {
			t.Fatalf("Len %d Sec %d Prefixes %v", b.Len(), b.Sec(), b.Prefixes())
		}
		seen := map[netip.Addr]bool{}
		for i := range b.Len() {
			e := b.Entry(i)
			if e.Index != i || e.Sec != sec || len(e.Addresses) != 2 || e.ULID() != e.Addresses[0] {
				t.Fatalf("entry %d: %+v", i, e)
			}
			for j, a := range e.Addresses {
				if !sitePrefixes[j].Contains(a) || a.As16()[8]>>5 != sec {
					t.Errorf("entry %d address %d = %s", i, j, a)
				}
				if seen[a] {
					t.Errorf("duplicate address %s", a)
				}
				seen[a] = true
				if got := b.Locator(i, j); got != a {
					t.Errorf("Locator(%d,%d) = %s", i, j, got)
				}
				if ei, pi, ok := b.Lookup(a); !ok || ei != i || pi != j {
					t.Errorf("Lookup(%s) = %d %d %v", a, ei, pi, ok)
				}
				pds := e.PDS(j)
				if err := hba.VerifyCGA(a, pds); err != nil {
					t.Errorf("VerifyCGA(%s): %v", a, err)
				}
				for k := range e.Addresses {
					if err := hba.VerifyHBA(e.Addresses[k], pds); err != nil {
						t.Errorf("VerifyHBA(%s, PDS %d): %v", e.Addresses[k], j, err)
					}
				}
				p, _ := hba.ParsePDS(pds)
				if !bytes.Equal(p.PublicKey(), e.ExtendedModifier) || len(pds) != 25+68+4+4+16 {
					t.Errorf("PDS layout: %x", pds)
				}
			}
			// Another entry's PDS does not verify this entry's locators.
			if i > 0 {
				if err := hba.VerifyHBA(e.Addresses[1], b.Entry(i-1).PDS(0)); !errors.Is(err, hba.ErrHashMismatch) {
					t.Errorf("cross-entry verify: %v", err)
				}
			}
		}
		if _, _, ok := b.Lookup(netip.MustParseAddr("2001:db8:a:1::1")); ok {
			t.Error("Lookup of a foreign address succeeded")
		}
	}
}

func TestBookDeterministic(t *testing.T) {
	secret := []byte("same secret")
	a, err := hba.NewBook(secret, sitePrefixes, 50)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hba.NewBook(append([]byte(nil), secret...), append([]netip.Prefix(nil), sitePrefixes...), 50)
	if err != nil {
		t.Fatal(err)
	}
	c, err := hba.NewBook([]byte("other secret"), sitePrefixes, 50)
	if err != nil {
		t.Fatal(err)
	}
	swapped, err := hba.NewBook(secret, []netip.Prefix{sitePrefixes[1], sitePrefixes[0]}, 50)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Len() {
		ea, eb := a.Entry(i), b.Entry(i)
		if ea.Modifier != eb.Modifier || ea.CollisionCount != eb.CollisionCount ||
			!bytes.Equal(ea.ExtendedModifier, eb.ExtendedModifier) || !bytes.Equal(ea.PDS(1), eb.PDS(1)) ||
			ea.Addresses[0] != eb.Addresses[0] || ea.Addresses[1] != eb.Addresses[1] {
			t.Fatalf("entry %d differs between identical books", i)
		}
		if c.Entry(i).Addresses[0] == ea.Addresses[0] {
			t.Errorf("entry %d: another secret gave the same ULID", i)
		}
		if swapped.Entry(i).Addresses[1] == ea.Addresses[0] {
			t.Errorf("entry %d: reordering prefixes kept the address (RFC 5535 §8.1)", i)
		}
	}
}

// TestBookStable pins the derivation: if this changes, every deployed site
// renumbers.
func TestBookStable(t *testing.T) {
	b, err := hba.NewBook([]byte("shim6gw test secret"), sitePrefixes, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{b.Locator(0, 0).String(), b.Locator(0, 1).String(), b.Locator(1, 0).String(), b.Locator(1, 1).String()}
	want := goldenBook
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("book changed (-want +got):\n%s", diff)
	}
}

// TestBookDerivation recomputes entry i from the documented derivation
// (HKDF-SHA256, salt "shim6gw hba book v1", info label ‖ uint32be(i)) and
// GenerateSet.
func TestBookDerivation(t *testing.T) {
	secret := []byte("shim6gw test secret")
	for _, sec := range []uint8{0, 1} {
		b, err := hba.NewBook(secret, sitePrefixes, 3, hba.WithSec(sec))
		if err != nil {
			t.Fatal(err)
		}
		prk, err := hkdf.Extract(sha256.New, secret, []byte("shim6gw hba book v1"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			idx := string(binary.BigEndian.AppendUint32(nil, uint32(i)))
			m, _ := hkdf.Expand(sha256.New, prk, "shim6gw hba modifier"+idx, 16)
			em, _ := hkdf.Expand(sha256.New, prk, "shim6gw hba extended modifier"+idx, 48)
			s, err := hba.GenerateSet(hba.SetParams{Prefixes: sitePrefixes, Sec: sec, Modifier: [16]byte(m), ExtendedModifier: [48]byte(em)})
			if err != nil {
				t.Fatal(err)
			}
			e := b.Entry(i)
			if s.Modifier != e.Modifier || !bytes.Equal(s.PDS(0), e.PDS(0)) || !bytes.Equal(s.PDS(1), e.PDS(1)) ||
				s.Addresses[0] != e.Addresses[0] || s.Addresses[1] != e.Addresses[1] {
				t.Errorf("sec %d entry %d differs from GenerateSet", sec, i)
			}
		}
	}
}

func TestLookupAllocs(t *testing.T) {
	b, err := hba.NewBook([]byte("s"), sitePrefixes, 10)
	if err != nil {
		t.Fatal(err)
	}
	a := b.Locator(7, 1)
	if n := testing.AllocsPerRun(100, func() { b.Lookup(a) }); n != 0 {
		t.Fatalf("Lookup allocates %v", n)
	}
	pds := b.Entry(3).PDS(0)
	l := b.Locator(3, 1)
	if n := testing.AllocsPerRun(100, func() { _ = hba.VerifyHBA(l, pds) }); n != 0 {
		t.Errorf("VerifyHBA allocates %v", n)
	}
	pds1 := b.Entry(3).PDS(1)
	if n := testing.AllocsPerRun(100, func() { _ = hba.VerifyCGA(l, pds1) }); n != 0 {
		t.Errorf("VerifyCGA allocates %v", n)
	}
}

func TestTrimSecret(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "abc"}, {"abc\n", "abc"}, {"abc\r\n", "abc"}, {"abc\n\n", "abc\n"},
		{" abc \t", " abc \t"}, {"\n", ""}, {"", ""}, {"abc\r", "abc\r"},
	} {
		if got := string(hba.TrimSecret([]byte(tc.in))); got != tc.want {
			t.Errorf("TrimSecret(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

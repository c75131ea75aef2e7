package hba_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"net/netip"
	"sync"
	"testing"

	"github.com/shim6gw/shim6gw/hba"
)

// otherSet is an HBA-only set over the same prefixes as the LinShim6
// vector but another Extended Modifier.
func otherSet(t *testing.T) *hba.Set {
	t.Helper()
	s, err := hba.GenerateSet(hba.SetParams{Prefixes: lsPrefixes, Sec: 1, ExtendedModifier: [48]byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyHBANegative(t *testing.T) {
	good := lsPDS(t, 0)
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	other := otherSet(t)
	flipIID := lsAddrs[1].As16()
	flipIID[9] ^= 0x10
	secWrong := lsAddrs[1].As16()
	secWrong[8] = secWrong[8]&0x1f | 2<<5 // claims Sec 2
	secZero := lsAddrs[1].As16()
	secZero[8] &= 0x1f // claims Sec 0: still valid, Sec 0 asks nothing
	ugSet := lsAddrs[1].As16()
	ugSet[8] |= 0x03 // u/g bits are ignored (RFC 3972 §5 step 4)
	// A Multi-Prefix list without the third prefix (data length 4+16).
	shortList := mutate(func(b []byte) []byte {
		b = b[:len(b)-8]
		b[len(b)-24+3] = 20
		return b
	})
	tests := []struct {
		name string
		addr netip.Addr
		pds  []byte
		want error
	}{
		{"own set", lsAddrs[1], good, nil},
		{"sec bits zero", netip.AddrFrom16(secZero), good, nil},
		{"u and g bits set", netip.AddrFrom16(ugSet), good, nil},
		{"locator from another set", other.Addresses[1], good, hba.ErrHashMismatch},
		{"other set pds for our locator", lsAddrs[1], other.PDS(0), hba.ErrHashMismatch},
		{"flipped IID bit", netip.AddrFrom16(flipIID), good, hba.ErrHashMismatch},
		{"flipped modifier bit", lsAddrs[1], mutate(func(b []byte) []byte { b[3] ^= 0x40; return b }), hba.ErrHashMismatch},
		{"flipped extended modifier bit", lsAddrs[1], mutate(func(b []byte) []byte { b[60] ^= 1; return b }), hba.ErrHashMismatch},
		{"flipped extension bit", lsAddrs[1], mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), hba.ErrHashMismatch},
		{"P flag set", lsAddrs[1], mutate(func(b []byte) []byte { b[len(b)-28] |= 0x80; return b }), hba.ErrHashMismatch},
		{"wrong prefix list", lsAddrs[1], shortList, hba.ErrHashMismatch},
		{"prefix not in list", lsAddrs[2], shortList, hba.ErrPrefixNotInSet},
		{"collision count 3", lsAddrs[1], mutate(func(b []byte) []byte { b[24] = 3; return b }), hba.ErrCollisionCount},
		{"collision count 1", lsAddrs[1], mutate(func(b []byte) []byte { b[24] = 1; return b }), hba.ErrHashMismatch},
		{"sec mismatch", netip.AddrFrom16(secWrong), good, hba.ErrSecMismatch},
		{"no multi-prefix", lsAddrs[1], good[:len(good)-32], hba.ErrNoMultiPrefix},
		{"ipv4 locator", netip.MustParseAddr("192.0.2.1"), good, hba.ErrBadAddress},
		{"bad multi-prefix length", lsAddrs[1], mutate(func(b []byte) []byte { b[len(b)-29] = 27; return b[:len(b)-1] }), hba.ErrBadMultiPrefix},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := hba.VerifyHBA(tc.addr, tc.pds)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyHBA = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyHBA = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyCGANegative(t *testing.T) {
	good := rfcPDS(t, rfcFinalMod)
	addr := netip.MustParseAddr(rfcAddr)
	flip := func(i int, m byte) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= m
		return b
	}
	tests := []struct {
		name string
		addr netip.Addr
		pds  []byte
		want error
	}{
		{"good", addr, good, nil},
		{"other prefix", netip.MustParseAddr("2001:db8::3c4a:5bf6:ffb4:ca6c"), good, hba.ErrPrefixMismatch},
		{"flipped key bit", addr, flip(60, 1), hba.ErrHashMismatch},
		{"flipped modifier", addr, flip(15, 1), hba.ErrHashMismatch},
		{"collision count 3", addr, flip(24, 3), hba.ErrCollisionCount},
		{"sec 7 claimed", netip.MustParseAddr("fe80::fc4a:5bf6:ffb4:ca6c"), good, hba.ErrSecMismatch},
		{"truncated", addr, good[:len(good)-1], hba.ErrTruncated},
		{"4in6", netip.MustParseAddr("::ffff:192.0.2.1"), good, hba.ErrBadAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := hba.VerifyCGA(tc.addr, tc.pds)
			if (tc.want == nil && err != nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("VerifyCGA = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParsePDS(t *testing.T) {
	fixed := make([]byte, 25)
	seq := func(hdr ...byte) []byte { return append(append([]byte(nil), fixed...), hdr...) }
	long := seq(append([]byte{0x30, 0x81, 0x80}, make([]byte, 0x80)...)...)
	long2 := seq(append([]byte{0x30, 0x82, 0x01, 0x00}, make([]byte, 0x100)...)...)
	tests := []struct {
		name    string
		in      []byte
		want    error
		keyLen  int
		extsLen int
	}{
		{"empty", nil, hba.ErrTruncated, 0, 0},
		{"fixed only", fixed, hba.ErrTruncated, 0, 0},
		{"empty sequence", seq(0x30, 0x00), nil, 2, 0},
		{"not a sequence", seq(0x31, 0x00), hba.ErrBadDER, 0, 0},
		{"short form overrun", seq(0x30, 0x05, 0, 0), hba.ErrTruncated, 0, 0},
		{"long form 1", long, nil, 0x83, 0},
		{"long form 2", long2, nil, 0x104, 0},
		{"long form missing octet", seq(0x30, 0x81), hba.ErrTruncated, 0, 0},
		{"long form 2 missing octets", seq(0x30, 0x82, 0x01), hba.ErrTruncated, 0, 0},
		{"non-minimal 0x81", seq(0x30, 0x81, 0x05, 0, 0, 0, 0, 0), hba.ErrBadDER, 0, 0},
		{"non-minimal 0x82", seq(0x30, 0x82, 0x00, 0x80), hba.ErrBadDER, 0, 0},
		{"indefinite", seq(0x30, 0x80, 0, 0), hba.ErrBadDER, 0, 0},
		{"length of length 3", seq(0x30, 0x83, 0, 1, 0), hba.ErrBadDER, 0, 0},
		{"long form overrun", seq(0x30, 0x81, 0x90, 0), hba.ErrTruncated, 0, 0},
		{"extension", seq(0x30, 0x00, 0xff, 0xfd, 0x00, 0x02, 0xaa, 0xbb), nil, 2, 6},
		{"empty extension", seq(0x30, 0x00, 0x00, 0x12, 0x00, 0x00), nil, 2, 4},
		{"extension header cut", seq(0x30, 0x00, 0xff, 0xfd, 0x00), hba.ErrBadExtension, 0, 0},
		{"extension data overrun", seq(0x30, 0x00, 0xff, 0xfd, 0x00, 0x03, 0xaa, 0xbb), hba.ErrBadExtension, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := hba.ParsePDS(tc.in)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || p != nil {
					t.Fatalf("ParsePDS = %v, %v; want %v", p, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePDS: %v", err)
			}
			if len(p.PublicKey()) != tc.keyLen || len(p.ExtensionFields()) != tc.extsLen {
				t.Fatalf("key %d ext %d, want %d %d", len(p.PublicKey()), len(p.ExtensionFields()), tc.keyLen, tc.extsLen)
			}
		})
	}
}

// TestTruncatedAtEveryLength cuts the LinShim6 PDS at every length: each
// prefix must be rejected with a typed error, never verify, never panic.
func TestTruncatedAtEveryLength(t *testing.T) {
	full := lsPDS(t, 1)
	for n := range len(full) {
		b := full[:n]
		_, err := hba.ParsePDS(b)
		switch {
		case n == 25+68:
			// Key ends here: a valid PDS without extensions.
			if err != nil {
				t.Errorf("len %d: %v", n, err)
			}
			if err := hba.VerifyHBA(lsAddrs[1], b); !errors.Is(err, hba.ErrNoMultiPrefix) {
				t.Errorf("len %d: VerifyHBA = %v", n, err)
			}
		case n < 25+68:
			if !errors.Is(err, hba.ErrTruncated) {
				t.Errorf("len %d: %v, want ErrTruncated", n, err)
			}
		default:
			if !errors.Is(err, hba.ErrBadExtension) {
				t.Errorf("len %d: %v, want ErrBadExtension", n, err)
			}
		}
		if hba.VerifyHBA(lsAddrs[1], b) == nil || hba.VerifyCGA(lsAddrs[1], b) == nil {
			t.Errorf("len %d verified", n)
		}
	}
}

func TestExtensions(t *testing.T) {
	pds := hba.AppendPDS(nil, [16]byte{1}, [8]byte{2}, 1, []byte{0x30, 0x00},
		hba.AppendExtension(hba.AppendExtension(nil, 0xfffd, []byte{9, 9}), hba.ExtMultiPrefix, []byte{0x80, 0, 0, 0}))
	p, err := hba.ParsePDS(pds)
	if err != nil {
		t.Fatal(err)
	}
	var types []uint16
	var lens []int
	for typ, data := range p.Extensions() {
		types = append(types, typ)
		lens = append(lens, len(data))
	}
	if len(types) != 2 || types[0] != 0xfffd || types[1] != hba.ExtMultiPrefix || lens[0] != 2 || lens[1] != 4 {
		t.Fatalf("extensions %v %v", types, lens)
	}
	mp, err := p.MultiPrefix()
	if err != nil || !mp.P() || mp.Len() != 0 {
		t.Fatalf("MultiPrefix = %v %v", mp, err)
	}
	if p.Modifier() != [16]byte{1} || p.SubnetPrefix() != [8]byte{2} || p.CollisionCount() != 1 {
		t.Fatal("fixed fields")
	}
}

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

func rsaKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

func TestSignVerify(t *testing.T) {
	priv := rsaKey(t)
	prefix := netip.MustParsePrefix("2001:db8:a:1::/64")
	addr, pds, err := hba.GenerateCGA(rand.Reader, &priv.PublicKey, prefix, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !prefix.Contains(addr) || addr.As16()[8]>>5 != 1 {
		t.Fatalf("address %s", addr)
	}
	if err := hba.VerifyCGA(addr, pds); err != nil {
		t.Fatalf("VerifyCGA: %v", err)
	}
	msg := []byte("generation and locators")
	sig, err := hba.Sign(priv, hba.ShimCGATypeTag, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := hba.VerifySignature(pds, hba.ShimCGATypeTag, msg, sig); err != nil {
		t.Fatalf("VerifySignature: %v", err)
	}
	badSig := append([]byte(nil), sig...)
	badSig[10] ^= 1
	otherTag := hba.ShimCGATypeTag
	otherTag[0] ^= 1
	other, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, otherPDS, err := hba.GenerateCGA(rand.Reader, &other.PublicKey, prefix, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pds  []byte
		tag  [16]byte
		msg  []byte
		sig  []byte
		want error
	}{
		{"tampered message", pds, hba.ShimCGATypeTag, []byte("generation and locatorz"), sig, hba.ErrBadSignature},
		{"tampered signature", pds, hba.ShimCGATypeTag, msg, badSig, hba.ErrBadSignature},
		{"other type tag", pds, otherTag, msg, sig, hba.ErrBadSignature},
		{"other key", otherPDS, hba.ShimCGATypeTag, msg, sig, hba.ErrBadSignature},
		{"hba-only pds", lsPDS(t, 0), hba.ShimCGATypeTag, msg, sig, hba.ErrNotRSAKey},
		{"truncated pds", pds[:40], hba.ShimCGATypeTag, msg, sig, hba.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := hba.VerifySignature(tc.pds, tc.tag, tc.msg, tc.sig); !errors.Is(err, tc.want) {
				t.Fatalf("VerifySignature = %v, want %v", err, tc.want)
			}
		})
	}
	// crypto/rsa refuses to generate keys under 1024 bits; a modulus
	// of the right size is enough to exercise the size checks.
	small := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 511), E: 65537}}
	if _, err := hba.Sign(small, hba.ShimCGATypeTag, msg); !errors.Is(err, hba.ErrKeyTooSmall) {
		t.Errorf("Sign with 512 bits: %v", err)
	}
	if _, _, err := hba.GenerateCGA(rand.Reader, &small.PublicKey, prefix, 0, nil, nil); !errors.Is(err, hba.ErrKeyTooSmall) {
		t.Errorf("GenerateCGA with 512 bits: %v", err)
	}
}

func TestCGAHBASet(t *testing.T) {
	priv := rsaKey(t)
	prefixes := []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")}
	s, err := hba.GenerateCGAHBA(rand.Reader, &priv.PublicKey, prefixes, 1)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("locator list")
	sig, err := hba.Sign(priv, hba.ShimCGATypeTag, msg)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range s.Addresses {
		pds := s.PDS(i)
		p, _ := hba.ParsePDS(pds)
		mp, err := p.MultiPrefix()
		if err != nil || !mp.P() {
			t.Fatalf("P flag not set: %v", err)
		}
		if err := hba.VerifyCGA(a, pds); err != nil {
			t.Errorf("VerifyCGA %d: %v", i, err)
		}
		if err := hba.VerifyHBA(a, s.PDS(1-i)); err != nil {
			t.Errorf("VerifyHBA %d: %v", i, err)
		}
		if err := hba.VerifySignature(pds, hba.ShimCGATypeTag, msg, sig); err != nil {
			t.Errorf("VerifySignature %d: %v", i, err)
		}
	}
}

func TestGenerateCollisions(t *testing.T) {
	p := hba.SetParams{Prefixes: lsPrefixes, Sec: 1, Modifier: [16]byte(unhex(t, lsStartMod)), ExtendedModifier: [48]byte(unhex(t, lsEM))}
	seen := 0
	p.Collides = func(netip.Addr) bool { seen++; return seen <= 2 } // first two tries collide
	s, err := hba.GenerateSet(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.CollisionCount != 2 {
		t.Fatalf("collision count %d, want 2", s.CollisionCount)
	}
	if s.Addresses[1] == lsAddrs[1] {
		t.Fatal("address unchanged by collision count")
	}
	for i, a := range s.Addresses {
		if err := hba.VerifyHBA(a, s.PDS(0)); err != nil {
			t.Errorf("VerifyHBA %d: %v", i, err)
		}
	}
	p.Collides = func(netip.Addr) bool { return true }
	if _, err := hba.GenerateSet(p); !errors.Is(err, hba.ErrCollisionCount) {
		t.Fatalf("always colliding: %v", err)
	}
	p.Collides = nil
	p.Sec = 3
	if _, err := hba.GenerateSet(p); !errors.Is(err, hba.ErrUnsupportedSec) {
		t.Fatalf("sec 3: %v", err)
	}
}

func TestGenerateHBARandom(t *testing.T) {
	s, err := hba.GenerateHBA(rand.Reader, lsPrefixes, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range s.Addresses {
		if !lsPrefixes[i].Contains(a) || a.As16()[8]>>5 != 0 {
			t.Errorf("address %d %s", i, a)
		}
		if err := hba.VerifyHBA(a, s.PDS(2-i)); err != nil {
			t.Errorf("VerifyHBA %d: %v", i, err)
		}
	}
}

package hba_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"net/netip"
	"testing"

	"github.com/shim6gw/shim6gw/hba"
)

// fakeRSAKey returns a public key with a random odd modulus of exactly
// bits bits and exponent e: verification costs what a real key of that
// size costs, without generating primes.
func fakeRSAKey(bits, e int) *rsa.PublicKey {
	r := mrand.NewChaCha8([32]byte{byte(bits), byte(e)})
	b := make([]byte, (bits+7)/8)
	r.Read(b)
	n := new(big.Int).SetBytes(b)
	n.SetBit(n, bits-1, 1)
	for i := n.BitLen() - 1; i >= bits; i-- {
		n.SetBit(n, i, 0)
	}
	n.SetBit(n, 0, 1)
	return &rsa.PublicKey{N: n, E: e}
}

// cgaFor makes a Sec 0 CGA and its PDS for pub.
func cgaFor(t testing.TB, pub *rsa.PublicKey) (netip.Addr, []byte) {
	t.Helper()
	a, pds, err := hba.GenerateCGA(rand.Reader, pub, netip.MustParsePrefix("2001:db8:a:1::/64"), 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, pds
}

func TestPeerKeyBounds(t *testing.T) {
	_, honest := cgaFor(t, &rsaKey(t).PublicKey)
	for _, tc := range []struct {
		name    string
		pds     []byte
		maxBits int
		want    error
	}{
		{"1024-bit e=65537", honest, 0, nil},
		{"4096 bits, the default bound", pdsOf(t, fakeRSAKey(4096, 65537)), 0, nil},
		{"4097 bits", pdsOf(t, fakeRSAKey(4097, 65537)), 0, hba.ErrKeyTooLarge},
		{"10400 bits", pdsOf(t, fakeRSAKey(10400, 65537)), 0, hba.ErrKeyTooLarge},
		{"5000 bits under a raised bound", pdsOf(t, fakeRSAKey(5000, 65537)), 8192, nil},
		{"2048 bits under a lowered bound", pdsOf(t, fakeRSAKey(2048, 65537)), 1536, hba.ErrKeyTooLarge},
		{"e = 3", pdsOf(t, fakeRSAKey(2048, 3)), 0, nil},
		{"e = 65539", pdsOf(t, fakeRSAKey(2048, 65539)), 0, hba.ErrKeyTooLarge},
		{"e = 2^31-1", pdsOf(t, fakeRSAKey(2048, 1<<31-1)), 0, hba.ErrKeyTooLarge},
		{"hba-only pds", lsPDS(t, 0), 0, hba.ErrNotRSAKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hba.PeerKey(tc.pds, tc.maxBits)
			if (tc.want == nil && err != nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("PeerKey = %v, want %v", err, tc.want)
			}
		})
	}
	// VerifySignature applies the default bounds.
	sig := make([]byte, 10400/8)
	if err := hba.VerifySignature(pdsOf(t, fakeRSAKey(10400, 1<<31-1)), hba.ShimCGATypeTag, []byte("m"), sig); !errors.Is(err, hba.ErrKeyTooLarge) {
		t.Errorf("VerifySignature with 10400 bits, e=2^31-1: %v", err)
	}
}

func pdsOf(t testing.TB, pub *rsa.PublicKey) []byte {
	_, pds := cgaFor(t, pub)
	return pds
}

// VerifyLocators checks the signature once and names the locator at
// fault, so the engine need not verify again to place the Error Pointer.
func TestVerifierLocatorError(t *testing.T) {
	other := otherSet(t)
	big := fakeRSAKey(5000, 65537)
	bigULID, bigPDS := cgaFor(t, big)
	foreign := netip.MustParseAddr("2001:db8:b:1::99")
	cga := []uint8{hba.MethodCGA, hba.MethodCGA}
	for _, tc := range []struct {
		name      string
		v         hba.Verifier
		ulid      netip.Addr
		pds       []byte
		locs      []netip.Addr
		methods   []uint8
		want      error
		wantIndex int
	}{
		{"hba locator 2 from another set", hba.Verifier{}, lsAddrs[0], lsPDS(t, 0), []netip.Addr{lsAddrs[0], lsAddrs[1], other.Addresses[2]}, nil, hba.ErrHashMismatch, 2},
		{"ulid not in the set", hba.Verifier{}, other.Addresses[0], lsPDS(t, 0), lsAddrs, nil, hba.ErrHashMismatch, 0},
		{"unknown method at 1", hba.Verifier{}, lsAddrs[0], lsPDS(t, 0), lsAddrs, []uint8{1, 9, 1}, hba.ErrUnsupportedMethod, 1},
		{"cga after hba, hba-only pds", hba.Verifier{}, lsAddrs[0], lsPDS(t, 0), lsAddrs, []uint8{1, 2, 2}, hba.ErrNotRSAKey, 1},
		{"5000-bit key refused", hba.Verifier{}, bigULID, bigPDS, []netip.Addr{bigULID, foreign}, cga, hba.ErrKeyTooLarge, 0},
		{"5000-bit key under MaxKeyBits 8192: bad signature", hba.Verifier{MaxKeyBits: 8192}, bigULID, bigPDS, []netip.Addr{bigULID, foreign}, cga, hba.ErrBadSignature, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.VerifyLocators(tc.ulid, tc.pds, make([]byte, 625), 7, tc.locs, tc.methods)
			var le *hba.LocatorError
			if !errors.Is(err, tc.want) || !errors.As(err, &le) {
				t.Fatalf("VerifyLocators = %v, want a LocatorError wrapping %v", err, tc.want)
			}
			if le.LocatorIndex() != tc.wantIndex {
				t.Errorf("index %d, want %d", le.LocatorIndex(), tc.wantIndex)
			}
		})
	}
}

// BenchmarkVerifyLocators shows what one peer locator list costs the
// verifier: honest HBA and CGA lists next to the lists a peer could send
// to make us work (bogus signatures with the largest key accepted, and
// keys refused by size or exponent). The "unbounded" cases time the raw
// RSA check the bounds avoid.
func BenchmarkVerifyLocators(b *testing.B) {
	foreign := netip.MustParseAddr("2001:db8:b:1::99")
	cgaList := func(priv *rsa.PrivateKey, pub *rsa.PublicKey) (netip.Addr, []byte, []netip.Addr, []byte) {
		ulid, pds := cgaFor(b, pub)
		locs := []netip.Addr{ulid, foreign}
		sig := make([]byte, (pub.N.BitLen()+7)/8)
		if priv != nil {
			var err error
			sig, err = hba.Sign(priv, hba.ShimCGATypeTag, hba.ShimSignedMessage(7, locs, []uint8{2, 2}))
			if err != nil {
				b.Fatal(err)
			}
		}
		return ulid, pds, locs, sig
	}
	k2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	type tc struct {
		name string
		ulid netip.Addr
		pds  []byte
		locs []netip.Addr
		meth []uint8
		sig  []byte
		want error
	}
	cases := []tc{{name: "hba_3_locators", ulid: lsAddrs[0], pds: lsPDS(b, 0), locs: lsAddrs}}
	for _, c := range []struct {
		name string
		priv *rsa.PrivateKey
		pub  *rsa.PublicKey
		want error
	}{
		{"cga_1024_honest", rsaKey(b), &rsaKey(b).PublicKey, nil},
		{"cga_2048_honest", k2048, &k2048.PublicKey, nil},
		{"cga_4096_bogus_signature", nil, fakeRSAKey(4096, 65537), hba.ErrBadSignature},
		{"cga_5000_refused", nil, fakeRSAKey(5000, 65537), hba.ErrKeyTooLarge},
		{"cga_10400_e2^31-1_refused", nil, fakeRSAKey(10400, 1<<31-1), hba.ErrKeyTooLarge},
	} {
		ulid, pds, locs, sig := cgaList(c.priv, c.pub)
		cases = append(cases, tc{c.name, ulid, pds, locs, []uint8{2, 2}, sig, c.want})
	}
	var v hba.Verifier
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := v.VerifyLocators(c.ulid, c.pds, c.sig, 7, c.locs, c.meth); !errors.Is(err, c.want) {
					b.Fatal(err)
				}
			}
		})
	}
	for _, bits := range []int{5000, 10400} {
		pub := fakeRSAKey(bits, 1<<31-1)
		b.Run("unbounded_rsa_"+big.NewInt(int64(bits)).String()+"_e2^31-1", func(b *testing.B) {
			sig := make([]byte, (bits+7)/8)
			sig[1] = 1
			for b.Loop() {
				_ = rsa.VerifyPKCS1v15(pub, 0, make([]byte, 20), sig)
			}
		})
	}
}

// FuzzPeerKey: a PDS from the network never panics the key check; any
// error is typed, and an accepted key is within the bounds.
func FuzzPeerKey(f *testing.F) {
	for _, s := range pdsSeeds(f) {
		f.Add(s, 0)
	}
	f.Add(pdsOf(f, fakeRSAKey(2048, 65537)), 0)
	f.Add(pdsOf(f, fakeRSAKey(4097, 65537)), 8192)
	f.Add(pdsOf(f, fakeRSAKey(1024, 1<<31-1)), 0)
	f.Fuzz(func(t *testing.T, pds []byte, maxBits int) {
		maxBits %= 1 << 15
		pub, err := hba.PeerKey(pds, maxBits)
		if err != nil {
			if !typed(err) && !errors.Is(err, hba.ErrNotRSAKey) && !errors.Is(err, hba.ErrKeyTooSmall) && !errors.Is(err, hba.ErrKeyTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		limit := maxBits
		if limit <= 0 {
			limit = hba.DefaultMaxRSABits
		}
		if b := pub.N.BitLen(); b < hba.MinRSABits || b > limit || pub.E < 3 || pub.E > hba.MaxRSAExponent {
			t.Fatalf("accepted a %d-bit key with e = %d (bound %d)", b, pub.E, limit)
		}
	})
}

package hba_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"

	"github.com/shim6gw/shim6gw/hba"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// RFC 3972 Appendix A (digest §11.1).
const (
	rfcKey       = "305c300d06092a864886f70d0101010500034b003048024100c2c2f137305454f10bd9cea36844b530e9211a4b262b16467cb7dfba1f595c0194f275be5a4d386f2c3c2382508773c7867f9b3b9e63a09c7bc48f7a54ebefaf0203010001"
	rfcStartMod  = "89a8a8b2e858d8b8f2633f44d2d4ce9a"
	rfcFinalMod  = "89a8a8b2e858d8b8f2633f44d2d4ce9b"
	rfcAddr      = "fe80::3c4a:5bf6:ffb4:ca6c"
	rfcPrefixHex = "fe80000000000000"
)

func rfcPDS(t testing.TB, mod string) []byte {
	return unhex(t, mod+rfcPrefixHex+"00"+rfcKey)
}

func TestRFC3972AppendixA(t *testing.T) {
	key := unhex(t, rfcKey)
	if len(key) != 94 {
		t.Fatalf("key is %d octets, want 94", len(key))
	}
	start, err := hba.ParsePDS(rfcPDS(t, rfcStartMod))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(func() []byte { h := start.Hash2(); return h[:] }()); got != "436b9a70dbfddbf1926e6e6629c0" {
		t.Errorf("Hash2(start) = %s", got)
	}
	p, err := hba.ParsePDS(rfcPDS(t, rfcFinalMod))
	if err != nil {
		t.Fatal(err)
	}
	h2 := p.Hash2()
	if got := hex.EncodeToString(h2[:]); got != "000001ca680b83888d0912dffcce" {
		t.Errorf("Hash2 = %s", got)
	}
	h1 := p.Hash1()
	if got := hex.EncodeToString(h1[:]); got != "fd4a5bf6ffb4ca6c" {
		t.Errorf("Hash1 = %s", got)
	}
	iid := hba.InterfaceID(h1, 1)
	if got := hex.EncodeToString(iid[:]); got != "3c4a5bf6ffb4ca6c" {
		t.Errorf("IID = %s", got)
	}
	if !bytes.Equal(p.PublicKey(), key) || len(p.ExtensionFields()) != 0 {
		t.Errorf("PublicKey/ExtensionFields split wrong: %d/%d", len(p.PublicKey()), len(p.ExtensionFields()))
	}
	if p.CollisionCount() != 0 || p.SubnetPrefix() != [8]byte{0xfe, 0x80} {
		t.Errorf("fixed fields wrong")
	}
	if err := hba.VerifyCGA(netip.MustParseAddr(rfcAddr), p); err != nil {
		t.Errorf("VerifyCGA: %v", err)
	}
	// The starting modifier fails the Sec 1 check; find its own address
	// with a Sec of 0 and check Sec 1 is refused for it.
	sh1 := start.Hash1()
	id0 := hba.InterfaceID(sh1, 0)
	id1 := hba.InterfaceID(sh1, 1)
	a0 := netip.AddrFrom16([16]byte(append([]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0}, id0[:]...)))
	a1 := netip.AddrFrom16([16]byte(append([]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0}, id1[:]...)))
	if err := hba.VerifyCGA(a0, start); err != nil {
		t.Errorf("Sec 0 with start modifier: %v", err)
	}
	if err := hba.VerifyCGA(a1, start); !errors.Is(err, hba.ErrSecMismatch) {
		t.Errorf("Sec 1 with start modifier: %v, want ErrSecMismatch", err)
	}
}

// LinShim6 HBA vector (digest §11.2).
const (
	lsEM        = "a36844b530e9211a4b262b16467cb7dfba1f595c0194f275be5a4d386f2c3c2382508773c7867f9b3b9e63a09c7bc48f"
	lsDERPrefix = "3042300d06092a864886f70d0101010500033100"
	lsExt       = "0012001c00000000fe80000000000000200106881f9900012001066073010001"
	lsStartMod  = "89a8a8b2e858d8b8f2633f44d2d7c361"
	lsFinalMod  = "89a8a8b2e858d8b8f2633f44d2d7c362"
)

var (
	lsPrefixes = []netip.Prefix{
		netip.MustParsePrefix("fe80::/64"),
		netip.MustParsePrefix("2001:688:1f99:1::/64"),
		netip.MustParsePrefix("2001:660:7301:1::/64"),
	}
	lsAddrs = []netip.Addr{
		netip.MustParseAddr("fe80::2c5f:924d:c4c:824e"),
		netip.MustParseAddr("2001:688:1f99:1:3cae:90c0:f2b6:e582"),
		netip.MustParseAddr("2001:660:7301:1:3cd1:7773:6f00:f11b"),
	}
	lsHash1 = []string{"4f5f924d0c4c824e", "beae90c0f2b6e582", "9cd177736f00f11b"}
)

func lsPDS(t testing.TB, i int) []byte {
	pfx := lsPrefixes[i].Addr().As16()
	return unhex(t, lsFinalMod+hex.EncodeToString(pfx[:8])+"00"+lsDERPrefix+lsEM+lsExt)
}

func TestLinShim6Vector(t *testing.T) {
	em := [48]byte(unhex(t, lsEM))
	if got, want := hba.EncodeExtendedModifier(em), unhex(t, lsDERPrefix+lsEM); !bytes.Equal(got, want) {
		t.Fatalf("EncodeExtendedModifier = %x, want %x", got, want)
	}
	if got := hba.AppendMultiPrefix(nil, false, lsPrefixes); !bytes.Equal(got, unhex(t, lsExt)) {
		t.Fatalf("AppendMultiPrefix = %x", got)
	}
	for _, c := range []struct{ mod, hash2 string }{
		{lsStartMod, "8f238ed53ae8b584d72164c5c160"},
		{lsFinalMod, "0000ad8a46e83c4494b7611dd011"},
	} {
		p, err := hba.ParsePDS(unhex(t, c.mod+"0000000000000000"+"00"+lsDERPrefix+lsEM+lsExt))
		if err != nil {
			t.Fatal(err)
		}
		if h := p.Hash2(); hex.EncodeToString(h[:]) != c.hash2 {
			t.Errorf("Hash2(%s) = %x, want %s", c.mod, h, c.hash2)
		}
	}
	// Generation from the start modifier reproduces the whole set.
	s, err := hba.GenerateSet(hba.SetParams{
		Prefixes: lsPrefixes, Sec: 1, Modifier: [16]byte(unhex(t, lsStartMod)), ExtendedModifier: em,
	})
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(s.Modifier[:]) != lsFinalMod || s.CollisionCount != 0 {
		t.Errorf("modifier %x count %d", s.Modifier, s.CollisionCount)
	}
	for i, want := range lsAddrs {
		if s.Addresses[i] != want {
			t.Errorf("address %d = %s, want %s", i, s.Addresses[i], want)
		}
		pds := s.PDS(i)
		if !bytes.Equal(pds, lsPDS(t, i)) {
			t.Errorf("PDS %d = %x", i, pds)
		}
		p, _ := hba.ParsePDS(pds)
		if h := p.Hash1(); hex.EncodeToString(h[:]) != lsHash1[i] {
			t.Errorf("Hash1 %d = %x, want %s", i, h, lsHash1[i])
		}
		if err := hba.VerifyCGA(want, pds); err != nil {
			t.Errorf("VerifyCGA(%s, own PDS): %v", want, err)
		}
		for j := range lsAddrs {
			if err := hba.VerifyHBA(want, lsPDS(t, j)); err != nil {
				t.Errorf("VerifyHBA(%s, PDS %d): %v", want, j, err)
			}
		}
	}
	// The 125-octet PDS of the second address, spelled out.
	want125 := unhex(t, "89a8a8b2e858d8b8f2633f44d2d7c362"+"200106881f990001"+"00"+lsDERPrefix+lsEM+lsExt)
	if len(want125) != 125 || !bytes.Equal(s.PDS(1), want125) {
		t.Errorf("PDS(1) = %x (len %d)", s.PDS(1), len(s.PDS(1)))
	}
	p, _ := hba.ParsePDS(want125)
	mp, err := p.MultiPrefix()
	if err != nil || mp.P() || mp.Len() != 3 || mp.Index([8]byte(unhex(t, "2001066073010001"))) != 2 {
		t.Errorf("MultiPrefix: %v P=%v len=%d", err, mp.P(), mp.Len())
	}
	// Cross-check: second address with the first address's PDS.
	if err := hba.VerifyHBA(lsAddrs[1], lsPDS(t, 0)); err != nil {
		t.Errorf("cross-check: %v", err)
	}
	flipped := lsAddrs[1].As16()
	flipped[15] ^= 1
	if err := hba.VerifyHBA(netip.AddrFrom16(flipped), lsPDS(t, 0)); !errors.Is(err, hba.ErrHashMismatch) {
		t.Errorf("flipped last bit: %v", err)
	}
	if err := hba.VerifyHBA(netip.MustParseAddr("2001:db8::3cae:90c0:f2b6:e582"), lsPDS(t, 0)); !errors.Is(err, hba.ErrPrefixNotInSet) {
		t.Errorf("prefix not in list: %v", err)
	}
	// A CGA check of the second address against the first PDS fails: the
	// prefix differs (RFC 5535 §7.2 is why VerifyHBA substitutes it).
	if err := hba.VerifyCGA(lsAddrs[1], lsPDS(t, 0)); !errors.Is(err, hba.ErrPrefixMismatch) {
		t.Errorf("VerifyCGA across set: %v", err)
	}
}

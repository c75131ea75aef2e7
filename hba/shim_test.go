package hba_test

import (
	"crypto/rand"
	"errors"
	"net/netip"
	"testing"

	"github.com/shim6gw/shim6gw/hba"
)

func TestShimSignedMessage(t *testing.T) {
	locs := []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3")}
	got := hba.ShimSignedMessage(0x01020304, locs, []uint8{hba.MethodCGA, hba.MethodHBA, hba.MethodCGA})
	want := append([]byte{1, 2, 3, 4}, append(locs[0].AsSlice(), locs[2].AsSlice()...)...)
	if string(got) != string(want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

func TestVerifierHBA(t *testing.T) {
	var v hba.Verifier
	pds := lsPDS(t, 0)
	other := otherSet(t)
	foreign := netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name    string
		ulid    netip.Addr
		pds     []byte
		locs    []netip.Addr
		methods []uint8
		want    error
	}{
		{"all hba, nil methods", lsAddrs[0], pds, lsAddrs, nil, nil},
		{"all hba", lsAddrs[0], pds, lsAddrs, []uint8{1, 1, 1}, nil},
		{"ulid from pds of another address", lsAddrs[2], pds, lsAddrs[1:], nil, nil},
		{"ulid not in set", other.Addresses[0], pds, lsAddrs, nil, hba.ErrHashMismatch},
		{"locator from another set", lsAddrs[0], pds, []netip.Addr{lsAddrs[1], other.Addresses[2]}, nil, hba.ErrHashMismatch},
		{"locator outside prefixes", lsAddrs[0], pds, []netip.Addr{foreign}, nil, hba.ErrPrefixNotInSet},
		{"method count mismatch", lsAddrs[0], pds, lsAddrs, []uint8{1}, hba.ErrUnsupportedMethod},
		{"unknown method", lsAddrs[0], pds, lsAddrs, []uint8{1, 7, 1}, hba.ErrUnsupportedMethod},
		{"cga without signature", lsAddrs[0], pds, lsAddrs, []uint8{1, 2, 1}, hba.ErrBadSignature},
		{"bad pds", lsAddrs[0], pds[:30], lsAddrs, nil, hba.ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.VerifyLocators(tc.ulid, tc.pds, nil, 7, tc.locs, tc.methods)
			if (tc.want == nil && err != nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("VerifyLocators = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifierCGA(t *testing.T) {
	priv := rsaKey(t)
	ulid, pds, err := hba.GenerateCGA(rand.Reader, &priv.PublicKey, netip.MustParsePrefix("2001:db8:a:1::/64"), 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	locs := []netip.Addr{ulid, netip.MustParseAddr("2001:db8:b:1::99")}
	methods := []uint8{hba.MethodCGA, hba.MethodCGA}
	sig, err := hba.Sign(priv, hba.ShimCGATypeTag, hba.ShimSignedMessage(9, locs, methods))
	if err != nil {
		t.Fatal(err)
	}
	var v hba.Verifier
	if err := v.VerifyLocators(ulid, pds, sig, 9, locs, methods); err != nil {
		t.Fatalf("VerifyLocators: %v", err)
	}
	if err := v.VerifyLocators(ulid, pds, sig, 10, locs, methods); !errors.Is(err, hba.ErrBadSignature) {
		t.Fatalf("other generation: %v", err)
	}
	swapped := []netip.Addr{locs[1], locs[0]}
	if err := v.VerifyLocators(ulid, pds, sig, 9, swapped, methods); !errors.Is(err, hba.ErrBadSignature) {
		t.Fatalf("reordered locators: %v", err)
	}
	wrong := ulid.As16()
	wrong[15] ^= 1
	if err := v.VerifyLocators(netip.AddrFrom16(wrong), pds, sig, 9, locs, methods); !errors.Is(err, hba.ErrHashMismatch) {
		t.Fatalf("wrong ulid: %v", err)
	}
	// HBA method with a PDS that has no Multi-Prefix extension.
	if err := v.VerifyLocators(ulid, pds, sig, 9, locs, []uint8{hba.MethodCGA, hba.MethodHBA}); !errors.Is(err, hba.ErrNoMultiPrefix) {
		t.Fatalf("hba method without multi-prefix: %v", err)
	}
}

package hba_test

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/shim6gw/shim6gw/hba"
)

var sentinels = []error{
	hba.ErrTruncated, hba.ErrBadDER, hba.ErrBadExtension, hba.ErrBadMultiPrefix, hba.ErrNoMultiPrefix,
	hba.ErrPrefixNotInSet, hba.ErrPrefixMismatch, hba.ErrCollisionCount, hba.ErrHashMismatch,
	hba.ErrSecMismatch, hba.ErrBadAddress,
}

func typed(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func pdsSeeds(f *testing.F) [][]byte {
	seeds := [][]byte{
		unhex(f, rfcFinalMod+rfcPrefixHex+"00"+rfcKey),
		lsPDS(f, 0), lsPDS(f, 1), lsPDS(f, 2),
		lsPDS(f, 1)[:100],
		append(make([]byte, 25), 0x30, 0x81, 0x80),
		append(make([]byte, 25), 0x30, 0x82, 0x01, 0x00),
		append(make([]byte, 25), 0x30, 0x00, 0xff, 0xfd, 0x00, 0x02, 0xaa),
	}
	return seeds
}

// FuzzParsePDS: never panics, errors are typed, and a parsed PDS
// re-encodes to the same bytes with consistent accessors.
func FuzzParsePDS(f *testing.F) {
	for _, s := range pdsSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := hba.ParsePDS(b)
		if err != nil {
			if !typed(err) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		var exts []byte
		for typ, data := range p.Extensions() {
			exts = hba.AppendExtension(exts, typ, data)
		}
		if !bytes.Equal(exts, p.ExtensionFields()) {
			t.Fatalf("extensions re-encode to %x, want %x", exts, p.ExtensionFields())
		}
		re := hba.AppendPDS(nil, p.Modifier(), p.SubnetPrefix(), p.CollisionCount(), p.PublicKey(), exts)
		if !bytes.Equal(re, b) {
			t.Fatalf("round trip %x != %x", re, b)
		}
		if mp, err := p.MultiPrefix(); err == nil {
			for i := range mp.Len() {
				if mp.Index(mp.Prefix(i)) > i {
					t.Fatalf("Index after position %d", i)
				}
			}
		} else if !typed(err) {
			t.Fatalf("untyped error %v", err)
		}
		_ = p.Hash1()
		_ = p.Hash2()
	})
}

// FuzzVerifyHBA: never panics, errors are typed, and whatever verifies as
// an HBA is in the Multi-Prefix list.
func FuzzVerifyHBA(f *testing.F) {
	for _, s := range pdsSeeds(f) {
		for _, a := range lsAddrs {
			f.Add(a.AsSlice(), s)
		}
	}
	f.Fuzz(func(t *testing.T, addr, b []byte) {
		a, ok := netip.AddrFromSlice(addr)
		if !ok {
			return
		}
		err := hba.VerifyHBA(a, b)
		if err != nil {
			if !typed(err) {
				t.Fatalf("untyped error %v", err)
			}
		} else {
			p, _ := hba.ParsePDS(b)
			mp, _ := p.MultiPrefix()
			if mp.Index([8]byte(addr[:8])) < 0 {
				t.Fatal("verified a locator outside the list")
			}
		}
		if err := hba.VerifyCGA(a, b); err != nil && !typed(err) {
			t.Fatalf("untyped VerifyCGA error %v", err)
		}
	})
}

package hba_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/shim6gw/shim6gw/hba"
)

func BenchmarkVerifyHBA(b *testing.B) {
	pds := lsPDS(b, 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := hba.VerifyHBA(lsAddrs[1], pds); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCGA(b *testing.B) {
	pds := unhex(b, rfcFinalMod+rfcPrefixHex+"00"+rfcKey)
	rfcA := netip.MustParseAddr(rfcAddr)
	b.ReportAllocs()
	for b.Loop() {
		if err := hba.VerifyCGA(rfcA, pds); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBookEntry reports the cost of building one book entry; ns/op is
// per entry.
func BenchmarkBookEntry(b *testing.B) {
	for _, sec := range []uint8{0, 1} {
		b.Run(fmt.Sprintf("sec=%d", sec), func(b *testing.B) {
			b.ReportAllocs()
			const n = 64
			for b.Loop() {
				if _, err := hba.NewBook([]byte("bench secret"), sitePrefixes, n, hba.WithSec(sec)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	book, err := hba.NewBook([]byte("bench secret"), sitePrefixes, 4096)
	if err != nil {
		b.Fatal(err)
	}
	a := book.Locator(1234, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := book.Lookup(a); !ok {
			b.Fatal("miss")
		}
	}
}

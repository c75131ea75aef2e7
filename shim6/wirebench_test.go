package shim6_test

import (
	"net/netip"
	"testing"

	"github.com/shim6gw/shim6gw/shim6"
)

var (
	benchValidator = make([]byte, 20)
	benchLocs      = []netip.Addr{locA, locB}
	benchMethods   = []uint8{shim6.VerifyHBA, shim6.VerifyHBA}
	benchPrefs     = []shim6.LocatorPreference{{Flags: 0, Priority: 1, Weight: 1}, {Flags: shim6.FlagBroken}}
	benchRecords   = []shim6.ProbeRecord{{Src: locA, Dst: locB, Nonce: 1, Data: 2}, {Src: locB, Dst: locA, Nonce: 3, Data: 4}}
)

func buildI1(buf []byte) []byte { return shim6.AppendI1(buf[:0], ctI, 0x11223344) }

func buildI2(buf []byte) []byte {
	b := shim6.AppendI2(buf[:0], ctI, 1, 2)
	b = shim6.AppendResponderValidator(b, benchValidator)
	b = shim6.AppendULIDPair(b, locA, locB)
	b = shim6.AppendLocatorList(b, 7, benchMethods, benchLocs)
	b = shim6.AppendLocatorPreferences(b, 7, 3, benchPrefs)
	b = shim6.AppendKeepaliveTimeout(b, 30)
	if shim6.FinishMessage(b) != nil {
		panic("finish")
	}
	return b
}

func buildProbe(buf []byte) []byte {
	return shim6.AppendProbe(buf[:0], ctR, shim6.StaExploring, benchRecords[:1], benchRecords[1:])
}

// readAll touches every field so parsing and reading are both measured.
func readAll(m shim6.Message) (sum uint64) {
	switch m.Type() {
	case shim6.TypeI1:
		sum += uint64(shim6.I1(m).InitiatorTag()) + uint64(shim6.I1(m).InitiatorNonce())
	case shim6.TypeI2:
		sum += uint64(shim6.I2(m).InitiatorTag()) + uint64(shim6.I2(m).ResponderNonce())
	case shim6.TypeProbe:
		p := shim6.Probe(m)
		for i := 0; i < p.Psent(); i++ {
			sum += uint64(p.Sent(i).Nonce)
		}
		for i := 0; i < p.Precvd(); i++ {
			sum += uint64(p.Rcvd(i).Data)
		}
	}
	it := m.Options()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		switch o.Type() {
		case shim6.OptLocatorList:
			l, _ := o.LocatorList()
			for i := 0; i < l.Count(); i++ {
				if l.Locator(i).Is6() {
					sum++
				}
			}
		case shim6.OptLocatorPreferences:
			p, _ := o.LocatorPreferences()
			for i := 0; i < p.Count(); i++ {
				sum += uint64(p.Element(i).Priority)
			}
		case shim6.OptULIDPair:
			s, _, _ := o.ULIDPair()
			if s.Is6() {
				sum++
			}
		case shim6.OptKeepaliveTimeout:
			k, _ := o.KeepaliveTimeout()
			sum += uint64(k)
		}
	}
	return sum
}

var wireCases = []struct {
	name  string
	build func([]byte) []byte
}{
	{"I1", buildI1},
	{"I2+options", buildI2},
	{"Probe", buildProbe},
}

func TestWireZeroAllocs(t *testing.T) {
	buf := make([]byte, 0, 2048)
	for _, tc := range wireCases {
		msg := append([]byte{}, tc.build(buf)...)
		if n := testing.AllocsPerRun(100, func() { buf = tc.build(buf) }); n != 0 {
			t.Errorf("build %s: %v allocs", tc.name, n)
		}
		if n := testing.AllocsPerRun(100, func() {
			m, err := shim6.ParseMessage(msg)
			if err != nil {
				t.Fatal(err)
			}
			readAll(m)
		}); n != 0 {
			t.Errorf("parse %s: %v allocs", tc.name, n)
		}
	}
	pkt := make([]byte, 0, 2048)
	msg := buildI2(buf)
	if n := testing.AllocsPerRun(100, func() { pkt = shim6.AppendIPv6Control(pkt[:0], locA, locB, msg) }); n != 0 {
		t.Errorf("AppendIPv6Control: %v allocs", n)
	}
}

var sink uint64

func BenchmarkBuild(b *testing.B) {
	buf := make([]byte, 0, 2048)
	for _, tc := range wireCases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.build(buf))))
			for b.Loop() {
				buf = tc.build(buf)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	buf := make([]byte, 0, 2048)
	for _, tc := range wireCases {
		msg := append([]byte{}, tc.build(buf)...)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				m, err := shim6.ParseMessage(msg)
				if err != nil {
					b.Fatal(err)
				}
				sink += readAll(m)
			}
		})
	}
}

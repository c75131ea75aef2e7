package shim6_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/shim6"
)

// seedMessages returns one built message of every type plus random ones.
func seedMessages(t testing.TB) [][]byte {
	var seeds [][]byte
	r := newRand()
	for _, typ := range allTypes {
		for i := 0; i < 3; i++ {
			seeds = append(seeds, encode(nil, randMsg(r, typ)))
		}
	}
	seeds = append(seeds, i2WithOptions(t),
		unhex(t, "3b 01 01 00 ba 80 2a 5b 3c 4d 5e 6f 11 22 33 44"),
		unhex(t, "3b 01 42 00 b2 c8 01 23 45 67 89 ab 00 00 00 00"))
	return seeds
}

// checkParsed rebuilds a parsed message from its values, parses it again
// and requires the same values.
func checkParsed(t *testing.T, m shim6.Message) {
	if m.Len() != len(m) || m.Len()%8 != 0 {
		t.Fatalf("view length %d, Len %d", len(m), m.Len())
	}
	v := decode(m)
	b := encode(nil, v)
	m2, err := shim6.ParseMessage(b)
	if err != nil {
		t.Fatalf("rebuilt %v does not parse: %v\n% x", v.Type, err, b)
	}
	if v.Type == shim6.TypeError && len(v.Quoted) > shim6.MaxErrorQuote {
		v.Quoted = v.Quoted[:shim6.MaxErrorQuote]
	}
	if diff := cmp.Diff(v, decode(m2), cmpOpts); diff != "" {
		t.Fatalf("values changed by rebuild (-first +second):\n%s", diff)
	}
}

// checkErr requires one of the package's typed errors, with an offset
// inside the input.
func checkErr(t *testing.T, err error, n int) {
	var pe *shim6.ParseError
	var ut *shim6.UnknownTypeError
	var co *shim6.CriticalOptionError
	switch {
	case errors.As(err, &pe):
		if pe.Offset < 0 || pe.Offset > n {
			t.Fatalf("offset %d outside %d octets", pe.Offset, n)
		}
	case errors.As(err, &ut):
	case errors.As(err, &co):
		if co.Offset < 0 || co.Offset+2 > n {
			t.Fatalf("critical option offset %d outside %d octets", co.Offset, n)
		}
	default:
		t.Fatalf("untyped error %T %v", err, err)
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := shim6.ParseMessage(b)
		if err != nil {
			checkErr(t, err, len(b))
			return
		}
		checkParsed(t, m)
	})
}

// FuzzOptions feeds arbitrary option areas through a valid Update Request
// header, so the option parsers see far more than checksum-failing noise.
func FuzzOptions(f *testing.F) {
	for _, s := range seedMessages(f) {
		if m, err := shim6.ParseMessage(s); err == nil {
			f.Add(byte(m.Type()), []byte(m[m.OptionsOffset():]))
		}
	}
	f.Add(byte(shim6.TypeI2), []byte{0x24, 0x69, 0, 3, 1, 2, 3, 0})
	f.Fuzz(func(t *testing.T, typ byte, opts []byte) {
		v := shim6.Type(typ % 128)
		if !v.Known() || v == shim6.TypeProbe || v == shim6.TypeError {
			v = shim6.TypeUpdateRequest
		}
		base := encode(nil, msgVal{Type: v})
		b := append(base, opts...)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		if len(b) > shim6.MaxMessageLen {
			return
		}
		if err := shim6.FinishMessage(b); err != nil {
			t.Fatal(err)
		}
		m, err := shim6.ParseMessage(b)
		if err != nil {
			if errors.Is(err, shim6.ErrBadChecksum) || errors.Is(err, shim6.ErrTruncated) {
				t.Fatalf("finished message rejected: %v", err)
			}
			checkErr(t, err, len(b))
			return
		}
		checkParsed(t, m)
	})
}

func FuzzParsePayloadHeader(f *testing.F) {
	f.Add([]byte{0x11, 0x00, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab})
	f.Add([]byte{0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x45})
	f.Add([]byte{0x3b, 0x01, 0x01, 0x00, 0xba, 0x80, 0x2a, 0x5b})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := shim6.ParsePayloadHeader(b)
		if err != nil {
			if !errors.Is(err, shim6.ErrTruncated) && !errors.Is(err, shim6.ErrNotPayload) && !errors.Is(err, shim6.ErrBadLength) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !h.Tag().Valid() {
			t.Fatalf("tag %#x over 47 bits", h.Tag())
		}
		var out [8]byte
		shim6.PutPayloadHeader(out[:], h.NextHeader(), h.Tag())
		h2, err := shim6.ParsePayloadHeader(out[:])
		if err != nil || h2.NextHeader() != h.NextHeader() || h2.Tag() != h.Tag() {
			t.Fatalf("rebuild: %v %x vs %x", err, out, []byte(h))
		}
		if string(out[:]) != string(b[:8]) {
			t.Fatalf("payload header has no reserved bits, rebuild must match: % x vs % x", out, b[:8])
		}
	})
}

func FuzzParseIPv6Control(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(shim6.AppendIPv6Control(nil, locA, locB, s))
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		src, dst, m, err := shim6.ParseIPv6Control(pkt)
		if err != nil {
			if errors.Is(err, shim6.ErrNotIPv6Shim6) || errors.Is(err, shim6.ErrBadAddress) {
				return
			}
			checkErr(t, err, len(pkt))
			return
		}
		if src.IsMulticast() || dst.IsUnspecified() {
			t.Fatalf("bad addresses accepted: %v %v", src, dst)
		}
		checkParsed(t, m)
	})
}

// FuzzParseMessageChecksummed fixes up the checksum (when Hdr Ext Len fits)
// before parsing, so the fuzzer gets past the checksum into the type,
// probe and option checks.
func FuzzParseMessageChecksummed(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 8 {
			if n := (int(b[1]) + 1) * 8; n <= len(b) {
				b[4], b[5] = 0, 0
				c := shim6.ControlChecksum(b[:n])
				b[4], b[5] = byte(c>>8), byte(c)
			}
		}
		m, err := shim6.ParseMessage(b)
		if err != nil {
			if errors.Is(err, shim6.ErrBadChecksum) {
				t.Fatalf("checksum fixed up but rejected: % x", b)
			}
			checkErr(t, err, len(b))
			return
		}
		checkParsed(t, m)
	})
}

// FuzzQuoted covers the lenient parsers for quoted packets.
func FuzzQuoted(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(shim6.AppendIPv6Control(nil, locA, locB, s))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		src, dst, shim, ok := shim6.SplitQuotedIPv6(q)
		if !ok {
			return
		}
		if len(shim) != len(q)-shim6.IPv6HeaderLen || src.As16() != [16]byte(q[8:24]) || dst.As16() != [16]byte(q[24:40]) {
			t.Fatal("split wrong")
		}
		typ, tag, ok := shim6.PeekTag(shim)
		if ok && !tag.Valid() {
			t.Fatalf("tag %#x over 47 bits (type %v)", tag, typ)
		}
	})
}

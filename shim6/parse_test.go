package shim6_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/shim6"
)

// refinish recomputes length and checksum after a test mutated b.
func refinish(t *testing.T, b []byte) []byte {
	t.Helper()
	if err := shim6.FinishMessage(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func i2WithOptions(t testing.TB) []byte {
	b := shim6.AppendI2(nil, ctI, 1, 2)
	b = shim6.AppendResponderValidator(b, []byte("validator-0123456789"))
	b = shim6.AppendULIDPair(b, locA, locB)
	b = shim6.AppendLocatorList(b, 7, []uint8{1, 1}, []netip.Addr{locA, locB})
	if err := shim6.FinishMessage(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTruncatedAtEveryLength(t *testing.T) {
	full := i2WithOptions(t)
	for n := 0; n < len(full); n++ {
		_, err := shim6.ParseMessage(full[:n])
		if !errors.Is(err, shim6.ErrTruncated) {
			t.Fatalf("length %d of %d: error %v, want ErrTruncated", n, len(full), err)
		}
		var pe *shim6.ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("length %d: not a *ParseError: %T", n, err)
		}
	}
	if _, err := shim6.ParseMessage(full); err != nil {
		t.Fatalf("full message: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	type want struct {
		Err    error
		Offset int
	}
	tests := []struct {
		name   string
		mutate func(t *testing.T, b []byte) []byte
		want   want
	}{
		{"bad checksum", func(t *testing.T, b []byte) []byte { b[5] ^= 1; return b }, want{shim6.ErrBadChecksum, 4}},
		{"payload bit", func(t *testing.T, b []byte) []byte { b[2] |= 0x80; return b }, want{shim6.ErrNotControl, 2}},
		{"hdr ext len past end", func(t *testing.T, b []byte) []byte { b[1]++; return b }, want{shim6.ErrTruncated, 1}},
		{"S bit (HIP)", func(t *testing.T, b []byte) []byte { b[3] |= 1; return refinish(t, b) }, want{shim6.ErrNotShim6, 3}},
		{"I2 below minimum length", func(t *testing.T, b []byte) []byte { return refinish(t, b[:16]) }, want{shim6.ErrBadLength, 1}},
		{"option overruns message", func(t *testing.T, b []byte) []byte {
			binary.BigEndian.PutUint16(b[26:], 200) // validator Length
			return refinish(t, b)
		}, want{shim6.ErrBadOption, 26}},
		{"option header cut", func(t *testing.T, b []byte) []byte {
			b = append(b[:len(b):len(b)], 0, 0, 0, 0, 0, 0, 0, 0)
			binary.BigEndian.PutUint16(b[len(b)-6:], 5) // Length 5 → 16 octets needed, 8 left
			return refinish(t, b)
		}, want{shim6.ErrBadOption, len(i2WithOptions(t)) + 2}},
		{"ULID pair wrong length", func(t *testing.T, b []byte) []byte {
			binary.BigEndian.PutUint16(b[50:], 28) // 36 → 28: same padding? 28+4=32, fits
			return refinish(t, b)
		}, want{shim6.ErrBadOption, 48}},
		{"locator list N mismatch", func(t *testing.T, b []byte) []byte {
			b[88+4+4]++ // N
			return refinish(t, b)
		}, want{shim6.ErrBadOption, 88}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(t, i2WithOptions(t))
			_, err := shim6.ParseMessage(b)
			var pe *shim6.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want *ParseError", err, err)
			}
			if diff := cmp.Diff(tc.want, want{pe.Err, pe.Offset}, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tc.want.Err) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.want.Err)
			}
			if _, _, ok := shim6.ErrorResponse(err); ok {
				t.Errorf("ErrorResponse says to answer %v; RFC 5533 §12.3 drops silently", err)
			}
		})
	}
}

func TestParseMinimumLengthPerType(t *testing.T) {
	for _, typ := range allTypes {
		for n := 8; n < typ.MinLen(); n += 8 {
			b := make([]byte, n)
			b[0], b[2] = shim6.NoNextHeader, byte(typ)
			refinish(t, b)
			_, err := shim6.ParseMessage(b)
			if !errors.Is(err, shim6.ErrBadLength) {
				t.Errorf("%v with %d octets: %v, want ErrBadLength", typ, n, err)
			}
		}
	}
}

func TestParseUnknownType(t *testing.T) {
	for _, typ := range []shim6.Type{0, 7, 59, 63, 69, 127} {
		b := make([]byte, 16)
		b[0], b[2] = shim6.NoNextHeader, byte(typ)
		refinish(t, b)
		_, err := shim6.ParseMessage(b)
		var ut *shim6.UnknownTypeError
		if !errors.As(err, &ut) || ut.Type != typ || !errors.Is(err, shim6.ErrUnknownType) {
			t.Fatalf("type %d: error %v", typ, err)
		}
		code, ptr, ok := shim6.ErrorResponse(err)
		if !ok || code != shim6.CodeUnknownType || ptr != 2 || b[ptr]&0x7f != byte(typ) {
			t.Errorf("type %d: ErrorResponse = %v, %d, %v; want code 0 pointing at the Type octet", typ, code, ptr, ok)
		}
	}
}

func TestParseUnknownOptions(t *testing.T) {
	base := shim6.AppendUpdateRequest(nil, ctR, 5)
	t.Run("critical", func(t *testing.T) {
		b := append([]byte{}, base...)
		b = shim6.AppendKeepaliveTimeout(b, 10)
		off := len(b)
		b = shim6.AppendOption(b, 0x1234, true, []byte{1, 2, 3})
		b = shim6.AppendFII(b, 9)
		refinish(t, b)
		_, err := shim6.ParseMessage(b)
		var co *shim6.CriticalOptionError
		if !errors.As(err, &co) || !errors.Is(err, shim6.ErrCriticalOption) {
			t.Fatalf("error %v, want *CriticalOptionError", err)
		}
		if diff := cmp.Diff(&shim6.CriticalOptionError{Offset: off, Type: 0x1234}, co); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		code, ptr, ok := shim6.ErrorResponse(err)
		if !ok || code != shim6.CodeCriticalOption || ptr != off || binary.BigEndian.Uint16(b[ptr:])>>1 != 0x1234 {
			t.Errorf("ErrorResponse = %v, %d, %v", code, ptr, ok)
		}
	})
	t.Run("non-critical skipped", func(t *testing.T) {
		b := append([]byte{}, base...)
		b = shim6.AppendOption(b, 0x1234, false, []byte{1, 2, 3})
		ka := len(b)
		b = shim6.AppendKeepaliveTimeout(b, 10)
		refinish(t, b)
		m, err := shim6.ParseMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		o, off, ok := m.Option(shim6.OptKeepaliveTimeout)
		if !ok || off != ka {
			t.Fatalf("Keepalive Timeout after unknown option: ok %v offset %d, want %d", ok, off, ka)
		}
		if s, _ := o.KeepaliveTimeout(); s != 10 {
			t.Errorf("timeout %d, want 10", s)
		}
	})
}

func TestParseProbeFields(t *testing.T) {
	recs := randRecords(newRand(), 3)
	tests := []struct {
		name   string
		mutate func(b []byte)
		err    error
		offset int
	}{
		{"Psent 0", func(b []byte) { b[12] &^= 0x0f }, shim6.ErrBadField, 12},
		{"Sta 3", func(b []byte) { b[13] |= 0xc0 }, shim6.ErrBadField, 13},
		{"records overrun", func(b []byte) { b[12] = 0x22 }, shim6.ErrBadLength, 12},
		{"Precvd too many", func(b []byte) { b[12] += 0x10 }, shim6.ErrBadLength, 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := shim6.AppendProbe(nil, ctR, shim6.StaExploring, recs[:2], recs[2:])
			tc.mutate(b)
			refinish(t, b)
			_, err := shim6.ParseMessage(b)
			var pe *shim6.ParseError
			if !errors.As(err, &pe) || pe.Err != tc.err || pe.Offset != tc.offset {
				t.Fatalf("error %v, want %v at %d", err, tc.err, tc.offset)
			}
		})
	}
}

func TestOptionViewsRejectWrongType(t *testing.T) {
	b := shim6.AppendR1(nil, 1, 2)
	b = shim6.AppendResponderValidator(b, make([]byte, 3))
	refinish(t, b)
	m, err := shim6.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	o, _, ok := m.Option(shim6.OptResponderValidator)
	if !ok {
		t.Fatal("validator missing")
	}
	if _, ok := o.LocatorList(); ok {
		t.Error("LocatorList accepted a validator")
	}
	if _, ok := o.LocatorPreferences(); ok {
		t.Error("LocatorPreferences accepted a validator")
	}
	if _, _, ok := o.ULIDPair(); ok {
		t.Error("ULIDPair accepted a validator")
	}
	if _, ok := o.FII(); ok {
		t.Error("FII accepted a validator")
	}
	if _, ok := o.KeepaliveTimeout(); ok {
		t.Error("KeepaliveTimeout accepted a validator")
	}
	if _, ok := o.CGAPDS(); ok {
		t.Error("CGAPDS accepted a validator")
	}
	if _, ok := o.CGASignature(); ok {
		t.Error("CGASignature accepted a validator")
	}
	if v, ok := o.ResponderValidator(); !ok || len(v) != 3 {
		t.Errorf("validator %x %v", v, ok)
	}
}

func TestLocatorListErrorPointers(t *testing.T) {
	b := i2WithOptions(t)
	m, err := shim6.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	o, off, ok := m.Option(shim6.OptLocatorList)
	if !ok {
		t.Fatal("no locator list")
	}
	l, _ := o.LocatorList()
	p := off + shim6.OptionHeaderLen + l.MethodOffset(1)
	if b[p] != l.Method(1) || l.Method(1) != shim6.VerifyHBA {
		t.Errorf("method pointer %d → %d", p, b[p])
	}
	if l.Locator(0) != locA || l.Locator(1) != locB || l.Generation() != 7 || l.Count() != 2 {
		t.Errorf("locator list %v %v gen %d n %d", l.Locator(0), l.Locator(1), l.Generation(), l.Count())
	}
}

func TestFinishMessageRejects(t *testing.T) {
	for _, n := range []int{0, 7, 12, 2056, 4096} {
		if err := shim6.FinishMessage(make([]byte, n)); !errors.Is(err, shim6.ErrTooLong) {
			t.Errorf("length %d: %v", n, err)
		}
	}
	if err := shim6.FinishMessage(make([]byte, shim6.MaxMessageLen)); err != nil {
		t.Errorf("max length: %v", err)
	}
}

func TestTypeString(t *testing.T) {
	got := []string{shim6.TypeI2bis.String(), shim6.TypeError.String(), shim6.Type(9).String(),
		shim6.OptKeepaliveTimeout.String(), shim6.StaInboundOk.String(), shim6.CodeCriticalOption.String()}
	want := []string{"I2bis", "Error", "Type(9)", "KeepaliveTimeout", "InboundOk", "CriticalOption"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
	if shim6.TypeKeepalive.TriggersR1bis() != true || shim6.TypeI1.TriggersR1bis() {
		t.Error("TriggersR1bis wrong")
	}
}

func TestIPv6Control(t *testing.T) {
	msg := shim6.AppendKeepalive(nil, ctR)
	pkt := shim6.AppendIPv6Control(nil, locA, locB, msg)
	want := append(unhex(t, "60000000 0010 8c 40"), append(append(locA.AsSlice(), locB.AsSlice()...), msg...)...)
	if diff := cmp.Diff(want, pkt); diff != "" {
		t.Fatalf("packet (-want +got):\n%s", diff)
	}
	src, dst, m, err := shim6.ParseIPv6Control(pkt)
	if err != nil || src != locA || dst != locB || m.Type() != shim6.TypeKeepalive {
		t.Fatalf("ParseIPv6Control: %v %v %v %v", src, dst, m, err)
	}
	mc := shim6.AppendIPv6Control(nil, locA, netip.MustParseAddr("ff02::1"), msg)
	if _, _, _, err := shim6.ParseIPv6Control(mc); !errors.Is(err, shim6.ErrBadAddress) {
		t.Errorf("multicast destination: %v", err)
	}
	if _, _, _, err := shim6.ParseIPv6Control(pkt[:50]); !errors.Is(err, shim6.ErrTruncated) {
		t.Errorf("short packet: %v", err)
	}
	pkt[6] = 17
	if _, _, _, err := shim6.ParseIPv6Control(pkt); !errors.Is(err, shim6.ErrNotIPv6Shim6) {
		t.Errorf("UDP packet: %v", err)
	}
}

func TestErrorInvokingAndPeekTag(t *testing.T) {
	ur := shim6.AppendUpdateRequest(nil, ctR, 5)
	invoking := shim6.AppendIPv6Control(nil, locA, locB, ur)
	e := shim6.AppendError(nil, shim6.CodeCriticalOption, 56, invoking)
	m, err := shim6.ParseMessage(e)
	if err != nil {
		t.Fatal(err)
	}
	src, dst, shim, ok := shim6.ErrorMessage(m).Invoking()
	if !ok || src != locA || dst != locB {
		t.Fatalf("Invoking = %v %v %v", src, dst, ok)
	}
	typ, tag, ok := shim6.PeekTag(shim)
	if !ok || typ != shim6.TypeUpdateRequest || tag != ctR {
		t.Errorf("PeekTag(quoted UR) = %v %#x %v", typ, tag, ok)
	}
	var ph [8]byte
	shim6.PutPayloadHeader(ph[:], 6, ctI)
	if typ, tag, ok := shim6.PeekTag(ph[:]); !ok || typ != 0 || tag != ctI {
		t.Errorf("PeekTag(payload) = %v %#x %v", typ, tag, ok)
	}
	if _, _, ok := shim6.PeekTag(shim6.AppendR1(nil, 1, 2)); ok {
		t.Error("PeekTag found a tag in an R1")
	}
	if _, _, ok := shim6.PeekTag(shim[:10]); ok {
		t.Error("PeekTag accepted a truncated header")
	}
	if _, _, _, ok := shim6.SplitQuotedIPv6(invoking[:39]); ok {
		t.Error("SplitQuotedIPv6 accepted 39 octets")
	}
}

func TestBuildPanicsOnProgrammerErrors(t *testing.T) {
	tests := map[string]func(){
		"probe without sent record": func() { shim6.AppendProbe(nil, 1, shim6.StaOperational, nil, nil) },
		"probe with 16 sent":        func() { shim6.AppendProbe(nil, 1, shim6.StaOperational, make([]shim6.ProbeRecord, 16), nil) },
		"probe with Sta 3":          func() { shim6.AppendProbe(nil, 1, 3, make([]shim6.ProbeRecord, 1), nil) },
		"locator list mismatch":     func() { shim6.AppendLocatorList(nil, 1, []uint8{1}, nil) },
		"preferences element 4":     func() { shim6.AppendLocatorPreferences(nil, 1, 4, nil) },
		"option over 65535":         func() { shim6.AppendOption(nil, 9, false, make([]byte, 65536)) },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func TestErrorStrings(t *testing.T) {
	got := []string{
		(&shim6.ParseError{Offset: 4, Err: shim6.ErrBadChecksum}).Error(),
		(&shim6.UnknownTypeError{Type: 9}).Error(),
		(&shim6.CriticalOptionError{Offset: 16, Type: 999}).Error(),
	}
	want := []string{
		"shim6: bad checksum at offset 4",
		"shim6: unknown message type 9",
		"shim6: unknown critical option 999 at offset 16",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
	if _, _, ok := shim6.ErrorResponse(errors.New("other")); ok {
		t.Error("ErrorResponse answered an unrelated error")
	}
}

func TestParsePayloadHeader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"udp", "11 00 81 23 45 67 89 ab", nil},
		{"short", "11 00 81 23 45 67 89", shim6.ErrTruncated},
		{"control message", "3b 01 01 00 ba 80 2a 5b", shim6.ErrNotPayload},
		{"hdr ext len 1", "11 01 81 23 45 67 89 ab", shim6.ErrBadLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := shim6.ParsePayloadHeader(unhex(t, tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && (h.NextHeader() != 17 || h.Tag() != ctR || len(h) != 8) {
				t.Errorf("next %d tag %#x", h.NextHeader(), h.Tag())
			}
		})
	}
}

func TestTypeMinLen(t *testing.T) {
	want := map[shim6.Type]int{shim6.TypeI1: 16, shim6.TypeR1: 16, shim6.TypeI2: 24, shim6.TypeR2: 16,
		shim6.TypeR1bis: 16, shim6.TypeI2bis: 32, shim6.TypeUpdateRequest: 16, shim6.TypeUpdateAck: 16,
		shim6.TypeKeepalive: 16, shim6.TypeProbe: 56, shim6.TypeError: 16}
	for i := 0; i < 256; i++ {
		typ := shim6.Type(i)
		if got := typ.MinLen(); got != want[typ] || typ.Known() != (want[typ] != 0) {
			t.Errorf("%v: MinLen %d Known %v, want %d", typ, got, typ.Known(), want[typ])
		}
	}
}

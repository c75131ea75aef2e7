package shim6_test

import (
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/shim6"
)

// Tags used by the worked wire examples.
const (
	ctI shim6.ContextTag = 0x2A5B3C4D5E6F
	ctR shim6.ContextTag = 0x0123456789AB
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	locA = netip.MustParseAddr("2001:db8:a:1::10")
	locB = netip.MustParseAddr("2001:db8:b:1::10")
)

// TestDigestVectors reproduces worked examples of every message type,
// computed by hand from the RFC 5533 §5 and RFC 5534 §5 layouts, byte for
// byte.
func TestDigestVectors(t *testing.T) {
	rv20 := make([]byte, 20)
	for i := range rv20 {
		rv20[i] = byte(0xa0 + i)
	}
	a16, b16 := locA.As16(), locB.As16()
	u1, u2 := netip.MustParseAddr("2001:db8:a:1::1"), netip.MustParseAddr("2001:db8:c:1::2")
	u1b, u2b := u1.As16(), u2.As16()
	tests := []struct {
		name  string
		build func() []byte
		want  string
	}{
		{"payload header", func() []byte {
			b := make([]byte, 8)
			shim6.PutPayloadHeader(b, 17, ctR)
			return b
		}, "11 00 81 23 45 67 89 ab"},
		{"I1", func() []byte { return shim6.AppendI1(nil, ctI, 0x11223344) },
			"3b 01 01 00 ba 80 2a 5b 3c 4d 5e 6f 11 22 33 44"},
		{"Keepalive", func() []byte { return shim6.AppendKeepalive(nil, ctR) },
			"3b 01 42 00 b2 c8 01 23 45 67 89 ab 00 00 00 00"},
		{"Update Ack", func() []byte { return shim6.AppendUpdateAck(nil, ctI, 0xfeedf00d) },
			"3b 01 41 00 cf ea 2a 5b 3c 4d 5e 6f fe ed f0 0d"},
		{"Keepalive Timeout 30s", func() []byte { return shim6.AppendKeepaliveTimeout(nil, 30) },
			"00 14 00 04 00 00 00 1e"},
		{"Responder Validator 20 octets", func() []byte { return shim6.AppendResponderValidator(nil, rv20) },
			"00 02 00 14" + hex.EncodeToString(rv20)},
		{"Locator List gen 7", func() []byte {
			return shim6.AppendLocatorList(nil, 7, []uint8{shim6.VerifyHBA, shim6.VerifyHBA}, []netip.Addr{locA, locB})
		}, "00 04 00 2c 00 00 00 07 02 01 01 00 00 00 00 00" + hex.EncodeToString(a16[:]) + hex.EncodeToString(b16[:])},
		{"Locator Preferences gen 8", func() []byte {
			return shim6.AppendLocatorPreferences(nil, 8, 1, []shim6.LocatorPreference{{Flags: shim6.FlagBroken}, {}})
		}, "00 06 00 07 00 00 00 08 01 01 00 00 00 00 00 00"},
		{"ULID Pair", func() []byte { return shim6.AppendULIDPair(nil, u1, u2) },
			"00 0c 00 24 00 00 00 00" + hex.EncodeToString(u1b[:]) + hex.EncodeToString(u2b[:])},
		{"FII 1", func() []byte { return shim6.AppendFII(nil, 1) }, "00 0e 00 04 00 00 00 01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(unhex(t, tc.want), tc.build()); diff != "" {
				t.Errorf("bytes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDigestProbeAndErrorHeaders checks the partial vectors of §11.3: the
// digest does not give the probe records, so the Probe checksum (octets
// 4–5) is checked by parsing instead of against e5 8b.
func TestDigestProbeAndErrorHeaders(t *testing.T) {
	recs := []shim6.ProbeRecord{
		{Src: locA, Dst: locB, Nonce: 1, Data: 2},
		{Src: locB, Dst: locA, Nonce: 3, Data: 4},
	}
	p := shim6.AppendProbe(nil, ctR, shim6.StaExploring, recs[:1], recs[1:])
	if len(p) != 96 {
		t.Fatalf("probe length %d, want 96", len(p))
	}
	want := unhex(t, "3b 0b 43 00 e5 8b 01 23 45 67 89 ab 11 40 00 00")
	got := append([]byte{}, p[:16]...)
	got[4], got[5] = want[4], want[5]
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("probe header (-want +got):\n%s", diff)
	}
	if _, err := shim6.ParseMessage(p); err != nil {
		t.Errorf("probe does not parse: %v", err)
	}
	e := shim6.AppendError(nil, shim6.CodeCriticalOption, 0, make([]byte, 8))
	if e[2] != 0x44 || e[3] != 0x02 {
		t.Errorf("error octets 2-3 = % x, want 44 02", e[2:4])
	}
}

// TestParseDigestI1 parses the I1 vector and checks every field.
func TestParseDigestI1(t *testing.T) {
	m, err := shim6.ParseMessage(unhex(t, "3b 01 01 00 ba 80 2a 5b 3c 4d 5e 6f 11 22 33 44 ff ff"))
	if err != nil {
		t.Fatal(err)
	}
	type fields struct {
		Next, HdrExtLen, TypeSpecific uint8
		Len                           int
		Type                          shim6.Type
		Checksum                      uint16
		Tag                           shim6.ContextTag
		Nonce                         uint32
	}
	got := fields{m.NextHeader(), m.HdrExtLen(), m.TypeSpecific(), m.Len(), m.Type(), m.Checksum(),
		shim6.I1(m).InitiatorTag(), shim6.I1(m).InitiatorNonce()}
	want := fields{59, 1, 0, 16, shim6.TypeI1, 0xba80, ctI, 0x11223344}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if len(m) != 16 {
		t.Errorf("view length %d, want 16 (trailing octets excluded)", len(m))
	}
}

// TestRoundTripTable builds one message of every type with realistic
// options, parses it and compares the values.
func TestRoundTripTable(t *testing.T) {
	rv := []byte("validator-0123456789")
	pds := make([]byte, 125)
	for i := range pds {
		pds[i] = byte(i)
	}
	ll := optVal{Type: shim6.OptLocatorList, Gen: 7, Methods: []uint8{shim6.VerifyHBA, shim6.VerifyCGA}, Locs: []netip.Addr{locA, locB}}
	lp := optVal{Type: shim6.OptLocatorPreferences, Gen: 7, ElemLen: 3, Prefs: []shim6.LocatorPreference{{Flags: shim6.FlagTransient, Priority: 1, Weight: 10}, {Flags: shim6.FlagBroken, Priority: 2, Weight: 20}}}
	up := optVal{Type: shim6.OptULIDPair, Sender: locA, Receiver: locB}
	recs := []shim6.ProbeRecord{{Src: locA, Dst: locB, Nonce: 0xdeadbeef, Data: 7}}
	tests := []msgVal{
		{Type: shim6.TypeI1, Tag: ctI, Nonce1: 1, Opts: []optVal{up, {Type: shim6.OptForkedInstanceID, FII: 3}}},
		{Type: shim6.TypeR1, Nonce1: 1, Nonce2: 2, Opts: []optVal{{Type: shim6.OptResponderValidator, Raw: rv}}},
		{Type: shim6.TypeI2, Tag: ctI, Nonce1: 3, Nonce2: 2, Opts: []optVal{
			{Type: shim6.OptResponderValidator, Raw: rv}, up, ll, lp,
			{Type: shim6.OptCGAParameterDataStructure, Raw: pds},
			{Type: shim6.OptCGASignature, Raw: pds[:64]},
			{Type: shim6.OptKeepaliveTimeout, KATimeout: 30}}},
		{Type: shim6.TypeR2, Tag: ctR, Nonce1: 3, Opts: []optVal{ll, {Type: shim6.OptCGAParameterDataStructure, Raw: pds}}},
		{Type: shim6.TypeR1bis, Tag: ctR, Nonce2: 9, Opts: []optVal{{Type: shim6.OptResponderValidator, Raw: rv}}},
		{Type: shim6.TypeI2bis, Tag: ctI, Nonce1: 4, Nonce2: 9, Tag2: ctR, Opts: []optVal{{Type: shim6.OptResponderValidator, Raw: rv}, up}},
		{Type: shim6.TypeUpdateRequest, Tag: ctR, Nonce1: 5, Opts: []optVal{ll, lp}},
		{Type: shim6.TypeUpdateAck, Tag: ctI, Nonce1: 5},
		{Type: shim6.TypeKeepalive, Tag: ctR},
		{Type: shim6.TypeProbe, Tag: ctR, Sta: shim6.StaInboundOk, Sent: recs, Rcvd: recs},
		{Type: shim6.TypeProbe, Tag: shim6.MaxTag, Sta: shim6.StaOperational, Sent: recs},
		{Type: shim6.TypeError, Code: shim6.CodeUnknownType, Pointer: 42, Quoted: make([]byte, 48)},
	}
	for _, want := range tests {
		t.Run(want.Type.String(), func(t *testing.T) {
			b := encode(nil, want)
			m, err := shim6.ParseMessage(b)
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			if diff := cmp.Diff(want, decode(m), cmpOpts); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			if m.Len() != len(b) || m.Len()%8 != 0 {
				t.Errorf("Len %d, built %d octets", m.Len(), len(b))
			}
		})
	}
}

// TestRoundTripRandom is a property test: random values of every message
// type and option survive build → parse.
func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5533, 5534))
	for i := 0; i < 3000; i++ {
		want := randMsg(r, allTypes[i%len(allTypes)])
		b := encode([]byte{0xee}, want)[1:] // built after existing data
		m, err := shim6.ParseMessage(b)
		if err != nil {
			t.Fatalf("case %d (%v): ParseMessage: %v", i, want.Type, err)
		}
		if diff := cmp.Diff(want, decode(m), cmpOpts); diff != "" {
			t.Fatalf("case %d (%v) values (-want +got):\n%s", i, want.Type, diff)
		}
	}
}

func TestReservedFieldsZeroOnSend(t *testing.T) {
	// Every octet not covered by a field is zero, and R bits are clear
	// even for the largest tag.
	msgs := map[string][]byte{
		"I2":        shim6.AppendI2(nil, shim6.MaxTag, 0xffffffff, 0xffffffff),
		"I2bis":     shim6.AppendI2bis(nil, shim6.MaxTag, 0xffffffff, 0xffffffff, shim6.MaxTag),
		"R1":        shim6.AppendR1(nil, 0xffffffff, 0xffffffff),
		"Keepalive": shim6.AppendKeepalive(nil, shim6.MaxTag),
	}
	reserved := map[string][]int{ // offsets of reserved octets (R bits checked below)
		"I2":        {3, 20, 21, 22, 23},
		"I2bis":     {3, 20, 21, 22, 23, 24, 25},
		"R1":        {3, 6, 7},
		"Keepalive": {3, 12, 13, 14, 15},
	}
	for name, b := range msgs {
		for _, off := range reserved[name] {
			if b[off] != 0 {
				t.Errorf("%s: octet %d = %#x, want 0", name, off, b[off])
			}
		}
		if name != "R1" && b[6]&0x80 != 0 {
			t.Errorf("%s: R bit set", name)
		}
	}
	if b := msgs["I2bis"]; b[26]&0x80 != 0 {
		t.Error("I2bis: reserved bit of octet 26 set")
	}
}

func TestReservedFieldsIgnoredOnReceipt(t *testing.T) {
	b := shim6.AppendI2bis(nil, ctI, 1, 2, ctR)
	b[3] = 0xfe // Reserved1 (S stays 0)
	b[6] |= 0x80
	for i := 20; i < 26; i++ {
		b[i] = 0xff
	}
	b[26] |= 0x80
	if err := shim6.FinishMessage(b); err != nil {
		t.Fatal(err)
	}
	m, err := shim6.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	x := shim6.I2bis(m)
	if x.InitiatorTag() != ctI || x.PacketTag() != ctR || x.InitiatorNonce() != 1 || x.ResponderNonce() != 2 {
		t.Errorf("reserved bits leaked into fields: %#x %#x", x.InitiatorTag(), x.PacketTag())
	}
}

func TestOptionPadding(t *testing.T) {
	// RFC 5533 §5.15: padding = 7 - ((Length+3) mod 8); every option is a
	// multiple of 8 octets.
	for n := 0; n < 100; n++ {
		p := shim6.OptionPadding(n)
		if p < 0 || p > 7 || (4+n+p)%8 != 0 || shim6.OptionSize(n) != 4+n+p {
			t.Fatalf("length %d: padding %d", n, p)
		}
		b := shim6.AppendOption(nil, 0x1234, false, make([]byte, n))
		if len(b) != shim6.OptionSize(n) {
			t.Fatalf("length %d: appended %d octets", n, len(b))
		}
	}
}

func TestErrorQuoteLimit(t *testing.T) {
	pkt := make([]byte, 3000)
	for i := range pkt {
		pkt[i] = byte(i)
	}
	for _, n := range []int{1, 7, 8, 100, shim6.MaxErrorQuote - 1, shim6.MaxErrorQuote, shim6.MaxErrorQuote + 1, 3000} {
		b := shim6.AppendError(nil, shim6.CodeCriticalOption, 40, pkt[:n])
		if shim6.IPv6HeaderLen+len(b) > shim6.MinMTU {
			t.Errorf("quote %d: packet %d octets > 1280", n, shim6.IPv6HeaderLen+len(b))
		}
		m, err := shim6.ParseMessage(b)
		if err != nil {
			t.Fatalf("quote %d: %v", n, err)
		}
		e := shim6.ErrorMessage(m)
		q := min(n, shim6.MaxErrorQuote)
		wantPkt := append(append([]byte{}, pkt[:q]...), make([]byte, (8-q%8)%8)...)
		if diff := cmp.Diff(wantPkt, e.Packet()); diff != "" || e.Code() != shim6.CodeCriticalOption || e.Pointer() != 40 {
			t.Errorf("quote %d: code %v pointer %d packet diff:\n%s", n, e.Code(), e.Pointer(), diff)
		}
		if it := m.Options(); func() bool { _, ok := it.Next(); return ok }() {
			t.Errorf("quote %d: error message has options", n)
		}
	}
}

// TestParseDigestMessages parses the §11.3 message vectors back.
func TestParseDigestMessages(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want msgVal
	}{
		{"I1", "3b 01 01 00 ba 80 2a 5b 3c 4d 5e 6f 11 22 33 44", msgVal{Type: shim6.TypeI1, Tag: ctI, Nonce1: 0x11223344}},
		{"Keepalive", "3b 01 42 00 b2 c8 01 23 45 67 89 ab 00 00 00 00", msgVal{Type: shim6.TypeKeepalive, Tag: ctR}},
		{"Update Ack", "3b 01 41 00 cf ea 2a 5b 3c 4d 5e 6f fe ed f0 0d", msgVal{Type: shim6.TypeUpdateAck, Tag: ctI, Nonce1: 0xfeedf00d}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := shim6.ParseMessage(unhex(t, tc.hex))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, decode(m), cmpOpts); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
		})
	}
}

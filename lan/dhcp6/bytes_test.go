package dhcp6_test

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// TestSolicitAdvertiseBytes pins the wire bytes of an exchange written by
// hand from RFC 8415 §8 and §21.
func TestSolicitAdvertiseBytes(t *testing.T) {
	f := newFixture(t, 4, nil)
	solicit := unhex(`
		01 0a0b0c
		0001 000a 0003 0001 525400000101
		0008 0002 0000
		0003 000c 00000001 00000000 00000000`)
	ulid := hex.EncodeToString(f.book.Entry(0).ULID().AsSlice())
	want := unhex(`
		02 0a0b0c
		0002 000a 0003 0001 020000000001
		0001 000a 0003 0001 525400000101
		0017 0010 20010db8000a00010000000000000053
		0018 000e 0473697465 076578616d706c65 00
		0007 0001 ff
		0003 0028 00000001 00000708 00000b40
		  0005 0018 ` + ulid + ` 00000e10 00001c20`)
	got := f.srv.Handle(solicit)
	if !bytes.Equal(got, want) {
		t.Errorf("Advertise\n got %x\nwant %x", got, want)
	}
	// The Request for it (Server ID, the IA with the address) is
	// answered with the same IA in a Reply (type 7).
	request := unhex(`
		03 0d0e0f
		0001 000a 0003 0001 525400000101
		0002 000a 0003 0001 020000000001
		0003 0028 00000001 00000000 00000000
		  0005 0018 ` + ulid + ` 00000000 00000000`)
	got = f.srv.Handle(request)
	want[0], want[1], want[2], want[3] = 7, 0x0d, 0x0e, 0x0f
	// The Reply carries no Preference option.
	pref := unhex("0007 0001 ff")
	want = bytes.Replace(want, pref, nil, 1)
	if !bytes.Equal(got, want) {
		t.Errorf("Reply\n got %x\nwant %x", got, want)
	}
}

package shim6_test

import (
	"fmt"
	"net/netip"

	"github.com/shim6gw/shim6gw/shim6"
)

func ExampleAppendI2() {
	ulidA := netip.MustParseAddr("2001:db8:a:1::10")
	ulidB := netip.MustParseAddr("2001:db8:c:1::20")
	locA2 := netip.MustParseAddr("2001:db8:b:1::10")

	buf := make([]byte, 0, shim6.MinMTU)
	buf = buf[:shim6.IPv6HeaderLen] // room for the IPv6 header
	start := len(buf)
	buf = shim6.AppendI2(buf, 0x2A5B3C4D5E6F, 0x11223345, 0x55667788)
	buf = shim6.AppendResponderValidator(buf, []byte("validator from R1..."))
	buf = shim6.AppendULIDPair(buf, ulidA, ulidB)
	buf = shim6.AppendLocatorList(buf, 42, []uint8{shim6.VerifyHBA, shim6.VerifyHBA}, []netip.Addr{ulidA, locA2})
	if err := shim6.FinishMessage(buf[start:]); err != nil {
		panic(err)
	}
	shim6.PutIPv6Header(buf, locA2, ulidB, shim6.ProtocolNumber, len(buf)-start)

	_, _, m, err := shim6.ParseIPv6Control(buf)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Type(), m.Len(), shim6.I2(m).ResponderNonce() == 0x55667788)
	it := m.Options()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		fmt.Printf("%v at %d\n", o.Type(), it.Offset())
		if l, ok := o.LocatorList(); ok {
			for i := 0; i < l.Count(); i++ {
				fmt.Println(" ", l.Locator(i), l.Method(i))
			}
		}
	}
	// Output:
	// I2 136 true
	// ResponderValidator at 24
	// ULIDPair at 48
	// LocatorList at 88
	//   2001:db8:a:1::10 1
	//   2001:db8:b:1::10 1
}

func ExampleErrorResponse() {
	// An Update Request with an unknown critical option (type 999).
	msg := shim6.AppendUpdateRequest(nil, 0x0123456789AB, 7)
	msg = shim6.AppendOption(msg, 999, true, []byte{1, 2, 3, 4})
	_ = shim6.FinishMessage(msg)
	pkt := shim6.AppendIPv6Control(nil, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), msg)

	_, _, _, err := shim6.ParseIPv6Control(pkt)
	code, ptr, ok := shim6.ErrorResponse(err)
	fmt.Println(err)
	fmt.Println(code, ptr, ok)
	// The quote starts at the IPv6 header, so the Pointer counts from there.
	e := shim6.AppendError(nil, code, uint16(shim6.IPv6HeaderLen+ptr), pkt)
	fmt.Println(len(e), e[3]>>1)
	// Output:
	// shim6: unknown critical option 999 at offset 16
	// CriticalOption 16 true
	// 72 1
}

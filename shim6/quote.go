package shim6

import "net/netip"

// Helpers for packets quoted by Shim6 Error messages and ICMPv6 errors,
// which the engine matches to a context by the quoted packet (RFC 5533
// §12.4): its Receiver Context Tag and its addresses. Quotes may be
// truncated and their checksums are not checked.

// Invoking returns the quoted packet's addresses and the Shim6 header
// that follows its fixed IPv6 header. ok is false unless the quote starts
// with an IPv6 header whose Next Header is 140 (as AppendError quotes
// packets built by this package); shim may be truncated.
func (m ErrorMessage) Invoking() (src, dst netip.Addr, shim []byte, ok bool) {
	return SplitQuotedIPv6(m.Packet())
}

// SplitQuotedIPv6 splits a quoted packet (from a Shim6 Error or an ICMPv6
// error body) into its addresses and the bytes after the fixed IPv6
// header, if that header is IPv6 with Next Header 140. The payload may be
// truncated; the Payload Length field is not trusted.
func SplitQuotedIPv6(q []byte) (src, dst netip.Addr, shim []byte, ok bool) {
	if len(q) < IPv6HeaderLen || q[0]>>4 != 6 || q[6] != ProtocolNumber {
		return src, dst, nil, false
	}
	src = netip.AddrFrom16([16]byte(q[8:24]))
	dst = netip.AddrFrom16([16]byte(q[24:40]))
	return src, dst, q[IPv6HeaderLen:], true
}

// PeekTag returns the context tag carried by a possibly truncated Shim6
// header without validating it: the Receiver Context Tag of a payload
// header (P = 1), or the tag at octets 6–11 of a control message whose
// type carries one there (I1, I2, I2bis: initiator's; R2: responder's;
// R1bis: packet's; Update Request/Ack, Keepalive, Probe: receiver's).
// For a payload header t is 0. ok is false when there is no such tag or
// the header is too short.
func PeekTag(shim []byte) (t Type, tag ContextTag, ok bool) {
	if len(shim) < PayloadHeaderLen {
		return 0, 0, false
	}
	if shim[offType]&0x80 != 0 {
		return 0, getTag(shim[2:8]), true
	}
	t = Type(shim[offType] & 0x7f)
	switch t {
	case TypeI1, TypeI2, TypeR2, TypeR1bis, TypeI2bis,
		TypeUpdateRequest, TypeUpdateAck, TypeKeepalive, TypeProbe:
		if len(shim) < 12 {
			return t, 0, false
		}
		return t, getTag(shim[6:12]), true
	}
	return t, 0, false
}

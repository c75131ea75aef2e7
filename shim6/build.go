package shim6

import (
	"encoding/binary"
	"net/netip"

	"github.com/shim6gw/shim6gw/internal/checksum"
)

// Building messages. Every Append<Message> appends a complete, finished
// message (Hdr Ext Len and checksum set) to dst and returns the extended
// slice; nothing allocates when dst has room. To add options, remember
// where the message starts, append the options, then finish again:
//
//	start := len(buf)
//	buf = shim6.AppendI2(buf, tag, inonce, rnonce)
//	buf = shim6.AppendResponderValidator(buf, validator)
//	buf = shim6.AppendULIDPair(buf, ulidLocal, ulidPeer)
//	err := shim6.FinishMessage(buf[start:])
//
// Reserved fields are written as zero (RFC 5533 §5.3).

// appendHeader appends the 6 octets up to and including the checksum.
func appendHeader(dst []byte, t Type, typeSpecific uint8) []byte {
	return append(dst, NoNextHeader, 0, byte(t)&0x7f, typeSpecific<<1, 0, 0)
}

// appendTag appends a 47-bit tag with the reserved R bit zero.
func appendTag(dst []byte, t ContextTag) []byte {
	var b [6]byte
	putTag(b[:], t, false)
	return append(dst, b[:]...)
}

// finish sets Hdr Ext Len and the checksum of msg, whose length the
// caller guarantees is a multiple of 8 within 8..MaxMessageLen.
func finish(msg []byte) {
	msg[offHdrExtLen] = byte(len(msg)/8 - 1)
	msg[offChecksum], msg[offChecksum+1] = 0, 0
	binary.BigEndian.PutUint16(msg[offChecksum:], ControlChecksum(msg))
}

// FinishMessage sets Hdr Ext Len from len(msg) and computes the checksum
// (RFC 5533 §5.3). msg must be exactly one message: a multiple of 8 octets
// (options are always padded, RFC 5533 §5.15), 8 to MaxMessageLen long;
// otherwise it returns ErrTooLong and leaves msg untouched. Whole control
// packets must also stay within 1280 octets (MaxControlMessageLen after a
// bare IPv6 header), which is the sender's job.
func FinishMessage(msg []byte) error {
	if len(msg) < 8 || len(msg)%8 != 0 || len(msg) > MaxMessageLen {
		return ErrTooLong
	}
	finish(msg)
	return nil
}

// AppendI1 appends an I1 (RFC 5533 §5.4).
func AppendI1(dst []byte, initiatorTag ContextTag, initiatorNonce uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeI1, 0)
	dst = appendTag(dst, initiatorTag)
	dst = binary.BigEndian.AppendUint32(dst, initiatorNonce)
	finish(dst[start:])
	return dst
}

// AppendR1 appends an R1 (RFC 5533 §5.5). It needs a Responder Validator
// option (AppendResponderValidator, then FinishMessage).
func AppendR1(dst []byte, initiatorNonce, responderNonce uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeR1, 0)
	dst = append(dst, 0, 0) // Reserved2
	dst = binary.BigEndian.AppendUint32(dst, initiatorNonce)
	dst = binary.BigEndian.AppendUint32(dst, responderNonce)
	finish(dst[start:])
	return dst
}

// AppendI2 appends an I2 (RFC 5533 §5.6).
func AppendI2(dst []byte, initiatorTag ContextTag, initiatorNonce, responderNonce uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeI2, 0)
	dst = appendTag(dst, initiatorTag)
	dst = binary.BigEndian.AppendUint32(dst, initiatorNonce)
	dst = binary.BigEndian.AppendUint32(dst, responderNonce)
	dst = append(dst, 0, 0, 0, 0) // Reserved2
	finish(dst[start:])
	return dst
}

// AppendR2 appends an R2 (RFC 5533 §5.7).
func AppendR2(dst []byte, responderTag ContextTag, initiatorNonce uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeR2, 0)
	dst = appendTag(dst, responderTag)
	dst = binary.BigEndian.AppendUint32(dst, initiatorNonce)
	finish(dst[start:])
	return dst
}

// AppendR1bis appends an R1bis (RFC 5533 §5.8).
func AppendR1bis(dst []byte, packetTag ContextTag, responderNonce uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeR1bis, 0)
	dst = appendTag(dst, packetTag)
	dst = binary.BigEndian.AppendUint32(dst, responderNonce)
	finish(dst[start:])
	return dst
}

// AppendI2bis appends an I2bis (RFC 5533 §5.9).
func AppendI2bis(dst []byte, initiatorTag ContextTag, initiatorNonce, responderNonce uint32, packetTag ContextTag) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeI2bis, 0)
	dst = appendTag(dst, initiatorTag)
	dst = binary.BigEndian.AppendUint32(dst, initiatorNonce)
	dst = binary.BigEndian.AppendUint32(dst, responderNonce)
	dst = append(dst, 0, 0, 0, 0, 0, 0) // Reserved2 (49 bits incl. octet 26 bit 7)
	dst = appendTag(dst, packetTag)
	finish(dst[start:])
	return dst
}

// AppendUpdateRequest appends an Update Request (RFC 5533 §5.10).
func AppendUpdateRequest(dst []byte, receiverTag ContextTag, requestNonce uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeUpdateRequest, 0)
	dst = appendTag(dst, receiverTag)
	dst = binary.BigEndian.AppendUint32(dst, requestNonce)
	finish(dst[start:])
	return dst
}

// AppendUpdateAck appends an Update Acknowledgement (RFC 5533 §5.11).
func AppendUpdateAck(dst []byte, receiverTag ContextTag, requestNonce uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeUpdateAck, 0)
	dst = appendTag(dst, receiverTag)
	dst = binary.BigEndian.AppendUint32(dst, requestNonce)
	finish(dst[start:])
	return dst
}

// AppendKeepalive appends a Keepalive (RFC 5534 §5.1).
func AppendKeepalive(dst []byte, receiverTag ContextTag) []byte {
	start := len(dst)
	dst = appendHeader(dst, TypeKeepalive, 0)
	dst = appendTag(dst, receiverTag)
	dst = append(dst, 0, 0, 0, 0) // Reserved2
	finish(dst[start:])
	return dst
}

// MaxErrorQuote is the most octets of the invoking packet an Error message
// quotes: the Error packet, sent right after a 40-octet IPv6 header, must
// not exceed 1280 octets (RFC 5533 §5.1, §5.14).
const MaxErrorQuote = MaxControlMessageLen - 8

// AppendError appends an Error message (RFC 5533 §5.14) quoting as much of
// the invoking packet as fits in MaxErrorQuote octets, zero-padded to a
// multiple of 8 (RFC 5533 §5.14 leaves the padding open). Pointer
// is counted from the start of quoted.
func AppendError(dst []byte, code ErrorCode, pointer uint16, quoted []byte) []byte {
	if len(quoted) > MaxErrorQuote {
		quoted = quoted[:MaxErrorQuote]
	}
	start := len(dst)
	dst = appendHeader(dst, TypeError, uint8(code)&0x7f)
	dst = binary.BigEndian.AppendUint16(dst, pointer)
	dst = append(dst, quoted...)
	dst = appendZeros(dst, (8-len(quoted)%8)%8)
	finish(dst[start:])
	return dst
}

// appendZeros appends n zero octets; the compiler turns this form into a
// clear of the extended slice, without allocating.
func appendZeros(dst []byte, n int) []byte {
	return append(dst, make([]byte, n)...)
}

// Option appenders. Each appends one option with C = 0 (all defined
// options are non-critical, RFC 5533 §5.15), including its padding.

// AppendOption appends an option of any type with the given contents; it
// panics if contents exceed 65535 octets (programmer error).
func AppendOption(dst []byte, t OptionType, critical bool, contents []byte) []byte {
	dst = appendOptionHeader(dst, t, critical, len(contents))
	dst = append(dst, contents...)
	return appendZeros(dst, OptionPadding(len(contents)))
}

func appendOptionHeader(dst []byte, t OptionType, critical bool, n int) []byte {
	if n > 0xffff {
		panic("shim6: option contents too long")
	}
	w := uint16(t) << 1
	if critical {
		w |= 1
	}
	dst = binary.BigEndian.AppendUint16(dst, w)
	return binary.BigEndian.AppendUint16(dst, uint16(n))
}

// AppendResponderValidator appends a Responder Validator option (RFC 5533
// §5.15.1).
func AppendResponderValidator(dst []byte, validator []byte) []byte {
	return AppendOption(dst, OptResponderValidator, false, validator)
}

// AppendCGAPDS appends a CGA Parameter Data Structure option (RFC 5533
// §5.15.4).
func AppendCGAPDS(dst []byte, pds []byte) []byte {
	return AppendOption(dst, OptCGAParameterDataStructure, false, pds)
}

// AppendCGASignature appends a CGA Signature option (RFC 5533 §5.15.5).
func AppendCGASignature(dst []byte, sig []byte) []byte {
	return AppendOption(dst, OptCGASignature, false, sig)
}

// AppendLocatorList appends a Locator List option (RFC 5533 §5.15.2) with
// one verification method per locator. It panics if the slices differ in
// length or hold more than 255 entries (programmer error).
func AppendLocatorList(dst []byte, generation uint32, methods []uint8, locs []netip.Addr) []byte {
	n := len(locs)
	if len(methods) != n || n > 255 {
		panic("shim6: AppendLocatorList: methods and locators differ or > 255")
	}
	dst = appendOptionHeader(dst, OptLocatorList, false, locatorListLen(n))
	dst = binary.BigEndian.AppendUint32(dst, generation)
	dst = append(dst, byte(n))
	dst = append(dst, methods...)
	dst = appendZeros(dst, 7-n%8)
	for _, a := range locs {
		b := a.As16()
		dst = append(dst, b[:]...)
	}
	return dst // Length+4 is a multiple of 8: no trailing padding
}

// AppendLocatorPreferences appends a Locator Preferences option (RFC 5533
// §5.15.3) with elements of elemLen octets (1: flags; 2: + priority;
// 3: + weight). It panics if elemLen is not 1, 2 or 3.
func AppendLocatorPreferences(dst []byte, generation uint32, elemLen int, prefs []LocatorPreference) []byte {
	if elemLen < 1 || elemLen > 3 {
		panic("shim6: AppendLocatorPreferences: element length must be 1..3")
	}
	n := 5 + elemLen*len(prefs)
	dst = appendOptionHeader(dst, OptLocatorPreferences, false, n)
	dst = binary.BigEndian.AppendUint32(dst, generation)
	dst = append(dst, byte(elemLen))
	for _, p := range prefs {
		e := [3]byte{p.Flags, p.Priority, p.Weight}
		dst = append(dst, e[:elemLen]...)
	}
	return appendZeros(dst, OptionPadding(n))
}

// AppendULIDPair appends a ULID Pair option (RFC 5533 §5.15.6).
func AppendULIDPair(dst []byte, sender, receiver netip.Addr) []byte {
	dst = appendOptionHeader(dst, OptULIDPair, false, ulidPairLen)
	dst = append(dst, 0, 0, 0, 0) // Reserved
	s, r := sender.As16(), receiver.As16()
	dst = append(dst, s[:]...)
	return append(dst, r[:]...)
}

// AppendFII appends a Forked Instance Identifier option (RFC 5533 §5.15.7).
func AppendFII(dst []byte, fii uint32) []byte {
	dst = appendOptionHeader(dst, OptForkedInstanceID, false, 4)
	return binary.BigEndian.AppendUint32(dst, fii) // 4+4: no padding
}

// AppendKeepaliveTimeout appends a Keepalive Timeout option (RFC 5534
// §5.3) carrying seconds.
func AppendKeepaliveTimeout(dst []byte, seconds uint16) []byte {
	dst = appendOptionHeader(dst, OptKeepaliveTimeout, false, 4)
	dst = append(dst, 0, 0)                            // Reserved
	return binary.BigEndian.AppendUint16(dst, seconds) // 4+4: no padding
}

// ControlChecksum computes the Shim6 control message checksum over msg,
// which must be exactly the message (Hdr Ext Len octets) with its checksum
// field at offset 4. There is no pseudo-header, so locators can change
// without touching it (RFC 5533 §5.3). The checksum field is treated as zero.
func ControlChecksum(msg []byte) uint16 {
	if len(msg) < 6 {
		return 0
	}
	return checksum.Checksum(msg[6:], checksum.Sum(msg[:4], 0))
}

package shim6

import "encoding/binary"

// ProtocolNumber is the IPv6 Next Header value of every Shim6 header, both
// the payload extension header and control messages (RFC 5533 §5, §17).
const ProtocolNumber = 140

// NoNextHeader is the Next Header value control messages carry (RFC 5533 §5.3).
const NoNextHeader = 59

// PayloadHeaderLen is the fixed size of the Payload Extension Header
// (RFC 5533 §5.2).
const PayloadHeaderLen = 8

// ContextTag is a 47-bit context tag (RFC 5533 §4.1). Values above MaxTag
// never appear on the wire.
type ContextTag uint64

// MaxTag is the largest 47-bit context tag.
const MaxTag ContextTag = 1<<47 - 1

// Valid reports whether t fits in 47 bits.
func (t ContextTag) Valid() bool { return t <= MaxTag }

// putTag writes t into b[0:6] with the R bit (or P bit, for the payload
// header) given in top: bit 7 of b[0] is top, the remaining 47 bits are t
// (RFC 5533 §5.2, §5.4).
func putTag(b []byte, t ContextTag, top bool) {
	_ = b[5]
	hi := byte(t>>40) & 0x7f
	if top {
		hi |= 0x80
	}
	b[0] = hi
	b[1] = byte(t >> 32)
	binary.BigEndian.PutUint32(b[2:6], uint32(t))
}

// getTag reads the 47-bit tag from b[0:6], ignoring bit 7 of b[0].
func getTag(b []byte) ContextTag {
	_ = b[5]
	return ContextTag(b[0]&0x7f)<<40 | ContextTag(b[1])<<32 | ContextTag(binary.BigEndian.Uint32(b[2:6]))
}

// PayloadHeader is a view of the 8-octet Shim6 Payload Extension Header
// (RFC 5533 §5.2):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |  Hdr Ext Len  |1|                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                             +
//	|                Receiver Context Tag (47 bits)                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// A PayloadHeader must be at least PayloadHeaderLen bytes long; use
// ParsePayloadHeader to check bytes from the network.
type PayloadHeader []byte

// ParsePayloadHeader checks that b starts with a well-formed payload
// extension header and returns a view of its first 8 bytes.
func ParsePayloadHeader(b []byte) (PayloadHeader, error) {
	if len(b) < PayloadHeaderLen {
		return nil, ErrTruncated
	}
	if b[2]&0x80 == 0 {
		return nil, ErrNotPayload
	}
	if b[1] != 0 {
		return nil, ErrBadLength
	}
	return PayloadHeader(b[:PayloadHeaderLen]), nil
}

// NextHeader is the protocol of what follows the header.
func (h PayloadHeader) NextHeader() uint8 { return h[0] }

// Tag is the receiver's context tag, CT(local) from the receiver's view.
func (h PayloadHeader) Tag() ContextTag { return getTag(h[2:8]) }

// PutPayloadHeader writes a payload extension header for the given next
// header and receiver context tag into b[0:8].
func PutPayloadHeader(b []byte, next uint8, tag ContextTag) {
	_ = b[PayloadHeaderLen-1]
	b[0] = next
	b[1] = 0
	putTag(b[2:8], tag, true)
}

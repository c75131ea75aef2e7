package shim6

import (
	"encoding/binary"

	"github.com/shim6gw/shim6gw/internal/checksum"
)

// Control message common header offsets (RFC 5533 §5.3).
const (
	offNextHeader = 0
	offHdrExtLen  = 1
	offType       = 2 // P bit (bit 7) and Type (bits 6..0)
	offTypeSpec   = 3 // Type-specific (bits 7..1) and S bit (bit 0)
	offChecksum   = 4
	offBody       = 6
)

// MaxMessageLen is the longest Shim6 header Hdr Ext Len can express:
// (255+1)·8 octets.
const MaxMessageLen = 2048

// Message is a view of one Shim6 control message, exactly Len() octets,
// starting at the Next Header octet (RFC 5533 §5.3):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |  Hdr Ext Len  |0|    Type     |Type-specific|0|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                    Type-specific format                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Only a Message returned by ParseMessage is safe to read with the
// accessors and the per-type views; they assume the checks done there.
// The view aliases the caller's buffer and must not outlive it.
type Message []byte

// ParseMessage checks that b starts with a well-formed Shim6 control
// message and returns a view of exactly that message; octets after it are
// ignored. It checks, in order: at least 8 octets, P = 0, Hdr Ext Len
// within b, the checksum (RFC 5533 §5.3, §12.3), S = 0, a known type
// (else *UnknownTypeError), the type's minimum length (RFC 5533 §7.9 ff.),
// the fixed fields (Probe counts and Sta, RFC 5534 §5.2) and the option
// TLVs: each within the message, known options with a length their format
// allows, and no unknown option with C = 1 (else *CriticalOptionError,
// RFC 5533 §5.15). Other errors are *ParseError. Errors match the
// sentinels with errors.Is. Successful parses do not allocate.
func ParseMessage(b []byte) (Message, error) {
	if len(b) < 8 {
		return nil, &ParseError{Offset: len(b), Err: ErrTruncated}
	}
	if b[offType]&0x80 != 0 {
		return nil, &ParseError{Offset: offType, Err: ErrNotControl}
	}
	n := (int(b[offHdrExtLen]) + 1) * 8
	if n > len(b) {
		return nil, &ParseError{Offset: offHdrExtLen, Err: ErrTruncated}
	}
	m := Message(b[:n])
	if checksum.Fold(checksum.Sum(m, 0)) != 0xffff {
		return nil, &ParseError{Offset: offChecksum, Err: ErrBadChecksum}
	}
	if m[offTypeSpec]&1 != 0 {
		return nil, &ParseError{Offset: offTypeSpec, Err: ErrNotShim6}
	}
	t := m.Type()
	if !t.Known() {
		return nil, &UnknownTypeError{Type: t}
	}
	if n < t.MinLen() {
		return nil, &ParseError{Offset: offHdrExtLen, Err: ErrBadLength}
	}
	if t == TypeProbe {
		if err := checkProbe(m); err != nil {
			return nil, err
		}
	}
	if err := checkOptions(m, m.optionsOffset()); err != nil {
		return nil, err
	}
	return m, nil
}

// NextHeader is the Next Header field, normally 59 (RFC 5533 §5.3).
func (m Message) NextHeader() uint8 { return m[offNextHeader] }

// HdrExtLen is the raw Hdr Ext Len field.
func (m Message) HdrExtLen() uint8 { return m[offHdrExtLen] }

// Len is the message length in octets, (Hdr Ext Len + 1)·8.
func (m Message) Len() int { return (int(m[offHdrExtLen]) + 1) * 8 }

// Type is the message type.
func (m Message) Type() Type { return Type(m[offType] & 0x7f) }

// TypeSpecific is the 7-bit type-specific field of octet 3 (Reserved1, or
// the Error Code of an Error message).
func (m Message) TypeSpecific() uint8 { return m[offTypeSpec] >> 1 }

// Checksum is the checksum field as received.
func (m Message) Checksum() uint16 { return binary.BigEndian.Uint16(m[offChecksum:]) }

// Options returns an iterator over the message's options.
func (m Message) Options() Options {
	off := m.optionsOffset()
	return Options{msg: m, off: off}
}

// OptionsOffset is the offset of the first option, right after the fixed
// part (and, for a Probe, its records). For an Error message it is Len():
// the quoted packet runs to the end and there are no options.
func (m Message) OptionsOffset() int { return m.optionsOffset() }

func (m Message) optionsOffset() int {
	t := m.Type()
	switch t {
	case TypeError:
		return len(m)
	case TypeProbe:
		p := Probe(m)
		return probeRecordsOff + ProbeRecordLen*(p.Psent()+p.Precvd())
	}
	if t >= 128 || fixedLen[t] == 0 {
		return len(m)
	}
	return int(fixedLen[t])
}

// Option returns the first option of type t, with its offset from the
// start of the message.
func (m Message) Option(t OptionType) (opt Option, offset int, ok bool) {
	it := m.Options()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		if o.Type() == t {
			return o, it.Offset(), true
		}
	}
	return nil, 0, false
}

// Per-type views. Convert a Message whose Type() matches, e.g.
// shim6.I1(m).InitiatorTag(); the minimum length checked by ParseMessage
// makes every accessor safe.
type (
	// I1 is an I1 message (RFC 5533 §5.4).
	I1 Message
	// R1 is an R1 message (RFC 5533 §5.5).
	R1 Message
	// I2 is an I2 message (RFC 5533 §5.6).
	I2 Message
	// R2 is an R2 message (RFC 5533 §5.7).
	R2 Message
	// R1bis is an R1bis message (RFC 5533 §5.8).
	R1bis Message
	// I2bis is an I2bis message (RFC 5533 §5.9).
	I2bis Message
	// UpdateRequest is an Update Request message (RFC 5533 §5.10).
	UpdateRequest Message
	// UpdateAck is an Update Acknowledgement message (RFC 5533 §5.11).
	UpdateAck Message
	// Keepalive is a Keepalive message (RFC 5534 §5.1).
	Keepalive Message
	// ErrorMessage is an Error message (RFC 5533 §5.14).
	ErrorMessage Message
)

func u32(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }

// InitiatorTag is the initiator's context tag (octets 6–11).
func (m I1) InitiatorTag() ContextTag { return getTag(m[6:12]) }

// InitiatorNonce is the Initiator Nonce (octets 12–15).
func (m I1) InitiatorNonce() uint32 { return u32(m, 12) }

// InitiatorNonce is the nonce copied from the I1 (octets 8–11).
func (m R1) InitiatorNonce() uint32 { return u32(m, 8) }

// ResponderNonce is the Responder Nonce (octets 12–15).
func (m R1) ResponderNonce() uint32 { return u32(m, 12) }

// InitiatorTag is the initiator's context tag (octets 6–11).
func (m I2) InitiatorTag() ContextTag { return getTag(m[6:12]) }

// InitiatorNonce is the Initiator Nonce (octets 12–15).
func (m I2) InitiatorNonce() uint32 { return u32(m, 12) }

// ResponderNonce is the nonce copied from the R1 (octets 16–19).
func (m I2) ResponderNonce() uint32 { return u32(m, 16) }

// ResponderTag is the responder's context tag (octets 6–11).
func (m R2) ResponderTag() ContextTag { return getTag(m[6:12]) }

// InitiatorNonce is the nonce copied from the I2, I2bis or I1 (octets 12–15).
func (m R2) InitiatorNonce() uint32 { return u32(m, 12) }

// PacketTag is the context tag found in the packet that had no context
// (octets 6–11).
func (m R1bis) PacketTag() ContextTag { return getTag(m[6:12]) }

// ResponderNonce is the Responder Nonce (octets 12–15).
func (m R1bis) ResponderNonce() uint32 { return u32(m, 12) }

// InitiatorTag is the initiator's context tag (octets 6–11).
func (m I2bis) InitiatorTag() ContextTag { return getTag(m[6:12]) }

// InitiatorNonce is the Initiator Nonce (octets 12–15).
func (m I2bis) InitiatorNonce() uint32 { return u32(m, 12) }

// ResponderNonce is the nonce copied from the R1bis (octets 16–19).
func (m I2bis) ResponderNonce() uint32 { return u32(m, 16) }

// PacketTag is the Packet Context Tag copied from the R1bis: octet 26 bits
// 6..0 and octets 27–31, after 49 reserved bits.
func (m I2bis) PacketTag() ContextTag { return getTag(m[26:32]) }

// ReceiverTag is the receiver's context tag (octets 6–11).
func (m UpdateRequest) ReceiverTag() ContextTag { return getTag(m[6:12]) }

// RequestNonce is the Request Nonce (octets 12–15).
func (m UpdateRequest) RequestNonce() uint32 { return u32(m, 12) }

// ReceiverTag is the receiver's context tag (octets 6–11).
func (m UpdateAck) ReceiverTag() ContextTag { return getTag(m[6:12]) }

// RequestNonce is the Request Nonce copied from the Update Request.
func (m UpdateAck) RequestNonce() uint32 { return u32(m, 12) }

// ReceiverTag is the receiver's context tag (octets 6–11).
func (m Keepalive) ReceiverTag() ContextTag { return getTag(m[6:12]) }

// Code is the Error Code (octet 3 bits 7..1).
func (m ErrorMessage) Code() ErrorCode { return ErrorCode(m[offTypeSpec] >> 1) }

// Pointer is the offset in the invoking packet where the problem is
// (octets 6–7).
func (m ErrorMessage) Pointer() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// Packet is the quoted invoking packet, including any zero padding the
// sender added to reach a multiple of 8 octets (RFC 5533 §5.14 does not
// say how to pad, so receivers must be lenient).
func (m ErrorMessage) Packet() []byte { return m[8:] }

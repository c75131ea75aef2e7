package shim6

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by the parsers; wrapped errors carry detail and
// match these with errors.Is.
var (
	ErrTruncated  = errors.New("shim6: truncated header")
	ErrNotPayload = errors.New("shim6: not a payload extension header")
	ErrBadLength  = errors.New("shim6: bad header length")

	// ErrNotControl: the P bit is set, so the header is a payload extension
	// header, not a control message (RFC 5533 §5.3).
	ErrNotControl = errors.New("shim6: not a control message")
	// ErrBadChecksum: the control checksum does not verify (RFC 5533 §5.3).
	ErrBadChecksum = errors.New("shim6: bad checksum")
	// ErrUnknownType: the message type is not one this package knows; the
	// receiver answers with Error code 0 (RFC 5533 §5.14, §12.3).
	ErrUnknownType = errors.New("shim6: unknown message type")
	// ErrNotShim6: the S bit is set, i.e. a HIP-format header (RFC 5533 §5.3).
	ErrNotShim6 = errors.New("shim6: S bit set")
	// ErrBadField: a fixed field has a value the format forbids (Probe Psent
	// = 0, Sta = 3, records beyond the message).
	ErrBadField = errors.New("shim6: bad field value")
	// ErrBadOption: an option overruns the message or a known option has
	// the wrong length for its format.
	ErrBadOption = errors.New("shim6: malformed option")
	// ErrCriticalOption: an option with C=1 that is not known; the receiver
	// answers with Error code 1 and drops the message (RFC 5533 §5.15).
	ErrCriticalOption = errors.New("shim6: unknown critical option")
	// ErrTooLong: a message to build exceeds what Hdr Ext Len can express
	// (2048 octets) or is not a multiple of 8 octets.
	ErrTooLong = errors.New("shim6: message too long")
	// ErrBadAddress: a control packet's source or destination is multicast
	// or unspecified, which RFC 5533 §12.3 says to drop silently.
	ErrBadAddress = errors.New("shim6: multicast or unspecified address")
	// ErrNotIPv6Shim6: the packet is not IPv6 with Next Header 140 right
	// after the fixed header.
	ErrNotIPv6Shim6 = errors.New("shim6: not an ipv6 packet with next header 140")
)

// ParseError reports where a control message is malformed. Offset counts
// octets from the first octet of the Shim6 header. Err is one of the
// sentinels above and is what errors.Is matches.
type ParseError struct {
	Offset int
	Err    error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%v at offset %d", e.Err, e.Offset)
}

func (e *ParseError) Unwrap() error { return e.Err }

// UnknownTypeError reports a control message whose type is not known. The
// Type field sits at octet 2 of the message, which is where the Error
// message's Pointer must point (Error code 0, RFC 5533 §5.14). It matches
// ErrUnknownType.
type UnknownTypeError struct {
	Type Type
}

// UnknownTypeOffset is the offset of the Type octet in a control message.
const UnknownTypeOffset = 2

func (e *UnknownTypeError) Error() string {
	return fmt.Sprintf("shim6: unknown message type %d", uint8(e.Type))
}

func (e *UnknownTypeError) Unwrap() error { return ErrUnknownType }

// CriticalOptionError reports an unknown option with the C bit set.
// Offset is the offset of the option's Type field from the start of the
// Shim6 header, which is what the Error message's Pointer carries (Error
// code 1, RFC 5533 §5.14, §5.15). It matches ErrCriticalOption.
type CriticalOptionError struct {
	Offset int
	Type   OptionType
}

func (e *CriticalOptionError) Error() string {
	return fmt.Sprintf("shim6: unknown critical option %d at offset %d", uint16(e.Type), e.Offset)
}

func (e *CriticalOptionError) Unwrap() error { return ErrCriticalOption }

// ErrorResponse tells what Error message, if any, a receiver should send
// for a ParseMessage error: code and Pointer (offset from the start of the
// Shim6 header; add the length of the headers before it if the quoted
// packet starts at the IPv6 header). ok is false for errors that are
// silently dropped (RFC 5533 §12.3).
func ErrorResponse(err error) (code ErrorCode, pointer int, ok bool) {
	var ut *UnknownTypeError
	if errors.As(err, &ut) {
		return CodeUnknownType, UnknownTypeOffset, true
	}
	var co *CriticalOptionError
	if errors.As(err, &co) {
		return CodeCriticalOption, co.Offset, true
	}
	return 0, 0, false
}

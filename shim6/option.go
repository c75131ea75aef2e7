package shim6

import (
	"encoding/binary"
	"net/netip"
)

// OptionHeaderLen is the size of the Type/C and Length fields of an option.
const OptionHeaderLen = 4

// Option is a view of one option TLV (RFC 5533 §5.15): the 4-octet header
// and Length octets of contents, without the trailing padding.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|              Type           |C|            Length             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~                          Contents                             ~
//	~                                               +-+-+-+-+-+-+-+-+
//	~                                               |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type Option []byte

// Type is the 15-bit option type.
func (o Option) Type() OptionType { return OptionType(binary.BigEndian.Uint16(o) >> 1) }

// Critical is the C bit.
func (o Option) Critical() bool { return o[1]&1 != 0 }

// Len is the Length field: octets of contents, excluding header and padding.
func (o Option) Len() int { return int(binary.BigEndian.Uint16(o[2:])) }

// Contents are the Length octets after the header.
func (o Option) Contents() []byte { return o[OptionHeaderLen:] }

// OptionPadding is the number of zero octets after an option whose Length
// is n: 7 − ((n + 3) mod 8) (RFC 5533 §5.15).
func OptionPadding(n int) int { return 7 - (n+3)%8 }

// OptionSize is the total on-wire size of an option with n content octets.
func OptionSize(n int) int { return OptionHeaderLen + n + OptionPadding(n) }

// Options iterates over the options of a message without allocating:
//
//	it := m.Options()
//	for o, ok := it.Next(); ok; o, ok = it.Next() { ... }
//
// Every option is returned, unknown ones included; callers ignore types
// they do not handle (unknown critical ones were rejected by ParseMessage).
type Options struct {
	msg  []byte
	off  int // offset of the next option
	last int // offset of the option last returned
}

// Next returns the next option, or false at the end of the message or at
// an option that does not fit (which ParseMessage already rejects).
func (it *Options) Next() (Option, bool) {
	o, next, err := nextOption(it.msg, it.off)
	if err != nil || o == nil {
		it.off = len(it.msg)
		return nil, false
	}
	it.last, it.off = it.off, next
	return o, true
}

// Offset is the offset, from the start of the message, of the Type field of
// the option Next returned last (for Error message Pointers).
func (it *Options) Offset() int { return it.last }

// nextOption frames the option at off. It returns a nil option at the end
// of b and ErrBadOption (as *ParseError) when the option overruns b.
func nextOption(b []byte, off int) (Option, int, error) {
	if off >= len(b) {
		return nil, off, nil
	}
	if len(b)-off < OptionHeaderLen {
		return nil, off, &ParseError{Offset: off, Err: ErrBadOption}
	}
	n := int(binary.BigEndian.Uint16(b[off+2:]))
	end := off + OptionHeaderLen + n
	next := off + OptionSize(n)
	if next > len(b) {
		return nil, off, &ParseError{Offset: off + 2, Err: ErrBadOption}
	}
	return Option(b[off:end]), next, nil
}

// checkOptions validates the framing of every option from off to the end
// of m, the contents of known ones, and rejects unknown critical ones.
func checkOptions(m []byte, off int) error {
	for {
		o, next, err := nextOption(m, off)
		if err != nil {
			return err
		}
		if o == nil {
			return nil
		}
		t := o.Type()
		if !t.Known() {
			if o.Critical() {
				return &CriticalOptionError{Offset: off, Type: t}
			}
		} else if !o.wellFormed() {
			return &ParseError{Offset: off, Err: ErrBadOption}
		}
		off = next
	}
}

// wellFormed checks a known option's Length against its format.
func (o Option) wellFormed() bool {
	n := o.Len()
	switch o.Type() {
	case OptLocatorList:
		if n < 5 {
			return false
		}
		k := int(o[OptionHeaderLen+4])
		return n == locatorListLen(k)
	case OptLocatorPreferences:
		if n < 5 {
			return false
		}
		el := int(o[OptionHeaderLen+4])
		return el >= 1 && (n-5)%el == 0
	case OptULIDPair:
		return n == ulidPairLen
	case OptForkedInstanceID, OptKeepaliveTimeout:
		return n == 4
	}
	return true // opaque contents
}

// Typed option views. Each accessor checks the option type and length and
// returns ok = false on a mismatch, so they are safe on any Option.

// LocatorList is the contents of a Locator List option (RFC 5533 §5.15.2):
// Generation (4) | N (1) | N verification methods | padding to 8 | N
// locators of 16 octets.
type LocatorList []byte

func locatorListLen(n int) int { return 5 + n + (7 - n%8) + 16*n }

// LocatorList returns the contents as a LocatorList.
func (o Option) LocatorList() (LocatorList, bool) {
	if o.Type() != OptLocatorList || !o.wellFormed() {
		return nil, false
	}
	return LocatorList(o.Contents()), true
}

// Generation is the Locator List Generation.
func (l LocatorList) Generation() uint32 { return binary.BigEndian.Uint32(l) }

// Count is N, the number of locators.
func (l LocatorList) Count() int { return int(l[4]) }

// Method is the verification method of locator i (VerifyHBA, VerifyCGA).
func (l LocatorList) Method(i int) uint8 { return l[5+i] }

// MethodOffset is the offset of locator i's method octet within the
// option contents (add the option offset + 4 for an Error Pointer).
func (l LocatorList) MethodOffset(i int) int { return 5 + i }

// Locator is locator i.
func (l LocatorList) Locator(i int) netip.Addr {
	n := l.Count()
	off := 5 + n + (7 - n%8) + 16*i
	return netip.AddrFrom16([16]byte(l[off : off+16]))
}

// LocatorPreferences is the contents of a Locator Preferences option (RFC
// 5533 §5.15.3): Generation (4) | Element Len (1) | elements.
type LocatorPreferences []byte

// LocatorPreferences returns the contents as a LocatorPreferences.
func (o Option) LocatorPreferences() (LocatorPreferences, bool) {
	if o.Type() != OptLocatorPreferences || !o.wellFormed() {
		return nil, false
	}
	return LocatorPreferences(o.Contents()), true
}

// Generation is the Locator List Generation the preferences apply to.
func (p LocatorPreferences) Generation() uint32 { return binary.BigEndian.Uint32(p) }

// ElementLen is the length of each element (1, 2, 3 or more).
func (p LocatorPreferences) ElementLen() int { return int(p[4]) }

// Count is the number of elements.
func (p LocatorPreferences) Count() int { return (len(p) - 5) / p.ElementLen() }

// Element returns element i. Fields beyond ElementLen are zero; octets
// beyond the third are ignored.
func (p LocatorPreferences) Element(i int) LocatorPreference {
	el := p.ElementLen()
	e := p[5+i*el : 5+(i+1)*el]
	var lp LocatorPreference
	lp.Flags = e[0]
	if el >= 2 {
		lp.Priority = e[1]
	}
	if el >= 3 {
		lp.Weight = e[2]
	}
	return lp
}

// LocatorPreference is one element of a Locator Preferences option.
type LocatorPreference struct {
	Flags    uint8 // FlagBroken, FlagTransient
	Priority uint8 // DNS SRV semantics
	Weight   uint8 // DNS SRV semantics
}

// LocatorPreferencesGenerationOffset and LocatorPreferencesLengthOffset
// are where, relative to the option's Type field, the Error codes 3 and 4
// Pointers point (RFC 5533 §5.14).
const (
	LocatorPreferencesGenerationOffset = 4
	LocatorPreferencesLengthOffset     = 2
)

const ulidPairLen = 36

// ULIDPair returns the sender and receiver ULIDs of a ULID Pair option
// (RFC 5533 §5.15.6).
func (o Option) ULIDPair() (sender, receiver netip.Addr, ok bool) {
	if o.Type() != OptULIDPair || o.Len() != ulidPairLen {
		return netip.Addr{}, netip.Addr{}, false
	}
	c := o.Contents()
	return netip.AddrFrom16([16]byte(c[4:20])), netip.AddrFrom16([16]byte(c[20:36])), true
}

// FII returns the Forked Instance Identifier (RFC 5533 §5.15.7).
func (o Option) FII() (uint32, bool) {
	if o.Type() != OptForkedInstanceID || o.Len() != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(o.Contents()), true
}

// KeepaliveTimeout returns the Keepalive Timeout in seconds (RFC 5534 §5.3).
func (o Option) KeepaliveTimeout() (uint16, bool) {
	if o.Type() != OptKeepaliveTimeout || o.Len() != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint16(o.Contents()[2:]), true
}

// ResponderValidator returns the opaque validator (RFC 5533 §5.15.1).
func (o Option) ResponderValidator() ([]byte, bool) {
	if o.Type() != OptResponderValidator {
		return nil, false
	}
	return o.Contents(), true
}

// CGAPDS returns the CGA Parameter Data Structure (RFC 5533 §5.15.4).
func (o Option) CGAPDS() ([]byte, bool) {
	if o.Type() != OptCGAParameterDataStructure {
		return nil, false
	}
	return o.Contents(), true
}

// CGASignature returns the CGA signature (RFC 5533 §5.15.5).
func (o Option) CGASignature() ([]byte, bool) {
	if o.Type() != OptCGASignature {
		return nil, false
	}
	return o.Contents(), true
}

package hba

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Multi-Prefix extension data (RFC 5535 §5), after the RFC 4581 TLV header:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|P|                         Reserved                            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Prefix[1] (64 bits)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               ...                             |
const (
	multiPrefixFlagsLen = 4
	pFlag               = 0x80
)

// MultiPrefix is a view over the data of a Multi-Prefix extension
// (RFC 5535 §5). Build one with ParseMultiPrefix.
type MultiPrefix []byte

// ParseMultiPrefix validates the extension data length (4 + 8n).
func ParseMultiPrefix(data []byte) (MultiPrefix, error) {
	if len(data) < multiPrefixFlagsLen || (len(data)-multiPrefixFlagsLen)%8 != 0 {
		return nil, fmt.Errorf("%w: data length %d is not 4+8n", ErrBadMultiPrefix, len(data))
	}
	return MultiPrefix(data), nil
}

// P reports the P flag: set when the PDS carries a real public key
// (CGA/HBA-compatible set), clear for an HBA-only set (RFC 5535 §5).
func (m MultiPrefix) P() bool { return m[0]&pFlag != 0 }

// Len returns the number of prefixes.
func (m MultiPrefix) Len() int { return (len(m) - multiPrefixFlagsLen) / 8 }

// Prefix returns the i-th 64-bit prefix.
func (m MultiPrefix) Prefix(i int) (p [8]byte) {
	copy(p[:], m[multiPrefixFlagsLen+8*i:])
	return p
}

// Index returns the position of p in the list, or -1.
func (m MultiPrefix) Index(p [8]byte) int {
	want := binary.BigEndian.Uint64(p[:])
	for i := range m.Len() {
		if binary.BigEndian.Uint64(m[multiPrefixFlagsLen+8*i:]) == want {
			return i
		}
	}
	return -1
}

// AppendMultiPrefix appends a complete Multi-Prefix extension TLV (type
// 0x0012, length 4+8n) to dst (RFC 5535 §5, §6 step 1). The prefixes'
// first 64 bits are used as they are.
func AppendMultiPrefix(dst []byte, p bool, prefixes []netip.Prefix) []byte {
	dst = binary.BigEndian.AppendUint16(dst, ExtMultiPrefix)
	dst = binary.BigEndian.AppendUint16(dst, uint16(multiPrefixFlagsLen+8*len(prefixes)))
	var flags byte
	if p {
		flags = pFlag
	}
	dst = append(dst, flags, 0, 0, 0)
	for _, pr := range prefixes {
		a := pr.Addr().As16()
		dst = append(dst, a[:8]...)
	}
	return dst
}

// prefix64 returns the first 64 bits of a.
func prefix64(a netip.Addr) (p [8]byte) {
	b := a.As16()
	copy(p[:], b[:8])
	return p
}

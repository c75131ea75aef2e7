package hba

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"iter"
)

// CGA Parameter Data Structure layout (RFC 3972 §3):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      Modifier (16 octets)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Subnet Prefix (8 octets)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Collision Count|   Public Key (DER SubjectPublicKeyInfo) ...   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      Extension Fields (RFC 4581 TLVs, optional) ...           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	modifierOff  = 0
	prefixOff    = 16
	collisionOff = 24
	keyOff       = 25

	// MinPDSLen is the shortest possible PDS: fixed fields plus the
	// smallest DER SEQUENCE header.
	MinPDSLen = keyOff + 2

	// ExtMultiPrefix is the Multi-Prefix extension type (RFC 5535 §10).
	ExtMultiPrefix uint16 = 0x0012

	extHeaderLen = 4 // RFC 4581 §2: type (16) + data length (16)
)

// PDS is a view over an encoded CGA Parameter Data Structure (RFC 3972 §3).
// Build one with ParsePDS, which validates every length once; the
// accessors then assume a valid PDS and never fail.
type PDS []byte

// ParsePDS validates b as a CGA Parameter Data Structure: the fixed fields,
// the Public Key's DER outer SEQUENCE (short or long form) and the
// extension TLVs (RFC 4581 §2), which must fill the rest exactly. It does
// not copy b.
func ParsePDS(b []byte) (PDS, error) {
	if len(b) < MinPDSLen {
		return nil, fmt.Errorf("%w: pds is %d octets, need at least %d", ErrTruncated, len(b), MinPDSLen)
	}
	n, err := derSequenceLen(b[keyOff:])
	if err != nil {
		return nil, err
	}
	ext := b[keyOff+n:]
	for len(ext) > 0 {
		if len(ext) < extHeaderLen {
			return nil, fmt.Errorf("%w: %d trailing octets are shorter than an extension header", ErrBadExtension, len(ext))
		}
		l := int(binary.BigEndian.Uint16(ext[2:4]))
		if extHeaderLen+l > len(ext) {
			return nil, fmt.Errorf("%w: extension type %#04x data length %d exceeds %d remaining octets",
				ErrBadExtension, binary.BigEndian.Uint16(ext[0:2]), l, len(ext)-extHeaderLen)
		}
		ext = ext[extHeaderLen+l:]
	}
	return PDS(b), nil
}

// derSequenceLen returns the total length (header and content) of the DER
// SEQUENCE at the start of b. Only definite, minimal lengths up to 0xFFFF
// are valid: a PDS travels in a Shim6 option whose length is 16 bits.
func derSequenceLen(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("%w: public key has %d octets, need a DER header", ErrTruncated, len(b))
	}
	if b[0] != 0x30 {
		return 0, fmt.Errorf("%w: tag %#02x is not a SEQUENCE", ErrBadDER, b[0])
	}
	var hdr, l int
	switch lb := b[1]; {
	case lb < 0x80:
		hdr, l = 2, int(lb)
	case lb == 0x81:
		if len(b) < 3 {
			return 0, fmt.Errorf("%w: DER length octet missing", ErrTruncated)
		}
		hdr, l = 3, int(b[2])
		if l < 0x80 {
			return 0, fmt.Errorf("%w: non-minimal length %d in long form", ErrBadDER, l)
		}
	case lb == 0x82:
		if len(b) < 4 {
			return 0, fmt.Errorf("%w: DER length octets missing", ErrTruncated)
		}
		hdr, l = 4, int(binary.BigEndian.Uint16(b[2:4]))
		if l < 0x100 {
			return 0, fmt.Errorf("%w: non-minimal length %d in long form", ErrBadDER, l)
		}
	case lb == 0x80:
		return 0, fmt.Errorf("%w: indefinite length", ErrBadDER)
	default:
		return 0, fmt.Errorf("%w: length of %d octets is too long", ErrBadDER, lb&0x7f)
	}
	if hdr+l > len(b) {
		return 0, fmt.Errorf("%w: public key needs %d octets, %d remain", ErrTruncated, hdr+l, len(b))
	}
	return hdr + l, nil
}

// Modifier returns the 128-bit Modifier.
func (p PDS) Modifier() (m [16]byte) {
	copy(m[:], p[modifierOff:prefixOff])
	return m
}

// SubnetPrefix returns the 64-bit Subnet Prefix.
func (p PDS) SubnetPrefix() (s [8]byte) {
	copy(s[:], p[prefixOff:collisionOff])
	return s
}

// CollisionCount returns the Collision Count octet. Only 0..2 are valid,
// which verification checks (RFC 3972 §5).
func (p PDS) CollisionCount() uint8 { return p[collisionOff] }

// PublicKey returns the DER-encoded Public Key field: an RSA
// SubjectPublicKeyInfo, or an encoded Extended Modifier (RFC 5535 §6). It
// aliases p.
func (p PDS) PublicKey() []byte {
	n, _ := derSequenceLen(p[keyOff:]) // validated by ParsePDS
	return p[keyOff : keyOff+n]
}

// ExtensionFields returns the raw extension fields after the public key. It
// aliases p.
func (p PDS) ExtensionFields() []byte {
	n, _ := derSequenceLen(p[keyOff:])
	return p[keyOff+n:]
}

// Extensions iterates over the RFC 4581 extensions in order, yielding the
// type and the data (aliasing p).
func (p PDS) Extensions() iter.Seq2[uint16, []byte] {
	return func(yield func(uint16, []byte) bool) {
		ext := p.ExtensionFields()
		for len(ext) >= extHeaderLen {
			t := binary.BigEndian.Uint16(ext[0:2])
			l := int(binary.BigEndian.Uint16(ext[2:4]))
			if extHeaderLen+l > len(ext) {
				return // only reachable for an unvalidated PDS
			}
			if !yield(t, ext[extHeaderLen:extHeaderLen+l]) {
				return
			}
			ext = ext[extHeaderLen+l:]
		}
	}
}

// Extension returns the data of the first extension of type t.
func (p PDS) Extension(t uint16) ([]byte, bool) {
	for typ, data := range p.Extensions() {
		if typ == t {
			return data, true
		}
	}
	return nil, false
}

// MultiPrefix returns the first Multi-Prefix extension (RFC 5535 §5).
func (p PDS) MultiPrefix() (MultiPrefix, error) {
	data, ok := p.Extension(ExtMultiPrefix)
	if !ok {
		return nil, ErrNoMultiPrefix
	}
	return ParseMultiPrefix(data)
}

// Hash1 returns the 64 leftmost bits of SHA-1 over the whole PDS
// (RFC 3972 §4 step 6).
func (p PDS) Hash1() (h [8]byte) {
	s := sha1.Sum(p)
	copy(h[:], s[:8])
	return h
}

// Hash2 returns the 112 leftmost bits of SHA-1 over the PDS with the
// Subnet Prefix and Collision Count zeroed (RFC 3972 §4 step 2).
func (p PDS) Hash2() [14]byte {
	var arr [stackPDS]byte
	buf := scratch(&arr, p)
	clear(buf[prefixOff:keyOff])
	return hash2(buf)
}

// stackPDS bounds the PDS size hashed without a heap copy; a Shim6 control
// message is at most 1280 octets (RFC 5533 §5.1).
const stackPDS = 1280

// scratch copies p into arr, or into a heap buffer when p is larger.
func scratch(arr *[stackPDS]byte, p []byte) []byte {
	var buf []byte
	if len(p) <= len(arr) {
		buf = arr[:len(p)]
	} else {
		buf = make([]byte, len(p))
	}
	copy(buf, p)
	return buf
}

func hash2(zeroed []byte) (h [14]byte) {
	s := sha1.Sum(zeroed)
	copy(h[:], s[:14])
	return h
}

// AppendPDS appends an encoded PDS to dst. publicKey must be one DER
// SEQUENCE and extensions a sequence of RFC 4581 TLVs (see AppendExtension);
// neither is checked here.
func AppendPDS(dst []byte, modifier [16]byte, subnetPrefix [8]byte, collisionCount uint8, publicKey, extensions []byte) []byte {
	dst = append(dst, modifier[:]...)
	dst = append(dst, subnetPrefix[:]...)
	dst = append(dst, collisionCount)
	dst = append(dst, publicKey...)
	return append(dst, extensions...)
}

// AppendExtension appends one RFC 4581 §2 extension TLV to dst. It panics
// if data is longer than 65535 octets (a programmer error).
func AppendExtension(dst []byte, t uint16, data []byte) []byte {
	if len(data) > 0xFFFF {
		panic("hba: extension data longer than 65535 octets")
	}
	dst = binary.BigEndian.AppendUint16(dst, t)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(data)))
	return append(dst, data...)
}

package hba

import (
	"crypto/rsa"
	"fmt"
	"io"
	"net/netip"
)

// ExtendedModifierLen is the size of the HBA-only Extended Modifier: 384
// bits (RFC 5535 §6 step 2).
const ExtendedModifierLen = 48

// emDERPrefix is the DER header LinShim6 puts before the 48 Extended
// Modifier octets: SEQUENCE(66) { SEQUENCE { OID rsaEncryption, NULL },
// BIT STRING(49) { 0 unused bits, EM } }.
var emDERPrefix = []byte{
	0x30, 0x42, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
	0x01, 0x01, 0x01, 0x05, 0x00, 0x03, 0x31, 0x00,
}

// EncodedExtendedModifierLen is the length of EncodeExtendedModifier's
// output.
const EncodedExtendedModifierLen = 20 + ExtendedModifierLen

// EncodeExtendedModifier encodes an HBA-only Extended Modifier as the PDS
// Public Key field: an rsaEncryption SubjectPublicKeyInfo whose BIT STRING
// holds the 48 octets as they are (the LinShim6 layout; see the package
// documentation for why).
func EncodeExtendedModifier(em [ExtendedModifierLen]byte) []byte {
	b := make([]byte, 0, EncodedExtendedModifierLen)
	b = append(b, emDERPrefix...)
	return append(b, em[:]...)
}

// SetParams are the inputs of HBA set generation (RFC 5535 §6).
type SetParams struct {
	// Prefixes are the /64s of the set, in Multi-Prefix order; at least
	// one, no duplicates.
	Prefixes []netip.Prefix
	// Sec is the CGA Sec parameter, 0..MaxGenerateSec.
	Sec uint8
	// Modifier is the starting modifier of the Hash2 search (step 2).
	Modifier [16]byte
	// PublicKey is the DER SubjectPublicKeyInfo of a real key for a
	// CGA/HBA-compatible set (P=1). Leave nil for an HBA-only set.
	PublicKey []byte
	// ExtendedModifier is used for an HBA-only set (P=0) and ignored when
	// PublicKey is set.
	ExtendedModifier [ExtendedModifierLen]byte
	// Collides, if not nil, reports a duplicate address (DAD); the whole
	// set is then regenerated with the next collision count (step 6).
	Collides func(netip.Addr) bool
}

// Set is a generated HBA set: one address per prefix, all sharing the
// modifier, public key (or Extended Modifier), collision count and
// Multi-Prefix extension (RFC 5535 §6).
type Set struct {
	Sec            uint8
	Modifier       [16]byte // after the Hash2 search
	CollisionCount uint8
	PublicKey      []byte // DER: real key or encoded Extended Modifier
	Extensions     []byte // the Multi-Prefix extension TLV
	Prefixes       []netip.Prefix
	Addresses      []netip.Addr // Addresses[i] is under Prefixes[i]
}

// PDS returns the CGA Parameter Data Structure of Addresses[i]: the shared
// fields with Prefixes[i] as Subnet Prefix (RFC 5535 §6 step 6.5).
func (s *Set) PDS(i int) []byte {
	return AppendPDS(make([]byte, 0, keyOff+len(s.PublicKey)+len(s.Extensions)),
		s.Modifier, prefix64(s.Prefixes[i].Addr()), s.CollisionCount, s.PublicKey, s.Extensions)
}

// GenerateSet runs RFC 5535 §6 steps 1-6 deterministically from p.
func GenerateSet(p SetParams) (*Set, error) {
	if err := checkPrefixes(p.Prefixes, 1); err != nil {
		return nil, err
	}
	if p.Sec > MaxGenerateSec {
		return nil, fmt.Errorf("%w: sec %d, generation supports 0..%d", ErrUnsupportedSec, p.Sec, MaxGenerateSec)
	}
	key := p.PublicKey
	if key == nil {
		key = EncodeExtendedModifier(p.ExtendedModifier)
	} else if _, err := derSequenceLen(key); err != nil {
		return nil, err
	}
	s := &Set{
		Sec:        p.Sec,
		PublicKey:  key,
		Extensions: AppendMultiPrefix(nil, p.PublicKey != nil, p.Prefixes),
		Prefixes:   append([]netip.Prefix(nil), p.Prefixes...),
		Addresses:  make([]netip.Addr, len(p.Prefixes)),
	}
	s.Modifier = searchModifier(p.Modifier, p.Sec, s.PublicKey, s.Extensions)
	if !s.fill(p.Collides) {
		return nil, fmt.Errorf("%w: three collisions", ErrCollisionCount)
	}
	return s, nil
}

// fill runs RFC 5535 §6 step 6 from collision count s.CollisionCount: one
// collision count for the whole set (the text's "go back to step 6"). It
// reports false after a third collision.
func (s *Set) fill(collides func(netip.Addr) bool) bool {
	buf := AppendPDS(nil, s.Modifier, [8]byte{}, 0, s.PublicKey, s.Extensions)
	for cc := s.CollisionCount; cc <= 2; cc++ {
		buf[collisionOff] = cc
		clash := false
		for i, pr := range s.Prefixes {
			pfx := prefix64(pr.Addr())
			copy(buf[prefixOff:collisionOff], pfx[:])
			s.Addresses[i] = cgaAddr(pfx, s.Sec, buf)
			if collides != nil && collides(s.Addresses[i]) {
				clash = true
				break
			}
		}
		if !clash {
			s.CollisionCount = cc
			return true
		}
	}
	return false
}

// GenerateHBA generates an HBA-only set (P=0) with a random modifier and
// Extended Modifier read from rand (RFC 5535 §6).
func GenerateHBA(rand io.Reader, prefixes []netip.Prefix, sec uint8) (*Set, error) {
	p := SetParams{Prefixes: prefixes, Sec: sec}
	if _, err := io.ReadFull(rand, p.Modifier[:]); err != nil {
		return nil, fmt.Errorf("hba: reading modifier: %w", err)
	}
	if _, err := io.ReadFull(rand, p.ExtendedModifier[:]); err != nil {
		return nil, fmt.Errorf("hba: reading extended modifier: %w", err)
	}
	return GenerateSet(p)
}

// GenerateCGAHBA generates an HBA/CGA-compatible set (P=1) for pub with a
// random modifier read from rand (RFC 5535 §4, §6). Its addresses verify
// both as HBAs and, each with its own PDS, as CGAs, so they can also be
// used with CGA signatures.
func GenerateCGAHBA(rand io.Reader, pub *rsa.PublicKey, prefixes []netip.Prefix, sec uint8) (*Set, error) {
	key, err := MarshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	p := SetParams{Prefixes: prefixes, Sec: sec, PublicKey: key}
	if _, err := io.ReadFull(rand, p.Modifier[:]); err != nil {
		return nil, fmt.Errorf("hba: reading modifier: %w", err)
	}
	return GenerateSet(p)
}

// VerifyHBA verifies that locator belongs to the HBA set defined by pds
// (RFC 5535 §7.2): its /64 must be in the Multi-Prefix list; that prefix
// replaces the PDS Subnet Prefix and CGA verification (RFC 3972 §5) runs
// on the result. pds is typically the peer ULID's and is not modified.
func VerifyHBA(locator netip.Addr, pds []byte) error {
	p, err := ParsePDS(pds)
	if err != nil {
		return err
	}
	mp, err := p.MultiPrefix()
	if err != nil {
		return err
	}
	if !locator.Is6() || locator.Is4In6() {
		return fmt.Errorf("%w: %s", ErrBadAddress, locator)
	}
	a := locator.As16()
	pfx := [8]byte(a[:8])
	if mp.Index(pfx) < 0 {
		return ErrPrefixNotInSet
	}
	var arr [stackPDS]byte
	buf := scratch(&arr, p)
	copy(buf[prefixOff:collisionOff], pfx[:])
	return verifyBuf(a, buf)
}

// invalidError is an operator-facing parameter error; it matches
// ErrInvalid without repeating its text.
type invalidError string

func (e invalidError) Error() string        { return string(e) }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return invalidError(fmt.Sprintf("hba: "+format, args...))
}

// checkPrefix reports why p cannot be an HBA /64.
func checkPrefix(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return invalidf("invalid prefix %s", p)
	case !p.Addr().Is6() || p.Addr().Is4In6():
		return invalidf("prefix %s is not IPv6", p)
	case p.Bits() != 64:
		return invalidf("prefix %s is not a /64", p)
	case p.Masked() != p:
		return invalidf("prefix %s has bits set after the first 64", p)
	}
	return nil
}

// checkPrefixes validates a prefix list: each a /64, no duplicates, at
// least min of them.
func checkPrefixes(prefixes []netip.Prefix, min int) error {
	for i, p := range prefixes {
		if err := checkPrefix(p); err != nil {
			return err
		}
		for _, q := range prefixes[:i] {
			if q == p {
				return invalidf("duplicate prefix %s", p)
			}
		}
	}
	if len(prefixes) < min {
		return invalidf("need at least %d prefixes, got %d", min, len(prefixes))
	}
	return nil
}

package hba

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Shim6 locator verification methods (RFC 5533 §5.15.2 Table 4; §17 lists
// them swapped, LinShim6 and Wireshark use these values).
const (
	MethodHBA uint8 = 1
	MethodCGA uint8 = 2
)

// ErrUnsupportedMethod: a locator with a verification method other than
// HBA or CGA, or a method list that does not match the locators.
var ErrUnsupportedMethod = errors.New("hba: unsupported verification method")

// ShimSignedMessage returns the octets that follow the type tag in a Shim6
// CGA signature: the Locator List Generation ‖ the locators whose method
// is CGA, in list order (RFC 5533 §5.15.5 items 2-3). Sign and
// VerifySignature prepend ShimCGATypeTag (item 1).
func ShimSignedMessage(generation uint32, locs []netip.Addr, methods []uint8) []byte {
	msg := binary.BigEndian.AppendUint32(make([]byte, 0, 4+16*len(locs)), generation)
	for i, l := range locs {
		if i < len(methods) && methods[i] == MethodCGA {
			msg = append(msg, l.AsSlice()...)
		}
	}
	return msg
}

// Verifier checks a Shim6 peer's locator list; it satisfies
// shim6.Verifier without importing it.
type Verifier struct {
	// MaxKeyBits bounds the peer's RSA modulus for CGA signatures
	// (DefaultMaxRSABits if 0); see PeerKey.
	MaxKeyBits int
}

// VerifyLocators checks that pds belongs to ulid (HBA verification if the
// PDS has a Multi-Prefix extension, CGA verification otherwise), that every
// HBA locator belongs to the set (RFC 5535 §7.2), and, if any locator uses
// CGA, that sig signs generation and the CGA locators with the PDS key
// (RFC 5533 §5.15.5, §7.2). methods has one entry per locator; nil means
// HBA for all. It checks the signature at most once; a failure is a
// *LocatorError naming the first locator at fault (index 0 when the PDS
// does not match the ULID, the first CGA locator when the signature or its
// key is refused).
func (v Verifier) VerifyLocators(ulid netip.Addr, pds, sig []byte, generation uint32, locs []netip.Addr, methods []uint8) error {
	p, err := ParsePDS(pds)
	if err != nil {
		return &LocatorError{0, err}
	}
	if _, mpErr := p.MultiPrefix(); mpErr == nil {
		err = VerifyHBA(ulid, pds)
	} else {
		err = VerifyCGA(ulid, pds)
	}
	if err != nil {
		return &LocatorError{0, fmt.Errorf("peer ulid %s: %w", ulid, err)}
	}
	if methods != nil && len(methods) != len(locs) {
		return &LocatorError{0, fmt.Errorf("%w: %d methods for %d locators", ErrUnsupportedMethod, len(methods), len(locs))}
	}
	firstCGA := -1
	for i, l := range locs {
		m := MethodHBA
		if methods != nil {
			m = methods[i]
		}
		switch m {
		case MethodHBA:
			if err := VerifyHBA(l, pds); err != nil {
				return &LocatorError{i, fmt.Errorf("locator %s: %w", l, err)}
			}
		case MethodCGA:
			if firstCGA < 0 {
				firstCGA = i
			}
		default:
			return &LocatorError{i, fmt.Errorf("%w: method %d for locator %s", ErrUnsupportedMethod, m, l)}
		}
	}
	if firstCGA < 0 {
		return nil
	}
	if len(sig) == 0 {
		return &LocatorError{firstCGA, fmt.Errorf("%w: cga locators without a signature", ErrBadSignature)}
	}
	if err := verifySignature(pds, ShimCGATypeTag, ShimSignedMessage(generation, locs, methods), sig, v.MaxKeyBits); err != nil {
		return &LocatorError{firstCGA, err}
	}
	return nil
}

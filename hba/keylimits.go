package hba

import (
	"crypto/rsa"
	"crypto/x509"
	"fmt"
)

// DefaultMaxRSABits is the largest peer RSA modulus verified when the
// caller sets no bound. RSA verification costs about the square of the
// modulus size times the exponent's bit length: a 4096-bit key with
// e = 65537 costs ~0.5 ms on a small router core, a 10400-bit key with
// e = 2^31−1 ~14 ms (docs/benchmarks.md). RFC 5533 §16 only sets the
// minimum; 4096 bits is what current CGA and TLS deployments use at most.
const DefaultMaxRSABits = 4096

// MaxRSAExponent is the largest public exponent verified: 2^16+1, which
// every common key generator uses (OpenSSL, Go, the RFC 3972 examples).
// The bound keeps the exponentiation at 17 modular multiplications; larger
// exponents buy no security (RFC 3972 and RFC 5533 do not require them)
// and let a peer multiply our cost by up to 31/17 per message.
const MaxRSAExponent = 65537

// PeerKey parses the RSA public key of pds and checks that verifying with
// it is bounded: MinRSABits ≤ modulus ≤ maxBits (DefaultMaxRSABits if
// maxBits ≤ 0) and 3 ≤ e ≤ MaxRSAExponent. Parsing costs no
// exponentiation, so a refused key costs next to nothing.
func PeerKey(pds []byte, maxBits int) (*rsa.PublicKey, error) {
	p, err := ParsePDS(pds)
	if err != nil {
		return nil, err
	}
	if maxBits <= 0 {
		maxBits = DefaultMaxRSABits
	}
	// The DER length bounds the modulus: refuse a huge key before parsing
	// its integers.
	if len(p.PublicKey()) > maxBits/8+64 {
		return nil, fmt.Errorf("%w: %d-octet key, at most %d bits", ErrKeyTooLarge, len(p.PublicKey()), maxBits)
	}
	k, err := x509.ParsePKIXPublicKey(p.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotRSAKey, err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrNotRSAKey, k)
	}
	bits := pub.N.BitLen()
	if bits < MinRSABits {
		return nil, fmt.Errorf("%w: %d bits, need %d (RFC 5533 §16)", ErrKeyTooSmall, bits, MinRSABits)
	}
	if bits > maxBits {
		return nil, fmt.Errorf("%w: %d bits, at most %d", ErrKeyTooLarge, bits, maxBits)
	}
	if pub.E < 3 || pub.E > MaxRSAExponent {
		return nil, fmt.Errorf("%w: exponent %d, want 3..%d", ErrKeyTooLarge, pub.E, MaxRSAExponent)
	}
	return pub, nil
}

// LocatorError names the locator (its index in the list) that failed
// verification, so the Error message's Pointer can point at its method
// octet (RFC 5533 §5.14 code 2) without verifying again.
type LocatorError struct {
	Index int
	Err   error
}

func (e *LocatorError) Error() string { return fmt.Sprintf("locator %d: %v", e.Index, e.Err) }
func (e *LocatorError) Unwrap() error { return e.Err }

// LocatorIndex is the index of the failing locator.
func (e *LocatorError) LocatorIndex() int { return e.Index }

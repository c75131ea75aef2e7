package hba

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"fmt"
	"io"
	"net/netip"
)

// MinRSABits is the smallest RSA key accepted for CGAs in Shim6
// (RFC 5533 §16; RFC 3972 alone allows 384).
const MinRSABits = 1024

// MaxGenerateSec is the largest Sec this package generates. Verification
// accepts 0..7 (RFC 3972 §5).
const MaxGenerateSec = 2

// ShimCGATypeTag is the 128-bit CGA Message Type tag for Shim6
// (RFC 5533 §5.15.5, §17): 0x4A30 5662 4858 574B 3655 416F 506A 6D48.
var ShimCGATypeTag = [16]byte{
	0x4A, 0x30, 0x56, 0x62, 0x48, 0x58, 0x57, 0x4B,
	0x36, 0x55, 0x41, 0x6F, 0x50, 0x6A, 0x6D, 0x48,
}

// InterfaceID forms the interface identifier from Hash1: Sec in the three
// leftmost bits, the "u" and "g" bits (bits 6 and 7) cleared
// (RFC 3972 §4 step 6).
func InterfaceID(hash1 [8]byte, sec uint8) [8]byte {
	iid := hash1
	iid[0] = sec<<5 | hash1[0]&0x1c
	return iid
}

// hash2OK reports whether the 16*sec leftmost bits of h are zero
// (RFC 3972 §4 step 3, §5 step 7).
func hash2OK(h [14]byte, sec uint8) bool {
	for _, b := range h[:2*int(sec)] {
		if b != 0 {
			return false
		}
	}
	return true
}

// VerifyCGA verifies that addr is the CGA defined by pds (RFC 3972 §5).
// Sec 0..7 are accepted; the hash is SHA-1 for all of them as RFC 3972
// specifies (RFC 4982 registers 0..2 as SHA-1 and leaves 3..7 unassigned,
// so the check for 3..7 is only stricter).
func VerifyCGA(addr netip.Addr, pds []byte) error {
	p, err := ParsePDS(pds)
	if err != nil {
		return err
	}
	if !addr.Is6() || addr.Is4In6() {
		return fmt.Errorf("%w: %s", ErrBadAddress, addr)
	}
	a := addr.As16()
	var arr [stackPDS]byte
	buf := scratch(&arr, p)
	// RFC 3972 §5 step 2: the prefix must match the address.
	if pfx := [8]byte(buf[prefixOff:collisionOff]); [8]byte(a[:8]) != pfx {
		return fmt.Errorf("%w: address %s, pds prefix %x", ErrPrefixMismatch, addr, pfx)
	}
	return verifyBuf(a, buf)
}

// verifyBuf runs RFC 3972 §5 steps 1, 3-7 on buf, a private copy of a
// valid PDS whose prefix already matches a. It zeroes buf's prefix and
// collision count.
func verifyBuf(a [16]byte, buf []byte) error {
	// Step 1: collision count 0, 1 or 2.
	if cc := buf[collisionOff]; cc > 2 {
		return fmt.Errorf("%w: %d is more than 2", ErrCollisionCount, cc)
	}
	// Steps 3-4: Hash1 vs the IID, ignoring Sec and the u/g bits.
	s := sha1.Sum(buf)
	h1 := [8]byte(s[:8])
	iid := [8]byte(a[8:])
	h1[0] &= 0x1c
	iid[0] &= 0x1c
	if h1 != iid {
		return ErrHashMismatch
	}
	// Steps 5-7: Sec from the IID; 16*Sec leftmost bits of Hash2 zero.
	sec := a[8] >> 5
	clear(buf[prefixOff:keyOff])
	if !hash2OK(hash2(buf), sec) {
		return fmt.Errorf("%w: sec %d", ErrSecMismatch, sec)
	}
	return nil
}

// searchModifier runs RFC 3972 §4 steps 2-3 (RFC 5535 §6 steps 3-4):
// starting from mod, increment it until the 16*sec leftmost bits of Hash2
// over mod ‖ 9 zero octets ‖ key ‖ ext are zero. The expected number of
// hashes is 2^(16*sec).
func searchModifier(mod [16]byte, sec uint8, key, ext []byte) [16]byte {
	buf := AppendPDS(make([]byte, 0, keyOff+len(key)+len(ext)), mod, [8]byte{}, 0, key, ext)
	for !hash2OK(hash2(buf), sec) {
		incr(buf[:16])
	}
	return [16]byte(buf[:16])
}

// incr increments the big-endian number b by one, wrapping.
func incr(b []byte) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return
		}
	}
}

// cgaAddr forms an address from the prefix and the PDS in buf (with
// buf's prefix and collision count already set) (RFC 3972 §4 steps 6-7).
func cgaAddr(prefix [8]byte, sec uint8, buf []byte) netip.Addr {
	var a [16]byte
	copy(a[:8], prefix[:])
	iid := InterfaceID(PDS(buf).Hash1(), sec)
	copy(a[8:], iid[:])
	return netip.AddrFrom16(a)
}

// MarshalPublicKey encodes pub as the DER SubjectPublicKeyInfo carried in
// the PDS Public Key field (RFC 3972 §3), rejecting keys below MinRSABits.
func MarshalPublicKey(pub *rsa.PublicKey) ([]byte, error) {
	if pub == nil || pub.N == nil {
		return nil, fmt.Errorf("%w: nil rsa key", ErrInvalid)
	}
	if bits := pub.N.BitLen(); bits < MinRSABits {
		return nil, fmt.Errorf("%w: %d bits, need %d (RFC 5533 §16)", ErrKeyTooSmall, bits, MinRSABits)
	}
	return x509.MarshalPKIXPublicKey(pub)
}

// GenerateCGA generates a CGA under prefix (a /64) for pub (RFC 3972 §4)
// with a random starting modifier read from rand. extensions (RFC 4581
// TLVs, may be nil) are included in both hashes. collides, if not nil,
// reports a duplicate address (DAD); generation then bumps the collision
// count, giving up after three collisions. It returns the address and its
// PDS.
func GenerateCGA(rand io.Reader, pub *rsa.PublicKey, prefix netip.Prefix, sec uint8, extensions []byte, collides func(netip.Addr) bool) (netip.Addr, []byte, error) {
	key, err := MarshalPublicKey(pub)
	if err != nil {
		return netip.Addr{}, nil, err
	}
	if err := checkPrefix(prefix); err != nil {
		return netip.Addr{}, nil, err
	}
	if sec > MaxGenerateSec {
		return netip.Addr{}, nil, fmt.Errorf("%w: sec %d, generation supports 0..%d", ErrUnsupportedSec, sec, MaxGenerateSec)
	}
	var mod [16]byte
	if _, err := io.ReadFull(rand, mod[:]); err != nil {
		return netip.Addr{}, nil, fmt.Errorf("hba: reading modifier: %w", err)
	}
	mod = searchModifier(mod, sec, key, extensions)
	pfx := prefix64(prefix.Addr())
	buf := AppendPDS(nil, mod, pfx, 0, key, extensions)
	for cc := uint8(0); cc <= 2; cc++ {
		buf[collisionOff] = cc
		a := cgaAddr(pfx, sec, buf)
		if collides == nil || !collides(a) {
			return a, buf, nil
		}
	}
	return netip.Addr{}, nil, fmt.Errorf("%w: three collisions", ErrCollisionCount)
}

// Sign computes the CGA signature over typeTag ‖ msg: RSASSA-PKCS1-v1_5
// with SHA-1 (RFC 3972 §6). For Shim6, typeTag is ShimCGATypeTag and msg
// is the message built per RFC 5533 §5.15.5.
func Sign(priv *rsa.PrivateKey, typeTag [16]byte, msg []byte) ([]byte, error) {
	if priv == nil {
		return nil, fmt.Errorf("%w: nil rsa key", ErrInvalid)
	}
	if bits := priv.N.BitLen(); bits < MinRSABits {
		return nil, fmt.Errorf("%w: %d bits, need %d (RFC 5533 §16)", ErrKeyTooSmall, bits, MinRSABits)
	}
	d := signDigest(typeTag, msg)
	return rsa.SignPKCS1v15(nil, priv, crypto.SHA1, d[:])
}

// VerifySignature verifies sig over typeTag ‖ msg with the RSA public key
// in pds (RFC 3972 §6), refusing keys above DefaultMaxRSABits or with an
// exponent above MaxRSAExponent (PeerKey). It does not verify the address;
// call VerifyCGA for that.
func VerifySignature(pds []byte, typeTag [16]byte, msg, sig []byte) error {
	return verifySignature(pds, typeTag, msg, sig, DefaultMaxRSABits)
}

func verifySignature(pds []byte, typeTag [16]byte, msg, sig []byte, maxBits int) error {
	pub, err := PeerKey(pds, maxBits)
	if err != nil {
		return err
	}
	d := signDigest(typeTag, msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA1, d[:], sig); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

func signDigest(typeTag [16]byte, msg []byte) [sha1.Size]byte {
	h := sha1.New()
	h.Write(typeTag[:])
	h.Write(msg)
	return [sha1.Size]byte(h.Sum(nil))
}

package hba

import "errors"

// Sentinel errors, for errors.Is. Returned errors wrap them with detail.
var (
	// ErrTruncated: the input ends before a length it announces.
	ErrTruncated = errors.New("hba: truncated")
	// ErrBadDER: the Public Key field is not a DER SEQUENCE with a valid
	// (minimal, definite) length (RFC 3972 §3).
	ErrBadDER = errors.New("hba: bad DER public key")
	// ErrBadExtension: the extension fields are not a sequence of
	// RFC 4581 §2 TLVs exactly filling the rest of the PDS.
	ErrBadExtension = errors.New("hba: bad extension field")
	// ErrBadMultiPrefix: a Multi-Prefix extension whose length is not
	// 4 + 8n (RFC 5535 §5).
	ErrBadMultiPrefix = errors.New("hba: bad multi-prefix extension")
	// ErrNoMultiPrefix: HBA verification of a PDS without a Multi-Prefix
	// extension (RFC 5535 §7.2).
	ErrNoMultiPrefix = errors.New("hba: no multi-prefix extension")
	// ErrPrefixNotInSet: the locator's /64 is not in the Multi-Prefix list
	// (RFC 5535 §7.2).
	ErrPrefixNotInSet = errors.New("hba: prefix not in set")
	// ErrPrefixMismatch: the address's /64 differs from the PDS Subnet
	// Prefix (RFC 3972 §5 step 2).
	ErrPrefixMismatch = errors.New("hba: subnet prefix mismatch")
	// ErrCollisionCount: collision count above 2 (RFC 3972 §5 step 1), or
	// generation gave up after three collisions (RFC 3972 §4 step 7).
	ErrCollisionCount = errors.New("hba: collision count")
	// ErrHashMismatch: Hash1 differs from the interface identifier
	// (RFC 3972 §5 step 4).
	ErrHashMismatch = errors.New("hba: hash1 mismatch")
	// ErrSecMismatch: the 16*Sec leftmost bits of Hash2 are not zero
	// (RFC 3972 §5 step 7).
	ErrSecMismatch = errors.New("hba: hash2 does not meet sec")
	// ErrUnsupportedSec: generation with Sec > 2 (RFC 4982 registers only
	// 0..2; higher values would need 2^48+ hashes), or a Sec outside 0..7.
	ErrUnsupportedSec = errors.New("hba: unsupported sec")
	// ErrBadAddress: the address is not an IPv6 address.
	ErrBadAddress = errors.New("hba: not an ipv6 address")
	// ErrNotRSAKey: the PDS public key is not an RSA SubjectPublicKeyInfo
	// (an HBA-only Extended Modifier, for example).
	ErrNotRSAKey = errors.New("hba: public key is not rsa")
	// ErrKeyTooSmall: an RSA key below 1024 bits (RFC 5533 §16).
	ErrKeyTooSmall = errors.New("hba: rsa key too small")
	// ErrKeyTooLarge: an RSA modulus above the verifier's bound or a
	// public exponent above MaxRSAExponent; verifying would cost more
	// than a peer may make us spend on one message.
	ErrKeyTooLarge = errors.New("hba: rsa key too large")
	// ErrBadSignature: the CGA signature does not verify (RFC 3972 §6).
	ErrBadSignature = errors.New("hba: bad signature")
	// ErrInvalid: bad parameters for set or book generation; the wrapping
	// message is meant for operators.
	ErrInvalid = errors.New("hba: invalid parameter")
)

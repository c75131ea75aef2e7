// Package hba implements Hash-Based Addresses (RFC 5535) and
// Cryptographically Generated Addresses (RFC 3972, extensions RFC 4581):
// the CGA Parameter Data Structure (PDS) and its Multi-Prefix extension,
// generation of CGAs and HBA sets, verification, CGA signatures, and the
// site address book from which shim6gw assigns host addresses.
//
// The package is pure: no network, no goroutines, no clock. ParsePDS and
// everything that takes PDS bytes accept untrusted input (the Shim6 CGA
// PDS option, RFC 5533 §5.15.4): every length is checked and failures are
// errors wrapping the sentinels in errors.go, never panics.
//
// # Extended Modifier encoding
//
// RFC 5535 §6 step 2 encodes the 384-bit Extended Modifier of an HBA-only
// set as a DER SubjectPublicKeyInfo with algorithm rsaEncryption, "formatted
// using the RSAPublicKey type" of RFC 3279 §2.3.1, without saying what the
// public exponent is. LinShim6, the public implementation, instead puts the
// 48 raw octets in the BIT STRING (68 octets in all):
//
//	30 42 30 0d 06 09 2a 86 48 86 f7 0d 01 01 01 05 00 03 31 00 ‖ EM
//
// Verifiers only hash these octets, so either form verifies everywhere; the
// choice only fixes which addresses a secret produces. This package
// generates the LinShim6 layout (EncodeExtendedModifier): it is fixed-length,
// needs no invented exponent, and lets the generator be checked byte for
// byte against LinShim6's published test vector. The encoding is frozen:
// changing it would renumber every site.
//
// # Sec
//
// Verification accepts Sec 0..7 and checks 16*Sec zero bits of the SHA-1
// Hash2 for all of them, as RFC 3972 §5 says (RFC 4982 registers only
// 0..2, all SHA-1; for 3..7 this is merely stricter). Generation supports
// Sec 0..2 (ErrUnsupportedSec above): Sec 2 costs 2^32 hashes on average.
//
// The address book defaults to Sec 0 (DefaultBookSec). Sec 1 costs about
// 2^16 SHA-1 computations per entry (about 10 ms on one idle core, several
// times more on a loaded one; see BenchmarkBookEntry), i.e. close to a
// minute for 4096 hosts at every start, while Sec 0 builds 4096 entries in
// well under 100 ms. RFC 5535
// §11 puts the cost of forging an address at O(2^59) hashes for Sec 0,
// which is adequate for a site's stable prefixes, and RFC 3972 §7.2 notes
// that Sec 0 is allowed. Sites that want the extra 2^16 factor pass
// WithSec(1) and pay the start-up cost.
//
// # Address book
//
// NewBook derives, from one site secret, count HBA-only sets over the site
// /64s: entry i's starting modifier and Extended Modifier are HKDF-SHA256
// (RFC 5869) outputs of the secret with the index in the info string. Two
// gateways with the same secret, prefixes and Sec derive identical books.
// Adding, removing or reordering a prefix changes every address
// (RFC 5535 §8.1).
package hba

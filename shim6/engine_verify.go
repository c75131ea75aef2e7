package shim6

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"net/netip"

	"github.com/shim6gw/shim6gw/hba"
)

// Peer locator verification (RFC 5533 §7.2) is the one expensive thing a
// remote host can make the engine do: an RSA signature check for CGA
// locators. The control loop is a single goroutine, so every
// verification delays every timer of the site. The cost is bounded three
// ways:
//
//   - per message: at most one Verifier call (the Error Pointer comes
//     from the Verifier's LocatorError, not from re-verifying each
//     locator), and RSA keys above MaxPeerKeyBits or with an exponent
//     above hba.MaxRSAExponent are refused before any exponentiation, so
//     one event costs at most one verification with a 4096-bit key
//     (~0.5 ms, docs/benchmarks.md);
//   - per second: signature checks take a token from the sender's /64
//     bucket and from a site-wide one; without a token the message is
//     dropped silently (the peer retransmits I2 and Update Request);
//   - honest retransmissions cost nothing: successful verifications are
//     remembered by digest of (ULID, PDS, signature, generation, locators,
//     methods).

// DefaultMaxPeerKeyBits is MaxPeerKeyBits when the configuration leaves it 0.
const DefaultMaxPeerKeyBits = hba.DefaultMaxRSABits

// Defaults of the signature-check budget (RSA verifications per second).
const (
	DefaultSignatureChecksPerSecond          = 100
	DefaultSignatureChecksPerSourcePerSecond = 10
)

// verifyCacheSlots is the size of the direct-mapped cache of verified
// locator lists (32 octets each).
const verifyCacheSlots = 4096

// verifyCache remembers digests of verified lists. Slots are chosen by a
// keyed digest, so a sender cannot aim at an honest peer's slot; losing a
// slot only costs one more verification.
type verifyCache struct {
	key   [16]byte
	h     hash.Hash
	sum   [sha256.Size]byte
	slots [][sha256.Size]byte
}

func (vc *verifyCache) init(key [16]byte) {
	vc.key = key
	vc.h = sha256.New()
	vc.slots = make([][sha256.Size]byte, verifyCacheSlots)
}

// digest computes the keyed digest of one verification's inputs into vc.sum.
func (vc *verifyCache) digest(ulid netip.Addr, ps *peerSet, sig []byte) {
	h := vc.h
	h.Reset()
	var b [16]byte
	h.Write(vc.key[:])
	b = ulid.As16()
	h.Write(b[:])
	binary.BigEndian.PutUint32(b[:4], uint32(len(ps.pds)))
	binary.BigEndian.PutUint32(b[4:8], uint32(len(sig)))
	binary.BigEndian.PutUint32(b[8:12], ps.generation)
	binary.BigEndian.PutUint32(b[12:16], uint32(len(ps.locs)))
	h.Write(b[:])
	h.Write(ps.pds)
	h.Write(sig)
	h.Write(ps.methods)
	for _, l := range ps.locs {
		b = l.As16()
		h.Write(b[:])
	}
	h.Sum(vc.sum[:0])
}

func (vc *verifyCache) slot() *[sha256.Size]byte {
	return &vc.slots[binary.LittleEndian.Uint64(vc.sum[:8])&(verifyCacheSlots-1)]
}

// hit reports whether the last digest is cached.
func (vc *verifyCache) hit() bool { return *vc.slot() == vc.sum }

// add caches the last digest.
func (vc *verifyCache) add() { *vc.slot() = vc.sum }

// locatorIndexer is implemented by Verifier errors that name the failing
// locator (hba.LocatorError).
type locatorIndexer interface{ LocatorIndex() int }

// verifyPeerSet checks ps (its pds already set) for ulidPeer, as sent
// from src with CGA signature sig. It returns -1 if the set may be used;
// otherwise the index of the locator to blame, the drop reason, and
// whether an Error (code 2) is owed.
func (e *Engine) verifyPeerSet(src, ulidPeer netip.Addr, ps *peerSet, sig []byte) (bad int, why DropReason, answer bool) {
	if e.ver == nil || ps.pds == nil {
		// Nothing to verify with: only a list that is just the ULID is usable.
		if len(ps.locs) != 1 || ps.locs[0] != ulidPeer {
			return 0, DropVerifyFailed, true
		}
		return -1, 0, false
	}
	vc := &e.vcache
	vc.digest(ulidPeer, ps, sig)
	if vc.hit() {
		return -1, 0, false
	}
	if cga := bytes.IndexByte(ps.methods, VerifyCGA); cga >= 0 && len(sig) > 0 {
		// Refuse keys whose check would cost too much before any
		// exponentiation, then take a token for the check. A PDS without
		// a usable RSA key fails verification without RSA work and takes
		// no token.
		_, err := hba.PeerKey(ps.pds, e.cfg.MaxPeerKeyBits)
		if errors.Is(err, hba.ErrKeyTooLarge) {
			return cga, DropPeerKeyTooLarge, true
		}
		if err == nil && !e.verLim.allow(src, nt(e.now)) {
			return cga, DropVerifyBudget, false
		}
	}
	if err := e.ver.VerifyLocators(ulidPeer, ps.pds, sig, ps.generation, ps.locs, ps.methods); err != nil {
		bad = 0
		var li locatorIndexer
		if errors.As(err, &li) && li.LocatorIndex() >= 0 && li.LocatorIndex() < len(ps.locs) {
			bad = li.LocatorIndex()
		}
		return bad, DropVerifyFailed, true
	}
	vc.add()
	return -1, 0, false
}

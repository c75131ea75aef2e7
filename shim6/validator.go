package shim6

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/netip"
	"time"
)

// validatorLen is the size of the Responder Validators we make (a
// truncated HMAC-SHA-256; the option is opaque to the peer, RFC 5533
// §5.15.1).
const validatorLen = 16

// validators makes and checks Responder Validators without keeping any
// per-peer state (RFC 5533 §7.10.1, §7.17.1). The Responder Nonce encodes
// a counter that advances every NonceInterval; the secret of a nonce is
// derived from the site secret and the counter's epoch, so a restarted
// gateway or its HA twin checks validators the other one made, and the
// previous secret stays valid for as long as its nonces are fresh.
type validators struct {
	site     []byte
	interval int64 // nanoseconds per nonce counter step
	perEpoch uint32
	maxAge   uint32 // counter steps a nonce stays acceptable
	mask     uint32 // hides the counter in the nonce

	cache [2]struct {
		epoch uint32
		ok    bool
		mac   hash.Hash
	}
	sum [sha256.Size]byte
	in  [128]byte
}

func newValidators(site []byte, t Timers) *validators {
	v := &validators{site: append([]byte(nil), site...)}
	v.interval = int64(t.NonceInterval)
	v.perEpoch = uint32(t.SecretRotation / t.NonceInterval)
	if v.perEpoch == 0 {
		v.perEpoch = 1
	}
	v.maxAge = uint32((t.ValidatorMinLifetime+t.NonceInterval-1)/t.NonceInterval) + 1
	m := hmac.New(sha256.New, v.site)
	m.Write([]byte("shim6gw nonce mask"))
	v.mask = binary.BigEndian.Uint32(m.Sum(nil))
	return v
}

func (v *validators) counter(now time.Time) uint32 {
	return uint32(now.UnixNano() / v.interval)
}

// nonce is the Responder Nonce to put in an R1 or R1bis sent now.
func (v *validators) nonce(now time.Time) uint32 { return v.counter(now) ^ v.mask }

// fresh reports whether a Responder Nonce was issued at most
// ValidatorMinLifetime (plus one step) ago (RFC 5533 §7.13: "recent").
func (v *validators) fresh(now time.Time, rnonce uint32) bool {
	age := v.counter(now) - (rnonce ^ v.mask)
	return age <= v.maxAge
}

// macFor returns the keyed hash of the epoch the nonce belongs to.
func (v *validators) macFor(rnonce uint32) hash.Hash {
	epoch := (rnonce ^ v.mask) / v.perEpoch
	slot := &v.cache[epoch&1]
	if !slot.ok || slot.epoch != epoch {
		var k [4]byte
		binary.BigEndian.PutUint32(k[:], epoch)
		d := hmac.New(sha256.New, v.site)
		d.Write([]byte("shim6gw validator secret"))
		d.Write(k[:])
		slot.mac = hmac.New(sha256.New, d.Sum(nil))
		slot.epoch, slot.ok = epoch, true
	}
	slot.mac.Reset()
	return slot.mac
}

// r1 computes the validator of an R1: it binds the Responder Nonce, the
// initiator's context tag, the ULIDs, the locators the exchange runs on and
// the FII (RFC 5533 §7.10.1). local and peer are from the responder's view.
func (v *validators) r1(dst []byte, rnonce uint32, itag ContextTag, ulidLocal, ulidPeer, locLocal, locPeer netip.Addr, fii uint32) []byte {
	b := v.in[:0]
	b = append(b, 'R', '1')
	b = binary.BigEndian.AppendUint32(b, rnonce)
	b = binary.BigEndian.AppendUint64(b, uint64(itag))
	b = binary.BigEndian.AppendUint32(b, fii)
	b = appendAddr(b, ulidLocal)
	b = appendAddr(b, ulidPeer)
	b = appendAddr(b, locLocal)
	b = appendAddr(b, locPeer)
	return v.finish(dst, rnonce, b)
}

// r1bis computes the validator of an R1bis: it binds the Responder Nonce,
// the Packet Context Tag and the locators of the packet that had no
// context (RFC 5533 §7.17.1).
func (v *validators) r1bis(dst []byte, rnonce uint32, ptag ContextTag, locLocal, locPeer netip.Addr) []byte {
	b := v.in[:0]
	b = append(b, 'R', 'b')
	b = binary.BigEndian.AppendUint32(b, rnonce)
	b = binary.BigEndian.AppendUint64(b, uint64(ptag))
	b = appendAddr(b, locLocal)
	b = appendAddr(b, locPeer)
	return v.finish(dst, rnonce, b)
}

func (v *validators) finish(dst []byte, rnonce uint32, in []byte) []byte {
	m := v.macFor(rnonce)
	m.Write(in)
	s := m.Sum(v.sum[:0])
	return append(dst, s[:validatorLen]...)
}

func appendAddr(b []byte, a netip.Addr) []byte {
	x := a.As16()
	return append(b, x[:]...)
}

// check compares a received validator with the expected one in constant
// time.
func (v *validators) check(got, want []byte) bool {
	return len(got) == validatorLen && hmac.Equal(got, want)
}

// Package checksum is the Internet checksum every package of shim6gw
// computes: the one's complement sum (RFC 1071), the IPv6 upper-layer
// pseudo-header (RFC 8200 §8.1) and the incremental update (RFC 1624).
package checksum

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Sum adds b to the one's complement accumulator acc and returns the new
// accumulator; fold it with Fold. It adds 8 bytes at a time with
// end-around carry. b must start at an even offset of the summed data; an
// odd tail is padded with a zero byte (RFC 1071).
func Sum(b []byte, acc uint64) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	if len(b) > 0 {
		var w [8]byte
		copy(w[:], b)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(w[:]), c)
	}
	acc, c = bits.Add64(acc, 0, c)
	return acc + c
}

// Fold folds an accumulator into 16 bits (not complemented).
func Fold(acc uint64) uint16 {
	acc = acc&0xffffffff + acc>>32 // ≤ 2^33
	acc = acc&0xffffffff + acc>>32
	acc = acc&0xffff + acc>>16
	acc = acc&0xffff + acc>>16
	acc = acc&0xffff + acc>>16
	return uint16(acc)
}

// Checksum returns the Internet checksum of b on top of acc: the one's
// complement of the one's complement sum (RFC 1071).
func Checksum(b []byte, acc uint64) uint16 {
	return ^Fold(Sum(b, acc))
}

// PseudoHeader returns the accumulator of the IPv6 upper-layer
// pseudo-header (RFC 8200 §8.1): source, destination, upper-layer length
// and next header.
func PseudoHeader(src, dst netip.Addr, length uint32, next uint8) uint64 {
	s, d := src.As16(), dst.As16()
	acc := Sum(s[:], 0)
	acc = Sum(d[:], acc)
	return acc + uint64(length) + uint64(next)
}

// Update16 returns checksum old adjusted for a 16-bit field of the covered
// data changing from m to mNew: HC' = ~(~HC + ~m + m') (RFC 1624 eqn. 3),
// which never yields 0x0000 from a nonzero sum.
func Update16(old, m, mNew uint16) uint16 {
	return ^Fold(uint64(^old) + uint64(^m) + uint64(mNew))
}

// UpdateAddr returns checksum old adjusted for an IPv6 address in the
// covered data (or the pseudo-header) changing from a to b (RFC 1624).
func UpdateAddr(old uint16, a, b netip.Addr) uint16 {
	x, y := a.As16(), b.As16()
	s := uint64(^old)
	for i := 0; i < 16; i += 2 {
		s += uint64(^binary.BigEndian.Uint16(x[i:])) + uint64(binary.BigEndian.Uint16(y[i:]))
	}
	return ^Fold(s)
}

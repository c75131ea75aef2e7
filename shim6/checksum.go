package shim6

import (
	"encoding/binary"
	"net/netip"
)

// This file holds every Internet checksum the project computes: the plain
// one's complement sum (RFC 1071), the IPv6 pseudo-header sum used by
// TCP/UDP/ICMPv6 (RFC 8200 §8.1), the incremental update (RFC 1624) and the
// Shim6 control checksum (RFC 5533 §5.3).

// Sum adds b to the 32-bit one's complement accumulator initial and returns
// the new accumulator. Odd lengths are padded with a zero octet (RFC 1071).
// Fold the result with Fold.
func Sum(b []byte, initial uint32) uint32 {
	s := uint64(initial)
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		s += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>32 != 0 {
		s = s&0xffffffff + s>>32
	}
	return uint32(s)
}

// Fold folds a 32-bit accumulator into 16 bits (not complemented).
func Fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// Checksum returns the Internet checksum of b: the one's complement of the
// one's complement sum (RFC 1071).
func Checksum(b []byte, initial uint32) uint16 {
	return ^Fold(Sum(b, initial))
}

// PseudoHeaderSum returns the accumulator of the IPv6 upper-layer
// pseudo-header (RFC 8200 §8.1): source, destination, upper-layer length and
// next header.
func PseudoHeaderSum(src, dst netip.Addr, length uint32, next uint8) uint32 {
	s := src.As16()
	d := dst.As16()
	acc := Sum(s[:], 0)
	acc = Sum(d[:], acc)
	acc += length>>16 + length&0xffff + uint32(next)
	return acc
}

// ControlChecksum computes the Shim6 control message checksum over msg,
// which must be exactly the message (Hdr Ext Len octets) with its checksum
// field at offset 4. There is no pseudo-header, so locators can change
// without touching it (RFC 5533 §5.3). The checksum field is treated as zero.
func ControlChecksum(msg []byte) uint16 {
	if len(msg) < 6 {
		return 0
	}
	acc := Sum(msg[:4], 0)
	acc = Sum(msg[6:], acc)
	return ^Fold(acc)
}

// UpdateChecksum16 returns checksum old adjusted for a 16-bit field of the
// covered data changing from m to mNew: HC' = ~(~HC + ~m + m') (RFC 1624
// eqn. 3), which never yields 0x0000 from a nonzero sum.
func UpdateChecksum16(old, m, mNew uint16) uint16 {
	s := uint32(^old) + uint32(^m) + uint32(mNew)
	return ^Fold(s)
}

// UpdateChecksumAddr returns checksum old adjusted for an IPv6 address in the
// covered data (or the pseudo-header) changing from a to b (RFC 1624).
func UpdateChecksumAddr(old uint16, a, b netip.Addr) uint16 {
	x := a.As16()
	y := b.As16()
	s := uint32(^old)
	for i := 0; i < 16; i += 2 {
		s += uint32(^binary.BigEndian.Uint16(x[i:])) + uint32(binary.BigEndian.Uint16(y[i:]))
	}
	return ^Fold(s)
}

// Package shim6 implements the Shim6 protocol (RFC 5533) and its failure
// detection, REAP (RFC 5534): the wire formats of the payload extension
// header, control messages and options, the checksums, and the context
// engine. It is pure: no sockets, goroutines or wall clock.
//
// Wire views follow the gVisor header style: a named byte slice
// (PayloadHeader, Message, Option, Probe, ...) validated once by a Parse
// function, with accessors at fixed offsets that allocate nothing.
// Builders append into a caller's buffer (AppendI1, AppendLocatorList,
// ..., FinishMessage).
//
// Payload Extension Header (RFC 5533 §5.2), 8 octets, P = 1:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |  Hdr Ext Len  |1|                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                             +
//	|                Receiver Context Tag (47 bits)                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Control message (RFC 5533 §5.3), P = 0, S = 0, checksum over the Shim6
// header only (no pseudo-header):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |  Hdr Ext Len  |0|    Type     |Type-specific|0|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	~              Type-specific fields, then options               ~
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Where a message carries a context tag at octet 6, bit 7 of octet 6 is a
// reserved R bit and the 47-bit tag fills the rest of octets 6–11:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |R|                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+       Context Tag           +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Options (RFC 5533 §5.15) are TLVs: 15-bit Type, C (critical) bit,
// 16-bit Length of the contents, contents, then 7 − ((Length+3) mod 8)
// octets of padding. Per-message layouts are documented on the views
// (I1, R1, I2, R2, R1bis, I2bis, UpdateRequest, UpdateAck, Keepalive,
// Probe, ErrorMessage), with the RFC 5533 §5 and RFC 5534 §5 figures.
package shim6

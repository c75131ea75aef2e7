package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/shim6gw/shim6gw/internal/ip6"

	"github.com/shim6gw/shim6gw/internal/checksum"
)

// GSOType is the gso_type of a virtio-net header
// (include/uapi/linux/virtio_net.h), without the ECN bit.
type GSOType uint8

// GSO types the offload backend can see. It offers the kernel TSO for IPv6
// only, so TCP super-packets are always GSOTCPv6; GSOUDPL4 is handled by
// SplitGSO for IPv6 too.
const (
	GSONone  GSOType = 0
	GSOTCPv4 GSOType = 1
	GSOTCPv6 GSOType = 4
	GSOUDPL4 GSOType = 5
)

const (
	// virtioNeedsCsum is VIRTIO_NET_HDR_F_NEEDS_CSUM: the transport
	// checksum holds only the pseudo-header sum (CHECKSUM_PARTIAL).
	virtioNeedsCsum = 1
	// virtioGSOECN is VIRTIO_NET_HDR_GSO_ECN, or-ed into gso_type.
	virtioGSOECN = 0x80

	tcpFlagFIN = 0x01
	tcpFlagPSH = 0x08
	tcpFlagCWR = 0x80
)

// GSOInfo is a packet's virtio-net header as the kernel wrote it. The zero
// value is a plain packet with a complete checksum. A VirtioDevice reads
// it with every packet; the pipeline hands it to the Processor in
// Packet.GSO for the packets it keeps whole (see GSOFilter) and writes it
// back in front of them unchanged.
type GSOInfo struct {
	// Flags are the header's flags (bit 0: checksum needs completing).
	Flags uint8
	// Type is the gso_type byte as read, ECN bit included; use Kind.
	Type uint8
	// HdrLen is the length of the headers up to the payload (the kernel's
	// value may be a whole segment on the forwarding path, so SplitGSO
	// recomputes it). Size is the payload bytes per segment.
	HdrLen, Size uint16
	// CsumStart is where the transport header starts, CsumOffset where
	// its checksum field is relative to CsumStart.
	CsumStart, CsumOffset uint16
}

// Kind returns the segmentation type without the ECN bit.
func (g GSOInfo) Kind() GSOType { return GSOType(g.Type &^ virtioGSOECN) }

// IsSuper reports whether the packet is a GSO super-packet that the kernel
// segments on its way out.
func (g GSOInfo) IsSuper() bool { return g.Kind() != GSONone }

// NeedsCsum reports whether the transport checksum is partial: the kernel
// (or CompleteChecksum) must finish it.
func (g GSOInfo) NeedsCsum() bool { return g.Flags&virtioNeedsCsum != 0 }

// IsZero reports whether g is a plain packet's header (all zero).
func (g GSOInfo) IsZero() bool { return g == GSOInfo{} }

// The kernel writes the header in the device's byte order, which is the
// host's unless TUNSETVNETBE/LE changed it (the backend never does).

// decodeVirtio reads a VirtioHeaderLen-byte header.
func decodeVirtio(h []byte) GSOInfo {
	_ = h[VirtioHeaderLen-1]
	return GSOInfo{
		Flags:      h[0],
		Type:       h[1],
		HdrLen:     binary.NativeEndian.Uint16(h[2:]),
		Size:       binary.NativeEndian.Uint16(h[4:]),
		CsumStart:  binary.NativeEndian.Uint16(h[6:]),
		CsumOffset: binary.NativeEndian.Uint16(h[8:]),
	}
}

// encodeVirtio writes g as a VirtioHeaderLen-byte header into h.
func encodeVirtio(h []byte, g GSOInfo) {
	_ = h[VirtioHeaderLen-1]
	h[0], h[1] = g.Flags, g.Type
	binary.NativeEndian.PutUint16(h[2:], g.HdrLen)
	binary.NativeEndian.PutUint16(h[4:], g.Size)
	binary.NativeEndian.PutUint16(h[6:], g.CsumStart)
	binary.NativeEndian.PutUint16(h[8:], g.CsumOffset)
}

// Errors of SplitGSO and CompleteChecksum.
var (
	// ErrBadGSO: the virtio-net header does not describe the packet (an
	// unsupported type, offsets outside it, not IPv6, no payload).
	ErrBadGSO = errors.New("tunnel: bad gso packet")
	// ErrTooManySegments: the super-packet has more segments than the
	// buffers given to SplitGSO.
	ErrTooManySegments = errors.New("tunnel: too many gso segments")
)

const (
	protoTCP = 6
	protoUDP = 17
)

// SplitGSO segments the GSO super-packet pkt described by g, an IPv6 TCP
// (GSOTCPv6) or UDP (GSOUDPL4) packet, the way the kernel's
// tcp_gso_segment/udp_gso_segment would: every segment gets pkt's headers
// (extension headers included), its IPv6 payload length, for TCP its
// sequence number (FIN and PSH only on the last segment, CWR only on the
// first), for UDP its length, and a complete transport checksum (RFC 8200
// §8.1). Segment j is written to out[j][offset:] and its length to
// sizes[j]; SplitGSO returns the number of segments. pkt is not modified.
// It does not allocate.
func SplitGSO(pkt []byte, g GSOInfo, out [][]byte, sizes []int, offset int) (int, error) {
	hdrLen, proto, err := gsoHeaders(pkt, g)
	if err != nil {
		return 0, err
	}
	cs := int(g.CsumStart)
	size := int(g.Size)
	payload := len(pkt) - hdrLen
	n := (payload + size - 1) / size
	if n > len(out) || n > len(sizes) {
		return 0, fmt.Errorf("%w: %d segments, %d buffers", ErrTooManySegments, n, min(len(out), len(sizes)))
	}
	for j := range n {
		if offset+hdrLen+min(size, payload-j*size) > len(out[j]) {
			return 0, fmt.Errorf("%w: segment of %d bytes in a buffer of %d at %d", ErrTooBig, hdrLen+size, len(out[j]), offset)
		}
	}
	// The pseudo-header's addresses and protocol are the same for every
	// segment; only the upper-layer length differs.
	pseudo := uint64(checksum.Fold(checksum.Sum(pkt[8:40], uint64(proto))))
	var seq uint32
	if proto == protoTCP {
		seq = binary.BigEndian.Uint32(pkt[cs+4:])
	}
	for j := range n {
		data := pkt[hdrLen+j*size : hdrLen+min((j+1)*size, payload)]
		total := hdrLen + len(data)
		seg := out[j][offset : offset+total]
		copy(seg, pkt[:hdrLen])
		copy(seg[hdrLen:], data)
		binary.BigEndian.PutUint16(seg[4:], uint16(total-ip6.HeaderLen))
		l4 := seg[cs:]
		if proto == protoTCP {
			binary.BigEndian.PutUint32(l4[4:], seq+uint32(j*size))
			if j < n-1 {
				l4[13] &^= tcpFlagFIN | tcpFlagPSH
			}
			if j > 0 {
				l4[13] &^= tcpFlagCWR
			}
		} else {
			binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		}
		ck := l4[g.CsumOffset:]
		ck[0], ck[1] = 0, 0
		c := ^checksum.Fold(checksum.Sum(l4, pseudo+uint64(len(l4))))
		if c == 0 && proto == protoUDP {
			c = 0xffff // RFC 8200 §8.1: a zero UDP checksum is sent as ones
		}
		binary.BigEndian.PutUint16(ck, c)
		sizes[j] = total
	}
	return n, nil
}

// gsoHeaders checks g against pkt and returns the length of the headers
// in front of the payload and the transport protocol.
func gsoHeaders(pkt []byte, g GSOInfo) (hdrLen int, proto uint8, err error) {
	cs := int(g.CsumStart)
	if len(pkt) < ip6.HeaderLen || pkt[0]>>4 != 6 || cs < ip6.HeaderLen || g.Size == 0 {
		return 0, 0, fmt.Errorf("%w: type %d, csum start %d, size %d in %d bytes", ErrBadGSO, g.Type, cs, g.Size, len(pkt))
	}
	switch g.Kind() {
	case GSOTCPv6:
		if g.CsumOffset != 16 || len(pkt) < cs+20 {
			return 0, 0, fmt.Errorf("%w: tcp csum offset %d, start %d in %d bytes", ErrBadGSO, g.CsumOffset, cs, len(pkt))
		}
		thl := int(pkt[cs+12]>>4) * 4
		if thl < 20 {
			return 0, 0, fmt.Errorf("%w: tcp header length %d", ErrBadGSO, thl)
		}
		hdrLen, proto = cs+thl, protoTCP
	case GSOUDPL4:
		if g.CsumOffset != 6 {
			return 0, 0, fmt.Errorf("%w: udp csum offset %d", ErrBadGSO, g.CsumOffset)
		}
		hdrLen, proto = cs+8, protoUDP
	default:
		return 0, 0, fmt.Errorf("%w: gso type %d", ErrBadGSO, g.Type)
	}
	if hdrLen >= len(pkt) {
		return 0, 0, fmt.Errorf("%w: headers %d, packet %d", ErrBadGSO, hdrLen, len(pkt))
	}
	return hdrLen, proto, nil
}

// CompleteChecksum finishes the partial transport checksum of a packet
// whose header has NeedsCsum set (and no GSO): the field at
// CsumStart+CsumOffset holds the pseudo-header sum, and the sum of
// pkt[CsumStart:] is folded in, as the kernel's skb_checksum_help does.
// A packet without NeedsCsum is left alone.
func CompleteChecksum(pkt []byte, g GSOInfo) error {
	if !g.NeedsCsum() {
		return nil
	}
	cs, at := int(g.CsumStart), int(g.CsumStart)+int(g.CsumOffset)
	if cs >= len(pkt) || at+2 > len(pkt) {
		return fmt.Errorf("%w: csum at %d+%d in %d bytes", ErrBadGSO, g.CsumStart, g.CsumOffset, len(pkt))
	}
	// The partial value is the folded, uncomplemented pseudo-header sum.
	initial := uint64(binary.BigEndian.Uint16(pkt[at:]))
	pkt[at], pkt[at+1] = 0, 0
	binary.BigEndian.PutUint16(pkt[at:], ^checksum.Fold(checksum.Sum(pkt[cs:], initial)))
	return nil
}

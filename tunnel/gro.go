package tunnel

import (
	"bytes"
	"encoding/binary"

	"github.com/shim6gw/shim6gw/internal/ip6"

	"github.com/shim6gw/shim6gw/internal/checksum"
)

// MaxGROFlows is how many TCP flows a Coalescer keeps open at once while it
// walks a batch; a packet of a further flow closes one of them.
const MaxGROFlows = 16

// groScratch is how many packets per batch a Coalescer may move into
// spare buffers of MaxPacket bytes when their own buffer cannot grow (the
// one-MTU buffers segments split in userspace live in): 32 × 64 KiB,
// allocated on first need.
const groScratch = 32

const (
	tcpFlagACK     = 0x10
	ipv6NextHdrOff = 6
)

// groFlow is one open coalescing item: the packet at index head, into
// which later segments of the same flow were appended.
type groFlow struct {
	head    int    // index into the batch
	thl     int    // TCP header length
	size    int    // payload bytes of the first segment (gso_size)
	merged  int    // segments appended to head
	nextSeq uint32 // sequence number the next segment must carry
	psh     bool   // the last appended segment had PSH: nothing may follow
	short   bool   // the last appended segment was shorter than size
	checked bool   // head's checksum was verified
	valid   bool   // and was valid
}

// Coalescer merges the TCP/IPv6 segments of one flow that a batch holds
// into GSO super-packets, the userspace GRO that a VirtioDevice applies on
// write (the rules of wireguard-go's tun/offload_linux.go and the kernel's
// tcp_gro_receive): same addresses, ports and acknowledgment number,
// contiguous sequence numbers, only ACK (PSH on the last segment allowed),
// equal version/traffic class/flow label and hop limit, equal TCP options,
// equal segment sizes but for a shorter last one, valid checksums, at most
// MaxPacket bytes. Packets of other kinds, and packets whose virtio-net
// header is not zero, pass unchanged. It reuses its memory: the zero value
// is ready, and after the first batches Coalesce does not allocate. It is
// not safe for concurrent use.
type Coalescer struct {
	flows  [MaxGROFlows]groFlow
	nflows int
	next   int // the flow slot to evict when all are open
	out    []int

	// Spare buffers and the packets moved into them, put back by Restore.
	scratch [groScratch][]byte
	moved   [groScratch]movedBuf
	nmoved  int
}

type movedBuf struct {
	i    int
	orig []byte
}

// Coalesce examines the packets bufs[i][offset:], each with its
// VirtioHeaderLen-byte virtio-net header right before offset (offset ≥
// VirtioHeaderLen), and returns the indices of the packets to write, in
// batch order: a segment appended to an earlier one of its flow is left
// out. An extended packet grows in place up to cap(bufs[i]) (bufs[i] is
// resliced), gets its IPv6 payload length, the pseudo-header sum in its
// TCP checksum field and a GSOTCPv6 header with NEEDS_CSUM, so the kernel
// segments it again (or delivers it whole). Packets of different flows may
// change order; packets of one flow never do. The returned slice is valid
// until the next call.
//
// A packet whose buffer is too small to grow may be copied into one of the
// Coalescer's spare buffers (bufs[i] then points there): the caller must
// call Restore with the same bufs once it has written them.
func (c *Coalescer) Coalesce(bufs [][]byte, offset int) []int {
	c.out = c.out[:0]
	c.nflows, c.next = 0, 0
	if offset < VirtioHeaderLen {
		for i := range bufs {
			c.out = append(c.out, i)
		}
		return c.out
	}
	for i := range bufs {
		if c.add(bufs, offset, i) {
			c.out = append(c.out, i)
		}
	}
	for k := range c.nflows {
		c.finish(bufs, offset, &c.flows[k])
	}
	return c.out
}

// add handles packet i and reports whether it is written on its own.
func (c *Coalescer) add(bufs [][]byte, offset, i int) bool {
	if offset > len(bufs[i]) {
		return true
	}
	pkt := bufs[i][offset:]
	thl, ok := groCandidate(pkt)
	if !ok || !allZero(bufs[i][offset-VirtioHeaderLen:offset]) {
		// It may still belong to an open flow (a FIN, a pure ACK, a
		// super-packet kept whole): nothing of that flow may pass it.
		c.closeTCP(bufs, offset, pkt)
		return true
	}
	payload := len(pkt) - ip6.HeaderLen - thl
	tcp := pkt[ip6.HeaderLen:]
	seq := binary.BigEndian.Uint32(tcp[4:])
	psh := tcp[13]&tcpFlagPSH != 0
	f := c.lookup(bufs, offset, pkt)
	if f != nil {
		if c.canAppend(bufs, offset, f, pkt, thl, payload, seq) {
			head := bufs[f.head]
			n := len(head)
			bufs[f.head] = head[:n+payload]
			copy(bufs[f.head][n:], pkt[ip6.HeaderLen+thl:])
			if psh {
				bufs[f.head][offset+ip6.HeaderLen+13] |= tcpFlagPSH
				f.psh = true
			}
			f.short = payload < f.size
			f.nextSeq = seq + uint32(payload)
			f.merged++
			return false
		}
		// The flow continues from this packet.
		c.finish(bufs, offset, f)
	} else {
		f = c.slot(bufs, offset)
	}
	*f = groFlow{head: i, thl: thl, size: payload, nextSeq: seq + uint32(payload), psh: psh}
	return true
}

// groCandidate reports whether pkt is a TCP/IPv6 segment that may be
// coalesced (no extension headers, consistent lengths, ACK or ACK|PSH
// only, a payload), and its TCP header length.
func groCandidate(pkt []byte) (int, bool) {
	if len(pkt) < ip6.HeaderLen+20+1 || pkt[0]>>4 != 6 || pkt[ipv6NextHdrOff] != protoTCP ||
		int(binary.BigEndian.Uint16(pkt[4:])) != len(pkt)-ip6.HeaderLen {
		return 0, false
	}
	tcp := pkt[ip6.HeaderLen:]
	thl := int(tcp[12]>>4) * 4
	if thl < 20 || len(tcp) <= thl {
		return 0, false
	}
	if fl := tcp[13]; fl != tcpFlagACK && fl != tcpFlagACK|tcpFlagPSH {
		return 0, false
	}
	return thl, true
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// sameFlow reports whether a and b, TCP/IPv6 without extension headers
// of at least 44 bytes, have the same addresses and ports. At most one
// flow per address and port quadruple is open, so a segment with another
// acknowledgment number (which wireguard-go treats as another flow) closes
// it rather than overtake it.
func sameFlow(a, b []byte) bool {
	return bytes.Equal(a[8:ip6.HeaderLen+4], b[8:ip6.HeaderLen+4])
}

// lookup returns the open flow of pkt, a candidate, or nil.
func (c *Coalescer) lookup(bufs [][]byte, offset int, pkt []byte) *groFlow {
	for k := range c.nflows {
		f := &c.flows[k]
		if f.head >= 0 && sameFlow(bufs[f.head][offset:], pkt) {
			return f
		}
	}
	return nil
}

// closeTCP finishes every open flow with pkt's addresses and ports, if pkt
// is TCP/IPv6 without extension headers.
func (c *Coalescer) closeTCP(bufs [][]byte, offset int, pkt []byte) {
	if len(pkt) < ip6.HeaderLen+4 || pkt[0]>>4 != 6 || pkt[ipv6NextHdrOff] != protoTCP {
		return
	}
	if f := c.lookup(bufs, offset, pkt); f != nil {
		c.finish(bufs, offset, f)
	}
}

// slot returns a free flow slot, finishing the oldest open flow when all
// MaxGROFlows are in use.
func (c *Coalescer) slot(bufs [][]byte, offset int) *groFlow {
	for k := range c.nflows {
		if c.flows[k].head < 0 {
			return &c.flows[k]
		}
	}
	if c.nflows < MaxGROFlows {
		c.nflows++
		return &c.flows[c.nflows-1]
	}
	f := &c.flows[c.next]
	c.next = (c.next + 1) % MaxGROFlows
	c.finish(bufs, offset, f)
	return f
}

// canAppend reports whether segment pkt (thl, payload, seq) may be
// appended to f's packet; it verifies the checksums of both on the way.
func (c *Coalescer) canAppend(bufs [][]byte, offset int, f *groFlow, pkt []byte, thl, payload int, seq uint32) bool {
	head := bufs[f.head][offset:]
	if f.psh || f.short || seq != f.nextSeq || payload > f.size || thl != f.thl ||
		len(head)+payload > MaxPacket {
		return false
	}
	if cap(bufs[f.head]) < offset+len(head)+payload {
		if !c.move(bufs, offset, f.head) {
			return false
		}
		head = bufs[f.head][offset:]
	}
	// The merged packet carries the head's headers, so everything but the
	// lengths, sequence number, checksum and PSH must be the same: version,
	// traffic class, flow label and hop limit (RFC 8200 §3); acknowledgment
	// number, data offset, window and urgent pointer (the word the kernel's
	// tcp_gro_receive compares, flags being ACK on both); TCP options.
	h, q := head[ip6.HeaderLen:], pkt[ip6.HeaderLen:]
	if !bytes.Equal(head[:4], pkt[:4]) || head[7] != pkt[7] ||
		!bytes.Equal(h[8:13], q[8:13]) || !bytes.Equal(h[14:16], q[14:16]) || !bytes.Equal(h[18:20], q[18:20]) ||
		!bytes.Equal(head[ip6.HeaderLen+20:ip6.HeaderLen+thl], pkt[ip6.HeaderLen+20:ip6.HeaderLen+thl]) {
		return false
	}
	// The merged packet's checksum is recomputed downstream, so a corrupt
	// segment must not be hidden in it.
	if !f.checked {
		f.checked, f.valid = true, tcp6ChecksumValid(head)
	}
	return f.valid && tcp6ChecksumValid(pkt)
}

// tcp6ChecksumValid verifies the TCP checksum of a TCP/IPv6 packet
// without extension headers (RFC 8200 §8.1).
func tcp6ChecksumValid(pkt []byte) bool {
	l4 := len(pkt) - ip6.HeaderLen
	sum := checksum.Sum(pkt[8:], uint64(protoTCP)+uint64(l4)) // addresses and segment
	return checksum.Fold(sum) == 0xffff
}

// finish closes f: if segments were appended, its packet gets the merged
// payload length, the partial (pseudo-header) checksum and a GSOTCPv6
// virtio-net header.
func (c *Coalescer) finish(bufs [][]byte, offset int, f *groFlow) {
	if f.head < 0 {
		return
	}
	if f.merged > 0 {
		buf := bufs[f.head]
		pkt := buf[offset:]
		l4 := len(pkt) - ip6.HeaderLen
		binary.BigEndian.PutUint16(pkt[4:], uint16(l4))
		pseudo := checksum.Sum(pkt[8:ip6.HeaderLen], uint64(protoTCP)+uint64(l4))
		binary.BigEndian.PutUint16(pkt[ip6.HeaderLen+16:], checksum.Fold(pseudo))
		encodeVirtio(buf[offset-VirtioHeaderLen:offset], GSOInfo{
			Flags:      virtioNeedsCsum,
			Type:       uint8(GSOTCPv6),
			HdrLen:     uint16(ip6.HeaderLen + f.thl),
			Size:       uint16(f.size),
			CsumStart:  ip6.HeaderLen,
			CsumOffset: 16,
		})
	}
	f.head = -1
}

// move copies bufs[i] (virtio-net header and packet) into a spare buffer
// of offset+MaxPacket bytes and points bufs[i] there; false when none is
// left for this batch.
func (c *Coalescer) move(bufs [][]byte, offset, i int) bool {
	if c.nmoved == groScratch {
		return false
	}
	sb := c.scratch[c.nmoved]
	if cap(sb) < offset+MaxPacket {
		sb = make([]byte, offset+MaxPacket)
		c.scratch[c.nmoved] = sb
	}
	b := bufs[i]
	sb = sb[:len(b)]
	copy(sb[offset-VirtioHeaderLen:], b[offset-VirtioHeaderLen:])
	c.moved[c.nmoved] = movedBuf{i: i, orig: b}
	c.nmoved++
	bufs[i] = sb
	return true
}

// Restore points the packets Coalesce moved into spare buffers back at
// their own buffers, so that bufs holds the caller's buffers again; call
// it after writing and before the next Coalesce.
func (c *Coalescer) Restore(bufs [][]byte) {
	for k := range c.nmoved {
		m := &c.moved[k]
		if m.i < len(bufs) {
			bufs[m.i] = m.orig
		}
		c.moved[k].orig = nil
	}
	c.nmoved = 0
}

package tunnel

// Verdict says what the pipeline does with a packet after the Processor.
type Verdict uint8

const (
	// Forward writes buf[Start:End] back to the device.
	Forward Verdict = iota
	// Drop discards the packet. The Processor counts the reason.
	Drop
	// Divert copies buf[Start:End] into the DivertQueue for the control
	// loop (Shim6 control messages) instead of writing it.
	Divert
	numVerdicts
)

// String returns the verdict's name.
func (v Verdict) String() string {
	switch v {
	case Forward:
		return "forward"
	case Drop:
		return "drop"
	case Divert:
		return "divert"
	}
	return "unknown"
}

// Packet delimits one packet of a Batch in its buffer: the packet is
// Buf(i)[Start:End]. The reader sets Start = Offset. A Processor may move
// Start and End anywhere with WriteHeadroom ≤ Start ≤ End ≤ len(Buf(i)):
// back by 8 to insert the payload header, forward to strip it, or behind
// the original packet to build a reply there.
//
// GSO is the packet's virtio-net header when the pipeline keeps a GSO
// super-packet (or a packet with a partial checksum) whole for a
// GSOFilter; it is zero for every other packet. A Processor must not move
// or resize a packet with a non-zero GSO (the pipeline drops it and counts
// BadBounds): it is written back whole, header and all.
type Packet struct {
	Start, End int
	Verdict    Verdict
	GSO        GSOInfo
}

// Len returns the packet length.
func (p *Packet) Len() int { return p.End - p.Start }

// Batch is one read's worth of packets. Batches are allocated once per
// pipeline and reused; a Processor must not retain a Batch, a buffer or a
// packet slice after Process returns.
type Batch struct {
	// Packets holds one entry per packet read, in the order the device
	// returned them.
	Packets []Packet

	bufs    [][]byte // owned buffers, each BufSize long
	sizes   []int    // Read's out-parameter
	scratch [][]byte // Write's argument; the device may reorder it
	// slot maps packet i to its buffer: bufs[slot[i]]. Packets split from
	// a super-packet live in the split buffers behind the read buffers.
	slot []int
}

// newSplitBatch allocates n read buffers of bufSize bytes and splits
// buffers of splitSize bytes for the segments of super-packets.
func newSplitBatch(n, bufSize, splits, splitSize int) *Batch {
	total := n + splits
	b := &Batch{
		Packets: make([]Packet, 0, total),
		bufs:    make([][]byte, total),
		sizes:   make([]int, total),
		scratch: make([][]byte, 0, total),
		slot:    make([]int, 0, total),
	}
	// One allocation for all buffers of the batch.
	backing := make([]byte, n*bufSize+splits*splitSize)
	for i := range n {
		b.bufs[i] = backing[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
	}
	backing = backing[n*bufSize:]
	for i := range splits {
		b.bufs[n+i] = backing[i*splitSize : (i+1)*splitSize : (i+1)*splitSize]
	}
	return b
}

// Len returns the number of packets in the batch.
func (b *Batch) Len() int { return len(b.Packets) }

// Buf returns the whole buffer of packet i, headroom included.
func (b *Batch) Buf(i int) []byte { return b.bufs[b.slot[i]] }

// Data returns packet i as Buf(i)[Start:End].
func (b *Batch) Data(i int) []byte {
	p := &b.Packets[i]
	return b.bufs[b.slot[i]][p.Start:p.End]
}

// valid reports whether packet i's bounds are ones the writer can use.
func (b *Batch) valid(i int) bool {
	p := &b.Packets[i]
	return p.Start >= WriteHeadroom && p.Start <= p.End && p.End <= len(b.bufs[b.slot[i]])
}

// Processor handles a batch in place between read and write. It runs on
// the reader goroutine, one batch at a time, and must not block: it may
// rewrite packets, move their bounds (see Packet) and set their Verdict.
// It must not allocate per packet.
type Processor interface {
	Process(b *Batch)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(b *Batch)

// Process calls f(b).
func (f ProcessorFunc) Process(b *Batch) { f(b) }

// Passthrough is a Processor that forwards every packet unchanged.
type Passthrough struct{}

// Process implements Processor.
func (Passthrough) Process(*Batch) {}

// KeepWhole implements GSOFilter: every packet passes unchanged.
func (Passthrough) KeepWhole([]byte, GSOInfo) bool { return true }

// GSOFilter is implemented by a Processor that can forward GSO
// super-packets whole. Before Process, the pipeline asks KeepWhole about
// every packet a VirtioDevice returned with a non-zero virtio-net header
// (a super-packet, or a packet whose transport checksum the kernel left
// partial). True promises that Process forwards (or drops) it unchanged:
// it reaches Process with Packet.GSO set and is written back with its
// header, unsegmented, so the kernel segments it. False, and for every
// Processor without this method, has the pipeline segment it (SplitGSO)
// or complete its checksum (CompleteChecksum) first, so that Process sees
// only plain packets with complete checksums, which it may resize (the
// Shim6 payload header: the kernel cannot segment TCP behind next header
// 140). KeepWhole runs on the reader goroutine and must not allocate or
// retain pkt.
type GSOFilter interface {
	KeepWhole(pkt []byte, gso GSOInfo) bool
}

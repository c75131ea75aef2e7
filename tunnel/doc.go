// Package tunnel puts TUN devices behind one batched interface and runs the
// data-plane pipeline over it.
//
// A Device reads and writes batches of packets, shaped like wireguard-go's
// tun.Device: Read(bufs, sizes, offset) and Write(bufs, offset). Three
// backends exist: OpenOffload (the default: IFF_VNET_HDR with TCP/IPv6
// offload, a VirtioDevice: GSO super-packets reach the pipeline whole, see
// below), OpenWireGuard (golang.zx2c4.com/wireguard/tun with IFF_VNET_HDR
// and TCP/UDP segmentation offloads, so that one read may return up to
// BatchSize() packets split from a GSO super-packet and one write may be
// coalesced again by GRO) and OpenWater (github.com/songgao/water, plain,
// optionally multi-queue with one Device per queue). Package tuntest
// provides a channel-backed fake for tests.
//
// GSO pass-through. With a VirtioDevice the pipeline decodes each
// packet's virtio-net header (GSOInfo). A super-packet (or a packet with
// an offload-partial checksum) that the Processor promises to leave
// unchanged (GSOFilter.KeepWhole; Passthrough does, a rewrite-based
// processor asks rewrite.Table.Untouched) is handed to Process with
// Packet.GSO set and written back whole with its header: no userspace
// split, no coalesce, the kernel segments it. Every other one is split
// into segments with complete checksums (SplitGSO) in spare buffers of the
// batch, in order, so that the Processor can insert the Shim6 payload
// header, which the kernel cannot segment behind (next header 140 has no
// GSO handler); those go out as plain packets. On write, the offload
// backend coalesces the plain TCP/IPv6 segments of one flow in a batch
// (the ones a gateway just stripped of the payload header) into GSO
// super-packets again (Coalescer, a userspace GRO), so the kernel and the
// receiving host handle one packet instead of dozens.
//
// Buffers and headroom. Every caller reads at Offset: each buffer passed to
// Read must have len ≥ Offset + the largest packet the device can return
// (use BufSize, which covers a 64 KiB GRO super-packet). The first Offset
// bytes are headroom. The pipeline writes every packet with WriteHeadroom
// bytes before its start; the offload and wireguard backends need 10 of
// those for the virtio-net header, and the Shim6 payload header (8 bytes,
// RFC 5533 §5) is inserted by moving the IPv6 header 8 bytes into the remaining
// Offset - WriteHeadroom bytes.
//
//	0            WriteHeadroom          Offset                     len(buf)
//	|--- virtio --|--- room to grow ---|---- packet as read ----|...|
//
// The pipeline (Pipeline, Run) overlaps reading and writing: a reader
// goroutine reads a batch and hands it to a Processor, a writer goroutine
// writes the processed batch back with one Write call. A small ring of
// preallocated batches between them gives back-pressure, and nothing is
// allocated per packet. Packets the Processor marks Divert (Shim6 control
// messages) are copied into a bounded DivertQueue for the control loop;
// when it is full they are dropped and counted, never blocking the data
// path.
package tunnel

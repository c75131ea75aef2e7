package tunnel

import (
	"errors"
	"io/fs"
	"net"
)

// Device is a TUN device read and written in batches. It is the subset of
// wireguard-go's tun.Device the data plane needs, so a *tun.NativeTun or a
// wrapper of one satisfies it.
//
// Read and Write may be called concurrently with each other (one reader,
// one writer); Close unblocks both, which then return an error for which
// IsClosed is true.
type Device interface {
	// Read reads one or more packets into bufs[i][offset:] and stores each
	// length in sizes[i]; it returns the number of packets read, at most
	// min(len(bufs), BatchSize()). len(sizes) must be ≥ len(bufs), every
	// buffer must have len ≥ offset + the largest packet (see BufSize).
	Read(bufs [][]byte, sizes []int, offset int) (int, error)

	// Write writes bufs[i][offset:] for every i. offset must be ≥
	// WriteHeadroom, and the bytes before it are scratch space for the
	// device. A device that coalesces (GRO) may grow bufs[i] up to
	// cap(bufs[i]), swap the elements of bufs, and overwrite the headroom,
	// so callers pass a scratch slice of slices, with the spare capacity of
	// each buffer free to use. It returns the number of bytes written.
	Write(bufs [][]byte, offset int) (int, error)

	// BatchSize is the largest number of packets one Read returns and the
	// number of packets a Write should carry to make coalescing possible.
	// It does not change over the lifetime of a Device.
	BatchSize() int

	// Name returns the interface name.
	Name() (string, error)

	// MTU returns the interface MTU.
	MTU() (int, error)

	// Close closes the device. It is safe to call more than once.
	Close() error
}

// VirtioDevice is a Device that passes the kernel's virtio-net header
// through instead of segmenting and coalescing itself: Read leaves each
// packet's header in the VirtioHeaderLen bytes right before offset, and
// Write sends the VirtioHeaderLen bytes right before each packet as its
// header. The Pipeline recognises it (when VirtioHeaders reports true),
// decodes the headers into GSOInfo and segments the super-packets its
// Processor cannot forward whole (see GSOFilter).
type VirtioDevice interface {
	Device
	// VirtioHeaders reports whether Read and Write carry the header.
	VirtioHeaders() bool
}

const (
	// VirtioHeaderLen is the size of the virtio-net header the wireguard
	// backend prepends to every write when offloads are on.
	VirtioHeaderLen = 10

	// ShimHeaderLen is the size of the Shim6 payload extension header
	// (RFC 5533 §5.1) that the data plane inserts in the headroom.
	ShimHeaderLen = 8

	// WriteHeadroom is the offset the pipeline passes to Device.Write: the
	// virtio-net header plus alignment slack. A processed packet may start
	// anywhere at or after it.
	WriteHeadroom = 16

	// Offset is where every packet is read in its buffer. The
	// Offset - WriteHeadroom = 16 bytes in between let the processor move
	// a packet's start up to 16 bytes towards the buffer's start (8 are
	// needed to insert the Shim6 payload header) without copying the
	// payload; 32 also keeps the IPv6 header 8-byte aligned.
	Offset = 32

	// MaxPacket is the largest packet a device returns: GSO super-packets
	// are split by the wireguard backend, but GRO on write may coalesce up
	// to 64 KiB in place, so every buffer is sized for it.
	MaxPacket = 65535

	// BufSize is the length of every pipeline buffer: Offset + MaxPacket,
	// rounded up so that GRO has room behind the largest packet.
	BufSize = Offset + MaxPacket + 1
)

// Sentinel errors.
var (
	// ErrClosed is returned by operations on a closed device or pipeline.
	ErrClosed = errors.New("tunnel: device closed")
	// ErrUnsupported is returned by the backends on non-Linux systems.
	ErrUnsupported = errors.New("tunnel: unsupported platform")
	// ErrBadConfig reports invalid arguments to an Open function or
	// NewPipeline.
	ErrBadConfig = errors.New("tunnel: bad config")
	// ErrAlreadyRun is returned by a second call of Pipeline.Run.
	ErrAlreadyRun = errors.New("tunnel: pipeline already ran")
	// ErrTooBig reports a packet that does not fit a buffer.
	ErrTooBig = errors.New("tunnel: packet too big")
)

// IsClosed reports whether err means that the device was closed: our
// ErrClosed, os.ErrClosed / fs.ErrClosed (what a closed *os.File returns,
// and what wireguard-go maps EBADFD to) or net.ErrClosed.
func IsClosed(err error) bool {
	return errors.Is(err, ErrClosed) || errors.Is(err, fs.ErrClosed) || errors.Is(err, net.ErrClosed)
}

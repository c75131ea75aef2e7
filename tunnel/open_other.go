//go:build !linux

package tunnel

// The backends are Linux-only; these stubs keep the API the same elsewhere
// so that callers compile, and fail at run time with ErrUnsupported.

type unsupported struct{}

func (unsupported) Read([][]byte, []int, int) (int, error) { return 0, ErrUnsupported }
func (unsupported) Write([][]byte, int) (int, error)       { return 0, ErrUnsupported }
func (unsupported) BatchSize() int                         { return 1 }
func (unsupported) Name() (string, error)                  { return "", ErrUnsupported }
func (unsupported) MTU() (int, error)                      { return 0, ErrUnsupported }
func (unsupported) Close() error                           { return nil }

// WireGuard is only implemented on Linux.
type WireGuard struct{ unsupported }

// Up always reports false.
func (*WireGuard) Up() bool { return false }

// Water is only implemented on Linux.
type Water struct{ unsupported }

// WaterBatch is the BatchSize of a water Device on Linux.
const WaterBatch = 64

// OpenWireGuard returns ErrUnsupported.
func OpenWireGuard(name string, mtu int) (*WireGuard, error) { return nil, ErrUnsupported }

// OpenWater returns ErrUnsupported.
func OpenWater(name string, multiQueue bool, queues int) ([]*Water, error) {
	return nil, ErrUnsupported
}

// InNamespace returns ErrUnsupported.
func InNamespace(name string, fn func() error) error { return ErrUnsupported }

// Offload is only implemented on Linux.
type Offload struct{ unsupported }

// VirtioHeaders reports false.
func (*Offload) VirtioHeaders() bool { return false }

// OffloadBatch is the BatchSize of an Offload Device on Linux.
const OffloadBatch = 16

// OpenOffload returns ErrUnsupported.
func OpenOffload(name string, mtu int) (*Offload, error) { return nil, ErrUnsupported }

package pcap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Capture writes every Shim6 control message the gateway sends or
// receives to a pcap file (LINKTYPE_IPV6, whole IPv6 packets) for
// `shim6gw run --capture FILE`, so that Wireshark and tshark decode
// the conversation. It is safe for concurrent use; a nil *Capture
// captures nothing.
type Capture struct {
	mu     sync.Mutex
	bw     *bufio.Writer
	w      *Writer
	closer io.Closer
	err    error // first write error; later packets are not written

	// Packets counts packets written.
	Packets atomic.Uint64
}

// OpenCapture creates (or truncates) path and writes the pcap file header.
func OpenCapture(path string) (*Capture, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("pcap: capture: %w", err)
	}
	c, err := NewCapture(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	c.closer = f
	return c, nil
}

// NewCapture writes the pcap file header to w and returns a Capture that
// appends to it. Close flushes but does not close w.
func NewCapture(w io.Writer) (*Capture, error) {
	bw := bufio.NewWriter(w)
	pw, err := NewWriter(bw, LinkTypeIPv6)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return nil, fmt.Errorf("pcap: capture: %w", err)
	}
	return &Capture{bw: bw, w: pw}, nil
}

// WritePacket records one whole IPv6 packet. The file is flushed after
// every packet (control traffic is sparse) so that a live `tshark -r`
// or a crash loses nothing. The first error is kept (see Err) and stops
// the capture; the gateway keeps running.
func (c *Capture) WritePacket(ts time.Time, pkt []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.w == nil {
		return
	}
	if err := c.w.WritePacket(ts, pkt); err != nil {
		c.err = err
		return
	}
	if err := c.bw.Flush(); err != nil {
		c.err = err
		return
	}
	c.Packets.Add(1)
}

// Err returns the first write error, if any.
func (c *Capture) Err() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close flushes the capture and closes the file OpenCapture created.
// Later packets are ignored.
func (c *Capture) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return nil
	}
	err := c.bw.Flush()
	c.w = nil
	if c.closer != nil {
		err = errors.Join(err, c.closer.Close())
	}
	if err != nil {
		return fmt.Errorf("pcap: capture: %w", err)
	}
	return nil
}

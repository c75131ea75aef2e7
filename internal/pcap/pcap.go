// Package pcap writes classic libpcap capture files (the format tcpdump,
// Wireshark and tshark read), for the gateway's --capture option and for
// conformance tests.
package pcap

import (
	"encoding/binary"
	"errors"
	"io"
	"time"
)

// Link types (https://www.tcpdump.org/linktypes.html).
const (
	// LinkTypeIPv6 means each record is a raw IPv6 packet.
	LinkTypeIPv6 = 229
	// LinkTypeRaw means each record is a raw IPv4 or IPv6 packet.
	LinkTypeRaw = 101
)

// DefaultSnapLen is the snapshot length written in the file header;
// WritePacket truncates longer packets to it.
const DefaultSnapLen = 65535

const (
	magicMicro   = 0xa1b2c3d4
	versionMajor = 2
	versionMinor = 4
	fileHdrLen   = 24
	recordHdrLen = 16
)

// ErrClosedHeader is returned when the file header could not be written,
// so no record can follow.
var ErrClosedHeader = errors.New("pcap: file header not written")

// Writer writes a pcap file: a 24-octet file header, then one 16-octet
// record header plus packet bytes per packet, little-endian, microsecond
// timestamps. It is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	snapLen uint32
	hdr     [recordHdrLen]byte
	err     error
}

// NewWriter writes the file header for linkType to w and returns a Writer.
func NewWriter(w io.Writer, linkType uint32) (*Writer, error) {
	var h [fileHdrLen]byte
	binary.LittleEndian.PutUint32(h[0:], magicMicro)
	binary.LittleEndian.PutUint16(h[4:], versionMajor)
	binary.LittleEndian.PutUint16(h[6:], versionMinor)
	// thiszone and sigfigs stay zero.
	binary.LittleEndian.PutUint32(h[16:], DefaultSnapLen)
	binary.LittleEndian.PutUint32(h[20:], linkType)
	if _, err := w.Write(h[:]); err != nil {
		return nil, errors.Join(ErrClosedHeader, err)
	}
	return &Writer{w: w, snapLen: DefaultSnapLen}, nil
}

// WritePacket appends one record with timestamp ts. Packets longer than
// the snapshot length are truncated, with the original length recorded.
// After a write error every later call returns that error.
func (w *Writer) WritePacket(ts time.Time, pkt []byte) error {
	if w.err != nil {
		return w.err
	}
	capLen := len(pkt)
	if capLen > int(w.snapLen) {
		capLen = int(w.snapLen)
	}
	us := ts.UnixMicro()
	binary.LittleEndian.PutUint32(w.hdr[0:], uint32(us/1e6))
	binary.LittleEndian.PutUint32(w.hdr[4:], uint32(us%1e6))
	binary.LittleEndian.PutUint32(w.hdr[8:], uint32(capLen))
	binary.LittleEndian.PutUint32(w.hdr[12:], uint32(len(pkt)))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		w.err = err
		return err
	}
	if _, err := w.w.Write(pkt[:capLen]); err != nil {
		w.err = err
		return err
	}
	return nil
}

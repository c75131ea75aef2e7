package pcap

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/shim6"
)

// readPcap returns the records of a pcap file written by Capture.
func readPcap(t *testing.T, b []byte) (ts []time.Time, pkts [][]byte) {
	t.Helper()
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 229 {
		t.Fatalf("bad pcap header % x", b[:min(len(b), 24)])
	}
	for off := 24; off < len(b); {
		if off+16 > len(b) {
			t.Fatalf("truncated record at %d", off)
		}
		sec, usec := binary.LittleEndian.Uint32(b[off:]), binary.LittleEndian.Uint32(b[off+4:])
		incl, orig := int(binary.LittleEndian.Uint32(b[off+8:])), int(binary.LittleEndian.Uint32(b[off+12:]))
		if incl != orig || off+16+incl > len(b) {
			t.Fatalf("record at %d: incl %d orig %d", off, incl, orig)
		}
		ts = append(ts, time.Unix(int64(sec), int64(usec)*1000))
		pkts = append(pkts, b[off+16:off+16+incl])
		off += 16 + incl
	}
	return ts, pkts
}

func keepalivePacket(t *testing.T, tag shim6.ContextTag) []byte {
	t.Helper()
	m := shim6.AppendKeepalive(nil, tag)
	if err := shim6.FinishMessage(m); err != nil {
		t.Fatal(err)
	}
	return shim6.AppendIPv6Control(nil, netip.MustParseAddr("2001:db8:a:1::1"), netip.MustParseAddr("2001:db8:c:1::2"), m)
}

func TestCaptureConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pcap")
	c, err := OpenCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 25
	at := time.Date(2026, 11, 29, 4, 0, 0, 123000, time.UTC)
	pkts := make([][]byte, writers*each)
	for i := range pkts {
		pkts[i] = keepalivePacket(t, shim6.ContextTag(i+1))
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for _, p := range pkts[w*each : (w+1)*each] {
				c.WritePacket(at, p)
			}
		})
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.WritePacket(at, keepalivePacket(t, 1)) // after Close: ignored
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ts, recs := readPcap(t, b)
	if len(recs) != writers*each || c.Packets.Load() != writers*each {
		t.Fatalf("%d records, %d counted, want %d", len(recs), c.Packets.Load(), writers*each)
	}
	tags := map[shim6.ContextTag]bool{}
	for i, p := range recs {
		if !ts[i].Equal(at) {
			t.Errorf("record %d at %v", i, ts[i])
		}
		_, _, m, err := shim6.ParseIPv6Control(p)
		if err != nil || m.Type() != shim6.TypeKeepalive {
			t.Fatalf("record %d: %v", i, err)
		}
		_, tag, _ := shim6.PeekTag(p[40:])
		tags[tag] = true
	}
	if len(tags) != writers*each {
		t.Errorf("%d distinct packets, want %d (interleaved writes?)", len(tags), writers*each)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestCaptureErrors(t *testing.T) {
	var nilCap *Capture
	nilCap.WritePacket(time.Now(), []byte{0x60}) // no-op
	if nilCap.Err() != nil || nilCap.Close() != nil {
		t.Error("nil capture reported an error")
	}
	if _, err := NewCapture(&failWriter{}); err == nil {
		t.Error("header write error lost")
	}
	c, err := NewCapture(&failWriter{n: 1})
	if err != nil {
		t.Fatal(err)
	}
	c.WritePacket(time.Now(), keepalivePacket(t, 1))
	c.WritePacket(time.Now(), keepalivePacket(t, 2))
	if c.Err() == nil || c.Packets.Load() != 0 {
		t.Errorf("err %v, %d packets", c.Err(), c.Packets.Load())
	}
	if _, err := OpenCapture(filepath.Join(t.TempDir(), "missing", "x.pcap")); err == nil {
		t.Error("open in a missing directory succeeded")
	}
	var buf bytes.Buffer
	c, err = NewCapture(&buf)
	if err != nil {
		t.Fatal(err)
	}
	c.WritePacket(time.Unix(1, 0), []byte{0x60, 0, 0, 0})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, pkts := readPcap(t, buf.Bytes()); len(pkts) != 1 || !bytes.Equal(pkts[0], []byte{0x60, 0, 0, 0}) {
		t.Errorf("records %x", pkts)
	}
}

// TestCaptureTshark: tshark (installed by .ci/run) reads the capture as
// Shim6 with the right types and good checksums (docs/architecture.md §10 layer 3).
func TestCaptureTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed")
	}
	path := filepath.Join(t.TempDir(), "t.pcap")
	c, err := OpenCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	i1 := shim6.AppendI1(nil, 0x42, 7)
	if err := shim6.FinishMessage(i1); err != nil {
		t.Fatal(err)
	}
	c.WritePacket(time.Now(), shim6.AppendIPv6Control(nil, netip.MustParseAddr("2001:db8:a:1::1"), netip.MustParseAddr("2001:db8:c:1::2"), i1))
	c.WritePacket(time.Now(), keepalivePacket(t, 0x99))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tshark, "-r", path, "-T", "fields", "-e", "shim6.type", "-e", "shim6.checksum.status").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	// Type 1 is I1, 66 Keepalive (RFC 5534 §5.1); checksum status 1 is Good.
	if got, want := string(out), "1\t1\n66\t1\n"; got != want {
		t.Errorf("tshark fields %q, want %q", got, want)
	}
}

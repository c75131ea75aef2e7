package pcap_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/internal/pcap"
)

func TestWriterBytes(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, pcap.LinkTypeIPv6)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(0x01020304, 5006000) // 5006 µs
	if err := w.WritePacket(ts, []byte{0x60, 0xaa, 0xbb}); err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xd4, 0xc3, 0xb2, 0xa1, // magic, little-endian, µs
		0x02, 0x00, 0x04, 0x00, // version 2.4
		0, 0, 0, 0, // thiszone
		0, 0, 0, 0, // sigfigs
		0xff, 0xff, 0x00, 0x00, // snaplen 65535
		0xe5, 0x00, 0x00, 0x00, // linktype 229
		0x04, 0x03, 0x02, 0x01, // ts_sec
		0x8e, 0x13, 0x00, 0x00, // ts_usec 5006
		0x03, 0, 0, 0, // incl_len
		0x03, 0, 0, 0, // orig_len
		0x60, 0xaa, 0xbb,
	}
	if diff := cmp.Diff(want, buf.Bytes()); diff != "" {
		t.Fatalf("file bytes (-want +got):\n%s", diff)
	}
}

func TestWriterTruncatesToSnapLen(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, pcap.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, pcap.DefaultSnapLen+10)
	if err := w.WritePacket(time.Unix(1, 0), pkt); err != nil {
		t.Fatal(err)
	}
	rec := buf.Bytes()[24:]
	incl := int(rec[8]) | int(rec[9])<<8 | int(rec[10])<<16
	orig := int(rec[12]) | int(rec[13])<<8 | int(rec[14])<<16
	if incl != pcap.DefaultSnapLen || orig != len(pkt) || len(rec) != 16+pcap.DefaultSnapLen {
		t.Fatalf("incl %d orig %d record %d", incl, orig, len(rec))
	}
}

type failWriter struct{ n int }

var errBoom = errors.New("boom")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errBoom
	}
	f.n--
	return len(p), nil
}

func TestWriterErrorsStick(t *testing.T) {
	if _, err := pcap.NewWriter(&failWriter{}, pcap.LinkTypeIPv6); !errors.Is(err, errBoom) || !errors.Is(err, pcap.ErrClosedHeader) {
		t.Fatalf("NewWriter error = %v", err)
	}
	w, err := pcap.NewWriter(&failWriter{n: 1}, pcap.LinkTypeIPv6)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := w.WritePacket(time.Unix(0, 0), []byte{1}); !errors.Is(err, errBoom) {
			t.Fatalf("write %d: error = %v", i, err)
		}
	}
}

package tuntest_test

import (
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

func bufs(n, size int) [][]byte {
	b := make([][]byte, n)
	for i := range b {
		b[i] = make([]byte, size)
	}
	return b
}

func TestReadGathersQueuedPackets(t *testing.T) {
	d := tuntest.New(tuntest.Config{BatchSize: 3, Buffer: 8})
	in := [][]byte{{1}, {2, 2}, {3, 3, 3}, {4, 4, 4, 4}}
	for _, p := range in {
		d.Inbound <- p
	}
	b := bufs(8, 16)
	sizes := make([]int, 8)
	var got [][]byte
	for len(got) < len(in) {
		n, err := d.Read(b, sizes, 4)
		if err != nil {
			t.Fatal(err)
		}
		if n > 3 {
			t.Fatalf("read %d packets, batch size is 3", n)
		}
		for i := range n {
			got = append(got, append([]byte(nil), b[i][4:4+sizes[i]]...))
		}
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("packets (-want +got):\n%s", diff)
	}
}

func TestReadOverflow(t *testing.T) {
	d := tuntest.New(tuntest.Config{Buffer: 1})
	d.Inbound <- make([]byte, 20)
	if _, err := d.Read(bufs(1, 16), make([]int, 1), 4); err == nil {
		t.Error("packet larger than buffer read without error")
	}
}

func TestWriteCopiesAndChecksOffset(t *testing.T) {
	d := tuntest.New(tuntest.Config{Buffer: 4})
	d.Writes = make(chan int, 1)
	b := [][]byte{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 8}, {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 5}}
	if _, err := d.Write(b, 8); err == nil {
		t.Error("write below the minimum offset accepted")
	}
	n, err := d.Write(b, 12)
	if err != nil || n != 3 {
		t.Fatalf("Write = %d, %v; want 3, nil", n, err)
	}
	b[0][12] = 0 // the device must have copied
	got := [][]byte{<-d.Outbound, <-d.Outbound}
	if diff := cmp.Diff([][]byte{{7, 8}, {5}}, got); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	if c := <-d.Writes; c != 2 {
		t.Errorf("Writes reported %d packets, want 2", c)
	}
	if d.WrittenPackets.Load() != 2 || d.WrittenBytes.Load() != 3 || d.WriteCalls.Load() != 1 {
		t.Errorf("counters %d packets %d bytes %d calls, want 2 3 1", d.WrittenPackets.Load(), d.WrittenBytes.Load(), d.WriteCalls.Load())
	}
}

func TestCloseUnblocks(t *testing.T) {
	d := tuntest.New(tuntest.Config{})
	errc := make(chan error, 2)
	go func() {
		_, err := d.Read(bufs(1, 64), make([]int, 1), 0)
		errc <- err
	}()
	go func() {
		// Outbound is unbuffered and never read: Write blocks until Close.
		_, err := d.Write([][]byte{make([]byte, 20)}, 10)
		errc <- err
	}()
	d.Close()
	d.Close() // idempotent
	for range 2 {
		if err := <-errc; !errors.Is(err, os.ErrClosed) {
			t.Errorf("after Close: %v, want os.ErrClosed", err)
		}
	}
}

func TestDefaults(t *testing.T) {
	d := tuntest.New(tuntest.Config{})
	name, _ := d.Name()
	mtu, _ := d.MTU()
	if name != "tuntest0" || mtu != tuntest.DefaultMTU || d.BatchSize() != 1 {
		t.Errorf("defaults: %q %d %d", name, mtu, d.BatchSize())
	}
}

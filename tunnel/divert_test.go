package tunnel_test

import (
	"bytes"
	"testing"

	"github.com/shim6gw/shim6gw/tunnel"
)

func TestDivertQueue(t *testing.T) {
	q := tunnel.NewDivertQueue(2, 8)
	a, b, c := []byte("aaaa"), []byte("bbbbbbbb"), []byte("c")
	if !q.Push(a) || !q.Push(b) {
		t.Fatal("push into an empty queue failed")
	}
	if q.Push(c) {
		t.Error("push into a full queue succeeded")
	}
	if q.Push(make([]byte, 9)) {
		t.Error("oversize push succeeded")
	}
	a[0] = 'x' // the queue must have copied
	d1 := <-q.C()
	if !bytes.Equal(d1.Bytes(), []byte("aaaa")) {
		t.Errorf("first = %q", d1.Bytes())
	}
	if q.Push(c) {
		t.Error("push succeeded while every buffer is held")
	}
	d1.Release()
	if !q.Push(c) {
		t.Error("push after Release failed")
	}
	if d2 := <-q.C(); !bytes.Equal(d2.Bytes(), b) {
		t.Errorf("second = %q, want %q", d2.Bytes(), b)
	}
	if d3 := <-q.C(); !bytes.Equal(d3.Bytes(), c) {
		t.Errorf("third = %q, want %q", d3.Bytes(), c)
	}
	if q.Pushed.Load() != 3 || q.Dropped.Load() != 2 || q.Oversize.Load() != 1 {
		t.Errorf("pushed %d dropped %d oversize %d, want 3 2 1", q.Pushed.Load(), q.Dropped.Load(), q.Oversize.Load())
	}
}

func TestDivertQueuePushAllocs(t *testing.T) {
	q := tunnel.NewDivertQueue(1, 64)
	p := make([]byte, 48)
	allocs := testing.AllocsPerRun(100, func() {
		q.Push(p)
		q.Push(p) // full: dropped
		(<-q.C()).Release()
	})
	if allocs != 0 {
		t.Errorf("%v allocs per push/drop/release, want 0", allocs)
	}
}

package bucket

import (
	"testing"
	"time"
)

func TestBucketBurstThenRate(t *testing.T) {
	b := New(2, 3)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !b.Take(t0) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if b.Take(t0) {
		t.Fatal("a fourth token at the same instant")
	}
	if b.Take(t0.Add(400 * time.Millisecond)) {
		t.Fatal("0.8 tokens refilled counted as one")
	}
	if !b.Take(t0.Add(500 * time.Millisecond)) {
		t.Fatal("one token after 0.5 s at 2/s refused")
	}
	// A long pause refills only up to the burst.
	t1 := t0.Add(time.Hour)
	n := 0
	for b.Take(t1) {
		n++
	}
	if n != 3 {
		t.Errorf("after an hour %d tokens, want the burst 3", n)
	}
	// The clock going back does not mint tokens.
	if b.Take(t0) {
		t.Error("token from a clock step backwards")
	}
}

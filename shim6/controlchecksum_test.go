package shim6

import (
	"testing"

	"github.com/shim6gw/shim6gw/internal/checksum"
)

func TestControlChecksumDigestVector(t *testing.T) {
	// The I1 of TestDigestVectors: tag 0x2A5B3C4D5E6F, nonce 0x11223344.
	i1 := []byte{0x3b, 0x01, 0x01, 0x00, 0xba, 0x80, 0x2a, 0x5b, 0x3c, 0x4d, 0x5e, 0x6f, 0x11, 0x22, 0x33, 0x44}
	if got := ControlChecksum(i1); got != 0xba80 {
		t.Fatalf("ControlChecksum = %#04x, want 0xba80", got)
	}
	if checksum.Fold(checksum.Sum(i1, 0)) != 0xffff {
		t.Fatal("a correct message must sum to 0xffff")
	}
}

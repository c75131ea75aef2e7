package slaac

import (
	"fmt"
	"testing"
)

// benchCase is one packet kind, in the style of rewrite's BenchmarkProcess.
type benchCase struct {
	name string
	out  bool
	make func(f *fixture, size int) []byte
}

// sized builds a UDP packet of exactly size bytes.
func sized(f *fixture, out bool, size int) []byte {
	if out {
		return buildPacket(hostStable, peer, protoUDP, udpDgram(max(size-48, 0)))
	}
	return buildPacket(peer, f.ulid(4), protoUDP, udpDgram(max(size-48, 0)))
}

var benchCases = []benchCase{
	{"slaac_out", true, func(f *fixture, n int) []byte { return sized(f, true, n) }},
	{"slaac_in", false, func(f *fixture, n int) []byte { return sized(f, false, n) }},
	{"slaac_in_icmp_error", false, func(f *fixture, n int) []byte {
		return buildPacket(router, f.ulid(4), protoICMPv6, icmpErr(1, buildPacket(f.ulid(4), peer, protoUDP, udpDgram(max(n-96, 0)))))
	}},
	{"untouched", true, func(f *fixture, n int) []byte { return buildPacket(f.ulid(0), peer, protoUDP, udpDgram(max(n-48, 0))) }},
}

var benchSizes = []int{64, 1280, 1500}

// restoreLen covers every byte the translation writes (headers and a
// quoted header), restored per iteration.
const restoreLen = 128

func BenchmarkTranslate(b *testing.B) {
	f := newFixture(b, nil)
	buf, s, e := place(sized(f, true, 64))
	f.tr.Outbound(buf, s, e, f.now) // the mapping exists, as in steady state
	for _, bc := range benchCases {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", bc.name, size), func(b *testing.B) {
				in := bc.make(f, size)
				buf, s, e := place(in)
				k := min(len(in), restoreLen)
				b.ReportAllocs()
				b.SetBytes(int64(len(in)))
				for i := 0; b.Loop(); i++ {
					copy(buf[s:s+k], in[:k])
					if bc.out {
						f.tr.Outbound(buf, s, e, int64(i))
					} else {
						f.tr.Inbound(buf, s, e, int64(i))
					}
				}
			})
		}
	}
}

// BenchmarkNewMappingRefused is the cost of a packet from a host address
// that gets no mapping (a flood of random source addresses).
func BenchmarkNewMappingRefused(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.NewMappingsBurst, c.NewMappingsPerSecond = 1, 1e-6 })
	in := sized(f, true, 64)
	buf, s, e := place(in)
	f.tr.Outbound(buf, s, e, f.now) // takes the only token
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		copy(buf[s:s+40], in[:40])
		buf[s+23] = byte(i) // a new address every packet
		buf[s+22], buf[s+21] = byte(i>>8), 0xaa
		if v := f.tr.Outbound(buf, s, e, f.now); v != Drop && i > 0 {
			b.Fatalf("verdict %v", v)
		}
	}
}

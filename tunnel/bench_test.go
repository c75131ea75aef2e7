package tunnel_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/shim6gw/shim6gw/tunnel"
	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

// BenchmarkPipeline measures the pipeline's own cost per packet over the
// channel fake: read into a batch, process, write. One op is one packet.
func BenchmarkPipeline(b *testing.B) {
	for _, batch := range []int{1, 64, 128} {
		for _, size := range []int{64, 1280, 1500} {
			for _, name := range []string{"passthrough", "shift"} {
				b.Run(fmt.Sprintf("batch=%d/size=%d/%s", batch, size, name), func(b *testing.B) {
					var proc tunnel.Processor = tunnel.Passthrough{}
					if name == "shift" {
						// Insert 8 bytes in front of a 40-byte header, the
						// shape of the payload-header insertion.
						proc = tunnel.ProcessorFunc(func(bt *tunnel.Batch) {
							for i := range bt.Packets {
								p := &bt.Packets[i]
								buf := bt.Buf(i)
								copy(buf[p.Start-8:], buf[p.Start:p.Start+40])
								p.Start -= 8
							}
						})
					}
					benchPipeline(b, batch, size, proc)
				})
			}
		}
	}
}

func benchPipeline(b *testing.B, batch, size int, proc tunnel.Processor) {
	dev := tuntest.New(tuntest.Config{BatchSize: batch, Discard: true, Buffer: 4 * batch})
	dev.Writes = make(chan int, 16)
	p, err := tunnel.NewPipeline(dev, tunnel.Config{Processor: proc, BufSize: tunnel.Offset + 2048})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	data := pkt(1, size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		dev.Inbound <- data
	}
	// Wait for the last packet. Write counts before it notifies, so a
	// notification dropped on a full channel leaves others to wake us.
	for dev.WrittenPackets.Load() < uint64(b.N) {
		<-dev.Writes
	}
	b.StopTimer()
	dev.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

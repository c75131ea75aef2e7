package tunnel_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/tunnel"
)

var (
	tunLocal  = netip.MustParseAddr("fd00:5:1::1") // on the TUN, the socket's side
	tunRemote = netip.MustParseAddr("fd00:5:1::2") // routed into the TUN
)

const echoPort = 7777

// backend opens the TUN named tunName in the calling namespace.
type backend struct {
	name string
	open func() ([]tunnel.Device, error)
}

var backends = []backend{
	{"wireguard", func() ([]tunnel.Device, error) { return single(tunnel.OpenWireGuard(tunName, 1500)) }},
	{"water", func() ([]tunnel.Device, error) { return openWater(false, 1) }},
	{"water-mq2", func() ([]tunnel.Device, error) { return openWater(true, 2) }},
	{"offload", func() ([]tunnel.Device, error) { return single(tunnel.OpenOffload(tunName, 1500)) }},
}

// single wraps a one-queue device as a backend's device list; on error
// the typed nil never becomes a non-nil interface.
func single[D tunnel.Device](d D, err error) ([]tunnel.Device, error) {
	if err != nil {
		return nil, err
	}
	return []tunnel.Device{d}, nil
}

func openWater(mq bool, queues int) ([]tunnel.Device, error) {
	ws, err := tunnel.OpenWater(tunName, mq, queues)
	if err != nil {
		return nil, err
	}
	devs := make([]tunnel.Device, len(ws))
	for i, w := range ws {
		devs[i] = w
	}
	return devs, nil
}

// openIn opens a backend inside ns and closes it in t.Cleanup.
func openIn(t testing.TB, ns string, b backend) []tunnel.Device {
	t.Helper()
	devs := inNS(t, ns, "open "+b.name, b.open)
	t.Cleanup(func() {
		for _, d := range devs {
			if err := d.Close(); err != nil {
				t.Errorf("close %s: %v", b.name, err)
			}
		}
	})
	// No link-local address: no MLD or router solicitations in the TUN.
	ipn(t, ns, "link", "set", tunName, "addrgenmode", "none")
	return devs
}

// udpNS sets up a namespace with the TUN up and fd00:5:1::1/64 on it.
func udpNS(t *testing.T, b backend) (string, []tunnel.Device) {
	ns := newNS(t, "u")
	devs := openIn(t, ns, b)
	ipn(t, ns, "link", "set", tunName, "up")
	ipn(t, ns, "addr", "add", tunLocal.String()+"/64", "dev", tunName, "nodad")
	waitLocalRoute(t, ns, tunLocal)
	return ns, devs
}

// udpSocket opens a UDP socket bound to tunLocal inside ns.
func udpSocket(t *testing.T, ns string) *net.UDPConn {
	t.Helper()
	c := inNS(t, ns, "listen udp", func() (*net.UDPConn, error) {
		return net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(tunLocal, 0)))
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// closeAfter bounds blocking reads: if the test is still waiting after d,
// the devices are closed and every Read returns.
func closeAfter(t *testing.T, d time.Duration, devs ...tunnel.Device) {
	timer := time.AfterFunc(d, func() {
		for _, dev := range devs {
			dev.Close()
		}
	})
	t.Cleanup(func() { timer.Stop() })
}

func udpPayload(i int) []byte {
	return []byte(fmt.Sprintf("s6tun request %02d %s", i, bytes.Repeat([]byte{byte('a' + i)}, 40+i)))
}

// TestIntegrationReadWriteUDP sends UDP datagrams from a socket into the
// TUN, reads them with Device.Read, answers each with a modified payload
// in one Device.Write, and checks what the socket receives.
func TestIntegrationReadWriteUDP(t *testing.T) {
	skipUnlessRoot(t)
	for _, b := range backends[:2] {
		t.Run(b.name, func(t *testing.T) {
			ns, devs := udpNS(t, b)
			conn := udpSocket(t, ns)
			dev := devs[0]
			if name, err := dev.Name(); err != nil || name != tunName {
				t.Errorf("Name() = %q, %v, want %q", name, err, tunName)
			}
			if mtu, err := dev.MTU(); err != nil || mtu != 1500 {
				t.Errorf("MTU() = %d, %v, want 1500", mtu, err)
			}
			const count = 8
			dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(tunRemote, echoPort))
			for i := range count {
				if _, err := conn.WriteToUDP(udpPayload(i), dst); err != nil {
					t.Fatal(err)
				}
			}
			closeAfter(t, 20*time.Second, dev)

			bufs := make([][]byte, dev.BatchSize())
			for i := range bufs {
				bufs[i] = make([]byte, tunnel.BufSize)
			}
			sizes := make([]int, len(bufs))
			var replies [][]byte
			maxBatch := 0
			for reads := 0; len(replies) < count && reads < 100; reads++ {
				n, err := dev.Read(bufs, sizes, tunnel.Offset)
				if err != nil {
					t.Fatalf("read after %d packets: %v", len(replies), err)
				}
				maxBatch = max(maxBatch, n)
				for i := range n {
					p := bufs[i][tunnel.Offset : tunnel.Offset+sizes[i]]
					if p[0]>>4 != 6 || p[6] != protoUDP || ipv6Dst(p) != tunRemote {
						continue // not ours
					}
					k := len(replies)
					if ipv6Src(p) != tunLocal || binary.BigEndian.Uint16(p[42:]) != echoPort {
						t.Errorf("packet %d: src %v dst port %d", k, ipv6Src(p), binary.BigEndian.Uint16(p[42:]))
					}
					if got := p[ipv6HeaderLen+udpHeaderLen:]; !bytes.Equal(got, udpPayload(k)) {
						t.Errorf("packet %d payload %q, want %q", k, got, udpPayload(k))
					}
					swapUDP(p)
					for j := ipv6HeaderLen + udpHeaderLen; j < len(p); j++ {
						p[j] ^= 0x20 // the answer: case flipped
					}
					setUDPChecksum(p)
					// Keep the reply in a buffer of its own.
					r := make([]byte, tunnel.Offset+len(p), tunnel.BufSize)
					copy(r[tunnel.Offset:], p)
					replies = append(replies, r)
				}
			}
			if len(replies) != count {
				t.Fatalf("read %d of %d packets", len(replies), count)
			}
			if b.name == "water" && maxBatch < count {
				// All datagrams were queued before the first Read.
				t.Errorf("largest batch %d, want %d queued packets in one Read", maxBatch, count)
			}
			out := make([][]byte, len(replies))
			for i, r := range replies {
				out[i] = r[tunnel.Offset-tunnel.WriteHeadroom:]
			}
			if _, err := dev.Write(out, tunnel.WriteHeadroom); err != nil {
				t.Fatalf("write: %v", err)
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := map[string]bool{}
			buf := make([]byte, 2048)
			for range count {
				n, from, err := conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("socket read: %v (got %d answers)", err, len(got))
				}
				if want := netip.AddrPortFrom(tunRemote, echoPort); from != want {
					t.Errorf("answer from %v, want %v", from, want)
				}
				got[string(buf[:n])] = true
			}
			for i := range count {
				want := bytes.Clone(udpPayload(i))
				for j := range want {
					want[j] ^= 0x20
				}
				if !got[string(want)] {
					t.Errorf("answer %d %q missing", i, want)
				}
			}
		})
	}
}

// echoProc answers UDP datagrams to tunRemote:echoPort in place and drops
// everything else.
type echoProc struct{ answered atomic.Uint64 }

func (e *echoProc) Process(b *tunnel.Batch) {
	for i := range b.Packets {
		p := b.Data(i)
		if len(p) < ipv6HeaderLen+udpHeaderLen || p[0]>>4 != 6 || p[6] != protoUDP ||
			ipv6Dst(p) != tunRemote || binary.BigEndian.Uint16(p[42:]) != echoPort {
			b.Packets[i].Verdict = tunnel.Drop
			continue
		}
		swapUDP(p)
		e.answered.Add(1)
	}
}

// TestIntegrationPipelineEcho runs one pipeline per queue with an echo
// processor: datagrams from several source ports (flows, which a
// multi-queue TUN spreads over its queues) come back intact.
func TestIntegrationPipelineEcho(t *testing.T) {
	skipUnlessRoot(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ns, devs := udpNS(t, b)
			var procs []*echoProc
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			t.Cleanup(func() { cancel(); wg.Wait() })
			for _, d := range devs {
				e := &echoProc{}
				procs = append(procs, e)
				p, err := tunnel.NewPipeline(d, tunnel.Config{Processor: e, Batches: 2})
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := p.Run(ctx); err != nil {
						t.Errorf("Run: %v", err)
					}
				}()
			}
			// Four flows: four sockets with their own source ports.
			var conns []*net.UDPConn
			for range 4 {
				conns = append(conns, udpSocket(t, ns))
			}
			dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(tunRemote, echoPort))
			buf := make([]byte, 2048)
			for round := range 4 {
				for ci, c := range conns {
					msg := udpPayload(round*4 + ci)
					if _, err := c.WriteToUDP(msg, dst); err != nil {
						t.Fatal(err)
					}
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					n, from, err := c.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("flow %d round %d: %v", ci, round, err)
					}
					if !bytes.Equal(buf[:n], msg) || from != netip.AddrPortFrom(tunRemote, echoPort) {
						t.Errorf("flow %d round %d: got %q from %v, want %q", ci, round, buf[:n], from, msg)
					}
				}
			}
			var total uint64
			for _, p := range procs {
				total += p.answered.Load()
			}
			if total != 16 {
				t.Errorf("answered %d, want 16", total)
			}
		})
	}
}

func TestOpenBadConfig(t *testing.T) {
	if _, err := tunnel.OpenWater(tunName, false, 2); !errors.Is(err, tunnel.ErrBadConfig) {
		t.Errorf("OpenWater with 2 queues without multi-queue: %v, want ErrBadConfig", err)
	}
	if _, err := tunnel.OpenWater(tunName, true, 0); !errors.Is(err, tunnel.ErrBadConfig) {
		t.Errorf("OpenWater with 0 queues: %v, want ErrBadConfig", err)
	}
	if _, err := tunnel.OpenWireGuard(tunName, 100); !errors.Is(err, tunnel.ErrBadConfig) {
		t.Errorf("OpenWireGuard with MTU 100: %v, want ErrBadConfig", err)
	}
}

// TestIntegrationCloseNoLeak runs a pipeline on each backend, stops it and
// checks that every goroutine (ours and the backend's listeners) is gone
// and that the interface disappeared.
func TestIntegrationCloseNoLeak(t *testing.T) {
	skipUnlessRoot(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ns := newNS(t, "leak")
			before := runtime.NumGoroutine()
			devs := inNS(t, ns, "open "+b.name, b.open)
			ipn(t, ns, "link", "set", tunName, "up")
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, len(devs))
			for _, d := range devs {
				p, err := tunnel.NewPipeline(d, tunnel.Config{Batches: 2})
				if err != nil {
					t.Fatal(err)
				}
				go func() { errc <- p.Run(ctx) }()
			}
			cancel()
			for range devs {
				if err := <-errc; err != nil {
					t.Errorf("Run: %v", err)
				}
			}
			for _, d := range devs {
				if err := d.Close(); err != nil {
					t.Errorf("Close after Run: %v", err)
				}
			}
			// Goroutines that returned may take a moment to be reaped:
			// wait, bounded, for the count to come back.
			after := runtime.NumGoroutine()
			for i := 0; i < 100 && after > before; i++ {
				time.Sleep(20 * time.Millisecond)
				after = runtime.NumGoroutine()
			}
			if after > before {
				t.Errorf("%d goroutines after close, %d before", after, before)
			}
			if out := ipn(t, ns, "-o", "link", "show"); strings.Contains(out, tunName) {
				t.Errorf("%s still exists after close: %s", tunName, out)
			}
		})
	}
}

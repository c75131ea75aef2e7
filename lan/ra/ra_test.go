package ra_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"

	"github.com/shim6gw/shim6gw/lan/ra"
)

var (
	ulidPrefix  = netip.MustParsePrefix("2001:db8:a:1::/64")
	slaacPrefix = netip.MustParsePrefix("2001:db8:a:5::/64")
	mac         = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
)

func newAdvertiser(t *testing.T, slaac bool, edit func(*ra.Config)) *ra.Advertiser {
	t.Helper()
	cfg := ra.DefaultConfig()
	cfg.Enabled, cfg.MTU = true, 1500
	cfg.DNSServers = []netip.Addr{netip.MustParseAddr("2001:db8:a:1::53")}
	cfg.DomainSearch = []string{"site.example"}
	if edit != nil {
		edit(&cfg)
	}
	o := ra.Options{OnLink: ulidPrefix, HardwareAddr: mac}
	if slaac {
		o.SLAAC = slaacPrefix
	}
	a, err := ra.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		panic(err)
	}
	return b
}

func TestMessageBytes(t *testing.T) {
	a := newAdvertiser(t, true, nil)
	got, err := ndp.MarshalMessage(a.Message(30 * time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(`
		86 00 0000  40 c0 0708  00000000 00000000
		01 01 020000000001
		05 01 0000 000005dc
		03 04 40 80 00015180 00003840 00000000 20010db8000a00010000000000000000
		03 04 40 c0 00015180 00003840 00000000 20010db8000a00050000000000000000
		19 03 0000 00000258 20010db8000a00010000000000000053
		1f 03 0000 00000258 0473697465076578616d706c65000000`)
	// RA: hop limit 64, M=1 O=1, router lifetime 1800 s; SLLA; MTU 1500;
	// the ULID /64 with L=1 A=0; the SLAAC /64 with L=1 A=1; RDNSS and
	// DNSSL with lifetime 3 × 200 s (RFC 8106 §5.1).
	if !bytes.Equal(got, want) {
		t.Errorf("RA bytes\n got %x\nwant %x", got, want)
	}
	final, _ := ndp.MarshalMessage(a.Message(0))
	if final[6] != 0 || final[7] != 0 {
		t.Errorf("final RA router lifetime %x", final[6:8])
	}
}

func TestMessageWithoutSLAACHasNoAutonomousPrefix(t *testing.T) {
	m := newAdvertiser(t, false, func(c *ra.Config) { c.Managed, c.Other, c.Preference = false, true, "high" }).Message(time.Minute)
	if m.ManagedConfiguration || !m.OtherConfiguration || m.RouterSelectionPreference != ndp.High {
		t.Errorf("flags %+v", m)
	}
	n := 0
	for _, o := range m.Options {
		if p, ok := o.(*ndp.PrefixInformation); ok {
			n++
			if p.AutonomousAddressConfiguration || p.Prefix != ulidPrefix.Addr() {
				t.Errorf("prefix %+v", p)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d prefixes", n)
	}
}

func rs(opts ...ndp.Option) []byte {
	b, err := ndp.MarshalMessage(&ndp.RouterSolicitation{Options: opts})
	if err != nil {
		panic(err)
	}
	return b
}

func TestReceiveValidatesAndCounts(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	slla := &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: net.HardwareAddr{2, 0, 0, 0, 0, 9}}
	ns, _ := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: netip.MustParseAddr("2001:db8:a:5::7")})
	nsMcast, _ := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: netip.MustParseAddr("2001:db8:a:5::7")})
	nsMcast[8] = 0xff // target ff01:db8:...
	badCode := rs()
	badCode[1] = 1
	for _, tc := range []struct {
		name   string
		in     []byte
		src    netip.Addr
		hop    int
		answer bool
		drop   ra.DropReason
	}{
		{"rs", rs(), ll, 255, true, ra.NumDropReasons},
		{"rs with slla", rs(slla), ll, 255, true, ra.NumDropReasons},
		{"rs from :: without slla", rs(), netip.IPv6Unspecified(), 255, true, ra.NumDropReasons},
		{"rs hop limit unknown", rs(), ll, -1, true, ra.NumDropReasons},
		{"rs from :: with slla", rs(slla), netip.IPv6Unspecified(), 255, false, ra.DropSource},
		{"rs routed", rs(), ll, 64, false, ra.DropHopLimit},
		{"rs code 1", badCode, ll, 255, false, ra.DropCode},
		{"rs short", []byte{133, 0, 0}, ll, 255, false, ra.DropMalformed},
		{"rs zero-length option", append(rs(), 1, 0, 0, 0, 0, 0, 0, 0), ll, 255, false, ra.DropMalformed},
		{"rs option overrun", append(rs(), 1, 2, 0, 0), ll, 255, false, ra.DropMalformed},
		{"ns", ns, ll, 255, false, ra.NumDropReasons},
		{"ns multicast target", nsMcast, ll, 255, false, ra.DropTarget},
		{"ra", func() []byte { b, _ := ndp.MarshalMessage(&ndp.RouterAdvertisement{}); return b }(), ll, 255, false, ra.DropOtherType},
	} {
		a := newAdvertiser(t, false, nil)
		if got := a.Receive(tc.in, tc.src, tc.hop); got != tc.answer {
			t.Errorf("%s: answer %v", tc.name, got)
		}
		st := a.Stats()
		for r := range ra.NumDropReasons {
			want := uint64(0)
			if r == tc.drop {
				want = 1
			}
			if got := st.Dropped[r].Load(); got != want {
				t.Errorf("%s: %v counted %d", tc.name, r, got)
			}
		}
	}
}

// fakeConn records RAs with their (bubble) time and delivers queued input.
type fakeConn struct {
	mu     sync.Mutex
	sent   []sent
	in     chan []byte
	closed chan struct{}
	once   sync.Once
}

type sent struct {
	at       time.Duration
	lifetime time.Duration
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []byte, 16), closed: make(chan struct{})}
}

var start time.Time

func (c *fakeConn) ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error) {
	select {
	case p := <-c.in:
		return copy(b, p), &ipv6.ControlMessage{HopLimit: 255}, netip.MustParseAddr("fe80::9"), nil
	case <-c.closed:
		return 0, nil, netip.Addr{}, net.ErrClosed
	}
}

func (c *fakeConn) WriteTo(m ndp.Message, _ *ipv6.ControlMessage, dst netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if dst != netip.MustParseAddr("ff02::1") {
		panic("RA to " + dst.String())
	}
	c.sent = append(c.sent, sent{time.Since(start), m.(*ndp.RouterAdvertisement).RouterLifetime})
	return nil
}

func (c *fakeConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

func (c *fakeConn) log() []sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sent(nil), c.sent...)
}

func TestRunSchedulesInitialPeriodicSolicitedAndFinal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start = time.Now()
		a := newAdvertiser(t, false, func(c *ra.Config) { c.Interval = 100 * time.Second })
		c := newFakeConn()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- a.Run(ctx, c) }()
		stopped := false
		stop := func() error {
			if stopped {
				return nil
			}
			stopped = true
			cancel()
			return <-done
		}
		defer stop()
		time.Sleep(4100 * time.Millisecond)
		// A burst of RSs 0.1 s after an RA: one answer, 3 s after it.
		for range 10 {
			c.in <- rs()
		}
		time.Sleep(6 * time.Second)
		got := c.log()
		// Three initial RAs 2 s apart, then the answer.
		want := []time.Duration{0, 2 * time.Second, 4 * time.Second, 7 * time.Second}
		if len(got) != len(want) {
			t.Fatalf("RAs %v, want at %v", got, want)
		}
		for i, w := range want {
			if got[i].at != w {
				t.Errorf("RA %d at %v, want %v", i, got[i].at, w)
			}
		}
		if n := a.Stats().Solicitations.Load(); n != 10 {
			t.Errorf("%d solicitations counted", n)
		}
		// The next periodic RA comes 75..100 s after the last.
		time.Sleep(100 * time.Second)
		got = c.log()
		if len(got) != 5 || got[4].at < 82*time.Second || got[4].at > 107*time.Second {
			t.Fatalf("periodic RA %v", got)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		got = c.log()
		if f := got[len(got)-1]; f.lifetime != 0 {
			t.Errorf("last RA lifetime %v, want 0", f.lifetime)
		}
		for _, s := range got[:len(got)-1] {
			if s.lifetime != ra.DefaultRouterLifetime {
				t.Errorf("RA lifetime %v", s.lifetime)
			}
		}
	})
}

func TestConfigValidateNamesKeys(t *testing.T) {
	c := ra.DefaultConfig()
	c.Interval, c.Preference, c.MTU = time.Second, "top", 100
	err := c.Validate("lan.ra")
	for _, k := range []string{"lan.ra.interval", "lan.ra.preference", "lan.ra.mtu"} {
		if err == nil || !strings.Contains(err.Error(), k+":") {
			t.Errorf("error %v does not name %s", err, k)
		}
	}
	d := ra.DefaultConfig()
	if err := d.Validate("lan.ra"); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func FuzzReceive(f *testing.F) {
	f.Add(rs(), 255)
	ns, _ := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: netip.MustParseAddr("2001:db8::1"),
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}})
	f.Add(ns, 255)
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 64)
	a, err := ra.New(ra.DefaultConfig(), ra.Options{OnLink: ulidPrefix})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, hop int) {
		for _, src := range []netip.Addr{netip.IPv6Unspecified(), netip.MustParseAddr("fe80::1")} {
			if a.Receive(b, src, hop) && (len(b) < 8 || b[0] != 133) {
				t.Fatalf("answered a non-RS %x", b)
			}
		}
	})
}

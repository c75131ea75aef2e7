package slaac

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/songgao/water"

	"github.com/shim6gw/shim6gw/lan/internal/nstest"
	"github.com/shim6gw/shim6gw/lan/ra"
)

// TestIntegrationSLAACHostTalksThroughTranslation: a host namespace
// configures itself from the gateway's RA in translation mode and opens a
// TCP connection to a peer namespace. The gateway namespace routes
// everything through a TUN whose reader runs Outbound and Inbound, as the
// data plane does: the peer sees the entry's ULID, the kernels on both
// sides accept the checksums, and the echo comes back to the host.
func TestIntegrationSLAACHostTalksThroughTranslation(t *testing.T) {
	gw, host, peerNS := nstest.New(t, "sl-gw"), nstest.New(t, "sl-host"), nstest.New(t, "sl-peer")
	nstest.Veth(t, gw, "lan0", host, "eth0")
	nstest.Veth(t, gw, "up0", peerNS, "eth0")
	f := newFixture(t, nil)
	want := f.ulid(4)

	gw.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	gw.Run(t, "ip", "-6", "addr", "add", "2001:db8:a:5::1/64", "dev", "lan0")
	gw.Run(t, "ip", "-6", "addr", "add", "2001:db8:c:1::1/64", "dev", "up0")
	peerNS.Run(t, "ip", "-6", "addr", "add", peer.String()+"/64", "dev", "eth0")
	peerNS.Run(t, "ip", "-6", "route", "add", "2001:db8:a:1::/64", "via", "2001:db8:c:1::1")

	// The TUN and the policy rules that send LAN and uplink traffic into it.
	var tun *water.Interface
	if err := gw.Do(func() (err error) {
		tun, err = water.New(water.Config{DeviceType: water.TUN, PlatformSpecificParams: water.PlatformSpecificParams{Name: "tun0"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	gw.Run(t, "ip", "link", "set", "tun0", "up")
	gw.Run(t, "ip", "-6", "route", "add", "default", "dev", "tun0", "table", "100")
	gw.Run(t, "ip", "-6", "rule", "add", "iif", "lan0", "lookup", "100")
	gw.Run(t, "ip", "-6", "rule", "add", "iif", "up0", "lookup", "100")
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		buf := make([]byte, 65536)
		for {
			n, err := tun.Read(buf)
			if err != nil {
				return
			}
			v := f.tr.Outbound(buf, 0, n, f.now)
			if v == Untouched {
				v = f.tr.Inbound(buf, 0, n, f.now)
			}
			if v != Drop {
				_, _ = tun.Write(buf[:n])
			}
		}
	}()
	t.Cleanup(func() { tun.Close(); <-loopDone })

	// RAs with the SLAAC prefix, so the host builds its address.
	adv, err := ra.New(ra.DefaultConfig(), ra.Options{OnLink: sitePrefixes[0], SLAAC: slaacPrefix})
	if err != nil {
		t.Fatal(err)
	}
	var conn *ndp.Conn
	if err := gw.Do(func() (err error) { conn, err = ra.Listen("lan0", 5*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	raDone := make(chan error, 1)
	go func() { raDone <- adv.Run(ctx, conn) }()
	t.Cleanup(func() { cancel(); <-raDone })

	// The peer echoes and reports who called.
	var ln net.Listener
	if err := peerNS.Do(func() (err error) { ln, err = net.Listen("tcp6", "[::]:7777"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	remote := make(chan netip.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		remote <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
		_, _ = io.Copy(c, c)
	}()

	var hostAddr netip.Addr
	if !nstest.Eventually(15*time.Second, func() bool {
		l, _ := host.Link.LinkByName("eth0")
		as, _ := host.Link.AddrList(l, 10)
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && slaacPrefix.Contains(ip) {
				hostAddr = ip
				return true
			}
		}
		return false
	}) {
		t.Fatal("host built no SLAAC address")
	}
	var got []byte
	err = host.Do(func() error {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: hostAddr.AsSlice()}}
		c, err := d.Dial("tcp6", "[2001:db8:c:1::80]:7777")
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := make([]byte, 3000) // more than one segment
		for i := range msg {
			msg[i] = byte(i)
		}
		if _, err := c.Write(msg); err != nil {
			return err
		}
		got = make([]byte, len(msg))
		_, err = io.ReadFull(c, got)
		return err
	})
	if err != nil {
		t.Fatalf("TCP through the translation: %v (stats %+v)", err, f.tr.Stats())
	}
	if r := <-remote; r != want {
		t.Errorf("peer saw %v, want the ULID of entry 4 %v", r, want)
	}
	if m := f.tr.Mappings(); len(m) != 1 || m[0].Host != hostAddr {
		t.Errorf("mappings %+v, want %v", m, hostAddr)
	}
	if st := f.tr.Stats(); st.TranslatedOut == 0 || st.TranslatedIn == 0 {
		t.Errorf("stats %+v", st)
	}
}

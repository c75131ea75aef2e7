// Package ra sends the gateway's Router Advertisements on the LAN
// (RFC 4861 §6.2) with github.com/mdlayher/ndp: M=1 and O=1 so hosts ask
// DHCPv6 for their address and DNS, the ULID /64 on-link with A=0 (hosts
// must not build SLAAC addresses that are not in the HBA book), the
// router lifetime, the MTU, RDNSS and DNSSL (RFC 8106), and in SLAAC
// translation mode the slaac_prefix with A=1. It answers Router
// Solicitations and sends a final RA with router lifetime 0 when it stops
// (§6.2.5), so hosts drop the gateway as default router at once.
//
// Every answer is a multicast RA, and at most one goes out per 3 s
// (MIN_DELAY_BETWEEN_RAS, §6.2.6) whatever the number of solicitations:
// a host flooding RSs costs the gateway a parse per packet and nothing
// more. Malformed RS and NS messages are dropped and counted by reason.
package ra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// RFC 4861 §10 constants.
const (
	maxInitialAdverts  = 3
	maxInitialInterval = 16 * time.Second
	minDelayBetweenRAs = 3 * time.Second
	hopLimit           = 255
)

// initialInterval spaces the first RAs after start (≤ maxInitialInterval).
const initialInterval = 2 * time.Second

// DropReason says why a received RS or NS was ignored.
type DropReason uint8

// Drop reasons, a closed set (metric label values).
const (
	DropMalformed DropReason = iota // does not parse (ndp.ParseMessage)
	DropHopLimit                    // hop limit not 255: not from the link (§6.1.1, §7.1.1)
	DropCode                        // ICMP code not 0
	DropSource                      // unspecified source with a link-layer address option
	DropTarget                      // NS target is multicast (§7.1.1)
	DropOtherType                   // neither RS nor NS
	NumDropReasons
)

var dropNames = [...]string{"malformed", "hop_limit", "code", "source", "target", "other_type"}

func (r DropReason) String() string { return dropNames[r] }

// Stats are the advertiser's counters.
type Stats struct {
	Sent          atomic.Uint64 // RAs sent
	SendErrors    atomic.Uint64
	Solicitations atomic.Uint64 // valid RSs received
	Neighbor      atomic.Uint64 // valid NSs received (answered by the kernel)
	Dropped       [NumDropReasons]atomic.Uint64
}

// Options are the run-time inputs of an Advertiser.
type Options struct {
	// OnLink is the ULID /64 (the first uplink's LAN prefix), sent with
	// L=1, A=0.
	OnLink netip.Prefix
	// SLAAC, when valid, is the translation-mode /64, sent with L=1, A=1.
	SLAAC netip.Prefix
	// HardwareAddr of the LAN interface, sent as source link-layer
	// address so hosts need not resolve the router.
	HardwareAddr net.HardwareAddr
	Logger       *slog.Logger
}

// Conn is what the advertiser needs of an *ndp.Conn.
type Conn interface {
	ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error)
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	Close() error
}

// Advertiser sends RAs on one interface.
type Advertiser struct {
	cfg   Config
	o     Options
	log   *slog.Logger
	stats Stats
}

var preferences = map[string]ndp.Preference{"low": ndp.Low, "medium": ndp.Medium, "high": ndp.High}

// New returns an advertiser for cfg.
func New(cfg Config, o Options) (*Advertiser, error) {
	if err := cfg.Validate("ra"); err != nil {
		return nil, fmt.Errorf("ra: %w", err)
	}
	if !o.OnLink.Addr().Is6() || o.OnLink.Bits() != 64 {
		return nil, fmt.Errorf("ra: on-link prefix %v is not an IPv6 /64", o.OnLink)
	}
	if o.SLAAC.IsValid() && (!o.SLAAC.Addr().Is6() || o.SLAAC.Bits() != 64) {
		return nil, fmt.Errorf("ra: SLAAC prefix %v is not an IPv6 /64 (RFC 4862 needs 64-bit interface identifiers)", o.SLAAC)
	}
	a := &Advertiser{cfg: cfg, o: o, log: o.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "ra")
	return a, nil
}

// Stats returns the live counters.
func (a *Advertiser) Stats() *Stats { return &a.stats }

// Message returns the RA to send with the given router lifetime.
func (a *Advertiser) Message(routerLifetime time.Duration) *ndp.RouterAdvertisement {
	c := &a.cfg
	m := &ndp.RouterAdvertisement{
		CurrentHopLimit:           64,
		ManagedConfiguration:      c.Managed,
		OtherConfiguration:        c.Other,
		RouterSelectionPreference: preferences[c.Preference],
		RouterLifetime:            routerLifetime,
	}
	if len(a.o.HardwareAddr) > 0 {
		m.Options = append(m.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: a.o.HardwareAddr})
	}
	if c.MTU != 0 {
		m.Options = append(m.Options, ndp.NewMTU(uint32(c.MTU)))
	}
	m.Options = append(m.Options, &ndp.PrefixInformation{
		PrefixLength: 64, OnLink: true, AutonomousAddressConfiguration: false,
		ValidLifetime: c.PrefixValidLifetime, PreferredLifetime: c.PrefixPreferredLifetime, Prefix: a.o.OnLink.Addr(),
	})
	if a.o.SLAAC.IsValid() {
		m.Options = append(m.Options, &ndp.PrefixInformation{
			PrefixLength: 64, OnLink: true, AutonomousAddressConfiguration: true,
			ValidLifetime: c.PrefixValidLifetime, PreferredLifetime: c.PrefixPreferredLifetime, Prefix: a.o.SLAAC.Addr(),
		})
	}
	dnsLife := 3 * c.Interval // RFC 8106 §5.1
	if len(c.DNSServers) > 0 {
		m.Options = append(m.Options, &ndp.RecursiveDNSServer{Lifetime: dnsLife, Servers: c.DNSServers})
	}
	if len(c.DomainSearch) > 0 {
		m.Options = append(m.Options, &ndp.DNSSearchList{Lifetime: dnsLife, DomainNames: c.DomainSearch})
	}
	return m
}

// Receive validates one ICMPv6 message received on the LAN (b from the
// ICMPv6 header on, src its source, hop the IPv6 hop limit or -1 when
// unknown) and reports whether it is a Router Solicitation to answer.
// Anything else is counted: a valid NS, or a drop with its reason.
func (a *Advertiser) Receive(b []byte, src netip.Addr, hop int) bool {
	m, err := ndp.ParseMessage(b)
	switch {
	case err != nil:
		return a.drop(DropMalformed)
	case hop >= 0 && hop != hopLimit:
		return a.drop(DropHopLimit)
	case b[1] != 0:
		return a.drop(DropCode)
	}
	switch m := m.(type) {
	case *ndp.RouterSolicitation:
		// RFC 4861 §6.1.1: no source link-layer address from ::.
		if src.IsUnspecified() && hasSLLA(m.Options) {
			return a.drop(DropSource)
		}
		a.stats.Solicitations.Add(1)
		return true
	case *ndp.NeighborSolicitation:
		if m.TargetAddress.IsMulticast() {
			return a.drop(DropTarget)
		}
		if src.IsUnspecified() && hasSLLA(m.Options) {
			return a.drop(DropSource)
		}
		a.stats.Neighbor.Add(1)
		return false
	default:
		return a.drop(DropOtherType)
	}
}

func (a *Advertiser) drop(r DropReason) bool {
	a.stats.Dropped[r].Add(1)
	return false
}

func hasSLLA(opts []ndp.Option) bool {
	for _, o := range opts {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Source {
			return true
		}
	}
	return false
}

// allNodes is where every RA goes.
var allNodes = netip.MustParseAddr("ff02::1")

// Run sends RAs on conn until ctx ends, then sends the final RA with
// router lifetime 0 and closes conn. It returns nil after a clean stop.
func (a *Advertiser) Run(ctx context.Context, conn Conn) error {
	rs := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() { readErr <- a.read(conn, rs) }()

	send := func(lifetime time.Duration) {
		if err := conn.WriteTo(a.Message(lifetime), nil, allNodes); err != nil {
			if a.stats.SendErrors.Add(1) == 1 {
				a.log.Warn("sending a router advertisement", "err", err)
			}
			return
		}
		a.stats.Sent.Add(1)
	}
	a.log.Info("advertising", "on_link", a.o.OnLink, "slaac", a.o.SLAAC, "router_lifetime", a.cfg.RouterLifetime)
	var last time.Time
	initial := maxInitialAdverts
	t := time.NewTimer(0)
	defer t.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-readErr:
			break loop
		case <-rs:
			// Answer soon, but never twice within minDelayBetweenRAs.
			wait := time.Until(last.Add(minDelayBetweenRAs))
			t.Reset(max(wait, 0))
			continue
		case <-t.C:
		}
		send(a.cfg.RouterLifetime)
		last = time.Now()
		next := a.cfg.Interval*3/4 + rand.N(a.cfg.Interval/4+1)
		if initial > 1 {
			initial--
			next = min(next, initialInterval, maxInitialInterval)
		}
		t.Reset(next)
	}
	send(0)
	a.log.Info("final router advertisement sent, stopping")
	conn.Close()
	if rerr := <-readErr; err == nil && !errors.Is(rerr, net.ErrClosed) {
		err = rerr
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("ra: %w", err)
	}
	return nil
}

// read receives until conn is closed; every RS to answer pokes rs.
func (a *Advertiser) read(conn Conn, rs chan<- struct{}) error {
	buf := make([]byte, 1<<16)
	for {
		n, cm, src, err := conn.ReadRaw(buf)
		if err != nil {
			return err
		}
		hop := -1
		if cm != nil {
			hop = cm.HopLimit
		}
		if a.Receive(buf[:n], src, hop) {
			select {
			case rs <- struct{}{}:
			default: // an answer is already due
			}
		}
	}
}

// Listen opens the ICMPv6 socket on the LAN interface: link-local source
// (RFC 4861 §4.2), joined to all-routers, receiving only RS and NS, with
// the hop limit of each packet reported. It retries for up to wait: the
// link-local address appears a moment after the link comes up.
func Listen(ifname string, wait time.Duration) (*ndp.Conn, error) {
	c, err := listen(ifname)
	for end := time.Now().Add(wait); err != nil && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		c, err = listen(ifname)
	}
	return c, err
}

func listen(ifname string) (*ndp.Conn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("ra: %w", err)
	}
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("ra: listening on %s: %w", ifname, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	f.Accept(ipv6.ICMPTypeNeighborSolicitation)
	for _, step := range []func() error{
		func() error { return c.JoinGroup(netip.MustParseAddr("ff02::2")) },
		func() error { return c.SetICMPFilter(&f) },
		func() error { return c.SetControlMessage(ipv6.FlagHopLimit, true) },
	} {
		if err := step(); err != nil {
			c.Close()
			return nil, fmt.Errorf("ra: setting up the socket on %s: %w", ifname, err)
		}
	}
	return c, nil
}

package gateway

import (
	"context"
	"fmt"
	"github.com/shim6gw/shim6gw/gateway/config"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/lan/dhcp6"
	"github.com/shim6gw/shim6gw/lan/ra"
	"github.com/shim6gw/shim6gw/lan/slaac"
)

// LANServices are the DHCPv6 server, the RA sender and the SLAAC
// translator of one LAN interface.
type LANServices struct {
	DHCPv6 *dhcp6.Server      // nil when off
	RA     *ra.Advertiser     // nil when off
	SLAAC  *slaac.Translator  // nil when off
	cancel context.CancelFunc // stops RA and the translator's upkeep
	conns  []net.PacketConn   // DHCPv6 socket
	wg     sync.WaitGroup
}

// StartLANServices starts what c enables on the LAN interface: the
// DHCPv6 server and the RA sender (sockets bound to c.Interface) and the
// SLAAC translator's upkeep. now is the data plane's monotonic clock (the
// one whose readings the data plane passes to the translator). Close
// stops them; it sends the final RA with router lifetime 0.
func StartLANServices(c config.LANConfig, book *hba.Book, now func() int64, log *slog.Logger) (_ *LANServices, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &LANServices{cancel: cancel}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	ifi, err := net.InterfaceByName(c.Interface)
	if err != nil {
		return nil, fmt.Errorf("lan: interface %s: %w", c.Interface, err)
	}
	if c.SLAAC.Enabled() {
		if s.SLAAC, err = slaac.New(c.SLAAC, book, slaac.Options{Logger: log, Now: now}); err != nil {
			return nil, err
		}
		s.wg.Go(func() { s.SLAAC.Run(ctx, slaacUpkeep) })
	}
	if c.DHCPv6.Enabled {
		if s.DHCPv6, err = dhcp6.New(c.DHCPv6, book, dhcp6.Options{HardwareAddr: ifi.HardwareAddr, Logger: log}); err != nil {
			return nil, err
		}
		conn, err := dhcp6.Listen(c.Interface)
		if err != nil {
			return nil, err
		}
		s.conns = append(s.conns, conn)
		s.wg.Go(func() {
			if err := s.DHCPv6.Serve(conn); err != nil {
				log.Error("dhcpv6 server stopped", "err", err)
			}
		})
	}
	if c.RA.Enabled {
		o := ra.Options{OnLink: book.Prefixes()[0], HardwareAddr: ifi.HardwareAddr, Logger: log}
		if s.SLAAC != nil {
			o.SLAAC = s.SLAAC.Prefix()
		}
		if s.RA, err = ra.New(c.RA, o); err != nil {
			return nil, err
		}
		conn, err := ra.Listen(c.Interface, raListenWait)
		if err != nil {
			return nil, err
		}
		s.wg.Go(func() {
			if err := s.RA.Run(ctx, conn); err != nil {
				log.Error("router advertisements stopped", "err", err)
			}
		})
	}
	return s, nil
}

const (
	// slaacUpkeep is how often idle SLAAC mappings are expired.
	slaacUpkeep = 10 * time.Second
	// raListenWait bounds the wait for the LAN's link-local address.
	raListenWait = 5 * time.Second
)

// Close stops every service: the final RA goes out, the DHCPv6 lease file
// and the SLAAC state file are written.
func (s *LANServices) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	for _, c := range s.conns {
		c.Close()
	}
	s.wg.Wait()
	s.conns = nil
	if s.DHCPv6 != nil {
		s.DHCPv6.Close()
	}
}

package dhcp6

import (
	"errors"
	"fmt"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/server6"
	"golang.org/x/net/ipv6"
)

// Listen opens the server socket on the LAN interface ifname: UDP port
// 547, bound to the interface, joined to All_DHCP_Relay_Agents_and_Servers
// (ff02::1:2, RFC 8415 §7.1).
func Listen(ifname string) (net.PacketConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("dhcp6: %w", err)
	}
	c, err := server6.NewIPv6UDPConn(ifname, &net.UDPAddr{IP: net.IPv6unspecified, Port: dhcpv6.DefaultServerPort})
	if err != nil {
		return nil, fmt.Errorf("dhcp6: listening on %s: %w", ifname, err)
	}
	p := ipv6.NewPacketConn(c)
	if err := p.JoinGroup(ifi, &net.UDPAddr{IP: dhcpv6.AllDHCPRelayAgentsAndServers}); err != nil {
		c.Close()
		return nil, fmt.Errorf("dhcp6: joining ff02::1:2 on %s: %w", ifname, err)
	}
	return c, nil
}

// Serve answers messages from conn until it is closed, then returns nil.
// It reads and answers one message at a time: server6.Server starts a
// goroutine per message and drops unparsable ones uncounted, and both
// matter when a host floods the link. The cost of a message is bounded by
// its size (at most 64 KiB) and by maxIAs.
func (s *Server) Serve(conn net.PacketConn) error {
	buf := make([]byte, 1<<16)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dhcp6: %w", err)
		}
		if resp := s.Handle(buf[:n]); resp != nil {
			// A lost reply is a lost datagram; the client retransmits.
			_, _ = conn.WriteTo(resp, peer)
		}
	}
}

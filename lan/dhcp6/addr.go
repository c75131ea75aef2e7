package dhcp6

import (
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

func netipFrom(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || !a.Is6() {
		return netip.Addr{}, false
	}
	return a, true
}

func hasAddr(ia *dhcpv6.OptIANA, want netip.Addr) bool {
	for _, a := range ia.Options.Addresses() {
		if got, ok := netipFrom(a.IPv6Addr); ok && got == want {
			return true
		}
	}
	return false
}

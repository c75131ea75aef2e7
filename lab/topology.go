package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Node names one namespace of the lab (without the prefix).
type Node string

// The nodes of the topology (see the package doc).
const (
	H1     Node = "h1"
	GW1    Node = "gw1"
	ISPA1  Node = "ispa1"
	ISPB1  Node = "ispb1"
	Core   Node = "core"
	ISPA2  Node = "ispa2"
	ISPB2  Node = "ispb2"
	GW2    Node = "gw2"
	H2     Node = "h2"
	Legacy Node = "legacy"
)

// Nodes lists every node in creation order.
var Nodes = []Node{H1, GW1, ISPA1, ISPB1, Core, ISPA2, ISPB2, GW2, H2, Legacy}

// Interface names inside the namespaces.
const (
	HostIf    = "eth0" // host side of the LAN (h1, h2, legacy)
	LANIf     = "lan0" // gateway side of the LAN
	UplinkAIf = "upA"  // gateway towards ISP A
	UplinkBIf = "upB"  // gateway towards ISP B
	CustIf    = "cust" // ISP router towards its customer's gateway
	CoreIf    = "core" // ISP router towards the core
)

// Sentinel errors.
var (
	// ErrNotISP: a failure was asked for on a node that is no ISP router.
	ErrNotISP = errors.New("lab: not an ISP router")
	// ErrBadPrefix: Options.Prefix does not start with "s6lab".
	ErrBadPrefix = errors.New("lab: namespace prefix must start with s6lab")
	// ErrClosed: Down ran (a lab is built once).
	ErrClosed = errors.New("lab: closed")
	// ErrTool: a required command-line tool is missing.
	ErrTool = errors.New("lab: missing tool")
)

// Uplink is one provider of a site, with the addresses on its link.
type Uplink struct {
	Name       string       // "a" or "b"
	ISP        Node         // the provider's router
	Interface  string       // the gateway's interface towards it
	Prefix     netip.Prefix // P_X, the /48 the provider assigns
	LAN        netip.Prefix // the site's LAN /64 under Prefix
	GatewayLAN netip.Addr   // the gateway's lan0 address in LAN
	ISPAddr    netip.Addr   // the ISP router's address on the uplink
	GWAddr     netip.Addr   // the gateway's address on the uplink
	CoreNet    netip.Prefix // the ISP–core link /64
	Table      int          // kernel-forwarding mode: routing table for "from Prefix"
}

// Site is one multihomed site: host, gateway, two providers.
type Site struct {
	Index   int // 1 or 2
	Host    Node
	Gateway Node
	A, B    Uplink
}

// Uplinks returns the site's uplinks, A first.
func (s Site) Uplinks() []Uplink { return []Uplink{s.A, s.B} }

// HostAddr returns the host's default address under uplink u's LAN
// (<LAN>::100).
func (u Uplink) HostAddr() netip.Addr { return addrIn(u.LAN, 0x100) }

// Legacy site addressing.
var (
	LegacyPrefix = netip.MustParsePrefix("2001:db8:c::/48")
	LegacyLAN    = netip.MustParsePrefix("2001:db8:c:1::/64")
	LegacyAddr   = netip.MustParseAddr("2001:db8:c:1::100")
	legacyCore   = netip.MustParseAddr("2001:db8:c:1::1")
)

// Site1 and Site2 are the addressing plan of the two sites.
var (
	Site1 = newSite(1, H1, GW1, ISPA1, ISPB1, 0xa1, 0xb1)
	Site2 = newSite(2, H2, GW2, ISPA2, ISPB2, 0xa2, 0xb2)
)

func newSite(i int, host, gw, ispa, ispb Node, a, b uint16) Site {
	up := func(name string, isp Node, ifname string, tag uint16, table int) Uplink {
		p := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(tag >> 8), byte(tag)}), 48)
		lan := subnet64(p, 1)
		link := subnet64(p, 0xffff)
		core := subnet64(netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0x00}), 48), tag)
		return Uplink{Name: name, ISP: isp, Interface: ifname, Prefix: p, LAN: lan,
			GatewayLAN: addrIn(lan, 1), ISPAddr: addrIn(link, 1), GWAddr: addrIn(link, 2),
			CoreNet: core, Table: table}
	}
	return Site{Index: i, Host: host, Gateway: gw,
		A: up("a", ispa, UplinkAIf, a, 100), B: up("b", ispb, UplinkBIf, b, 101)}
}

// subnet64 returns the /64 with subnet ID id under the /48 p.
func subnet64(p netip.Prefix, id uint16) netip.Prefix {
	b := p.Addr().As16()
	b[6], b[7] = byte(id>>8), byte(id)
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// addrIn returns the address with interface ID iid in the /64 p.
func addrIn(p netip.Prefix, iid uint64) netip.Addr {
	b := p.Addr().As16()
	for i := 0; i < 8; i++ {
		b[15-i] = byte(iid >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

// isp returns the site and uplink that ISP router n serves.
func ispOf(n Node) (Site, Uplink, error) {
	for _, s := range []Site{Site1, Site2} {
		for _, u := range s.Uplinks() {
			if u.ISP == n {
				return s, u, nil
			}
		}
	}
	return Site{}, Uplink{}, fmt.Errorf("%w: %q", ErrNotISP, n)
}

// coreIfName is the core's interface towards ISP n (or the legacy host).
func coreIfName(n Node) string { return string(n) }

// link is one veth pair.
type link struct {
	a     Node
	aName string
	b     Node
	bName string
}

// links returns the veth pairs of the topology.
func links() []link {
	ls := []link{}
	for _, s := range []Site{Site1, Site2} {
		ls = append(ls, link{s.Host, HostIf, s.Gateway, LANIf})
		for _, u := range s.Uplinks() {
			ls = append(ls, link{s.Gateway, u.Interface, u.ISP, CustIf},
				link{u.ISP, CoreIf, Core, coreIfName(u.ISP)})
		}
	}
	return append(ls, link{Legacy, HostIf, Core, coreIfName(Legacy)})
}

// ipConfig returns the `ip -batch` lines that configure node n (addresses,
// routes, policy rules) for the given mode and host addresses.
func ipConfig(n Node, mode Mode, hostAddrs map[Node][]netip.Addr) []string {
	var l []string
	add := func(format string, args ...any) { l = append(l, fmt.Sprintf(format, args...)) }
	addr := func(ifname string, a netip.Addr, bits int) {
		add("addr add %s/%d dev %s nodad", a, bits, ifname)
	}
	add("link set lo up")
	switch n {
	case H1, H2:
		s := siteOf(n)
		for _, a := range hostAddrs[n] {
			addr(HostIf, a, 64)
		}
		add("link set %s up", HostIf)
		// The LAN /64s are on-link (kernel routes of the addresses); the
		// default goes to the gateway's P_A address.
		add("route replace default via %s dev %s", s.A.GatewayLAN, HostIf)
	case GW1, GW2:
		s := siteOf(n)
		for _, u := range s.Uplinks() {
			addr(LANIf, u.GatewayLAN, 64)
			addr(u.Interface, u.GWAddr, 64)
			add("link set %s up", u.Interface)
		}
		add("link set %s up", LANIf)
		if mode == KernelForwarding {
			// LAN and link routes from main first, then the exit by source
			// (what the providers' ingress filters demand).
			add("rule add pref 100 lookup main suppress_prefixlength 0")
			for i, u := range s.Uplinks() {
				add("route replace default via %s dev %s table %d", u.ISPAddr, u.Interface, u.Table)
				add("rule add pref %d from %s lookup %d", 110+i, u.Prefix, u.Table)
			}
		}
	case ISPA1, ISPB1, ISPA2, ISPB2:
		_, u, _ := ispOf(n)
		addr(CustIf, u.ISPAddr, 64)
		addr(CoreIf, addrIn(u.CoreNet, 2), 64)
		add("link set %s up", CustIf)
		add("link set %s up", CoreIf)
		add("route replace %s via %s dev %s", u.Prefix, u.GWAddr, CustIf)
		add("route replace default via %s dev %s", addrIn(u.CoreNet, 1), CoreIf)
	case Core:
		for _, s := range []Site{Site1, Site2} {
			for _, u := range s.Uplinks() {
				ifname := coreIfName(u.ISP)
				addr(ifname, addrIn(u.CoreNet, 1), 64)
				add("link set %s up", ifname)
				add("route replace %s via %s dev %s", u.Prefix, addrIn(u.CoreNet, 2), ifname)
			}
		}
		addr(coreIfName(Legacy), legacyCore, 64)
		add("link set %s up", coreIfName(Legacy))
	case Legacy:
		for _, a := range hostAddrs[n] {
			addr(HostIf, a, 64)
		}
		add("link set %s up", HostIf)
		add("route replace default via %s dev %s", legacyCore, HostIf)
	}
	return l
}

// siteOf returns the site whose host or gateway n is.
func siteOf(n Node) Site {
	if n == H2 || n == GW2 {
		return Site2
	}
	return Site1
}

// forwards reports whether node n forwards packets in the given mode.
func forwards(n Node, mode Mode) bool {
	switch n {
	case H1, H2, Legacy, H1D, H1S:
		return false
	case GW1, GW2, GW1A, GW1B:
		return mode == KernelForwarding
	}
	return true
}

// ingressFilter returns the nft script of ISP router n: the BCP 38 filter
// on the customer interface, and empty blackhole chains that FailBlackhole
// fills. The table lives in the namespace and goes with it.
func ingressFilter(n Node, table string) string {
	_, u, _ := ispOf(n)
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", table)
	fmt.Fprintf(&b, "  counter ingress_drops { }\n  counter blackhole_drops { }\n")
	fmt.Fprintf(&b, "  chain ingress_filter {\n    type filter hook forward priority 0; policy accept;\n")
	fmt.Fprintf(&b, "    iifname %q ip6 saddr != %s counter name ingress_drops drop\n", CustIf, u.Prefix)
	fmt.Fprintf(&b, "    iifname %q meta nfproto != ipv6 counter name ingress_drops drop\n  }\n", CustIf)
	for _, c := range []struct{ name, hook string }{{"bh_in", "input"}, {"bh_out", "output"}, {"bh_fwd", "forward"}} {
		fmt.Fprintf(&b, "  chain %s {\n    type filter hook %s priority -10; policy accept;\n  }\n", c.name, c.hook)
	}
	b.WriteString("}\n")
	return b.String()
}

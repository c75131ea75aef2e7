package lab

// Hosts that join site 1's LAN without hand configuration (issue 11,
// docs/operations.md §3): with Options.LANHosts, h1's eth0 becomes the
// LAN's switch (a bridge) with three ports: the veth to gw1's lan0 and one
// veth each to h1d, which runs Debian's ISC dhclient -6 against gw1's
// DHCPv6 server, and h1s, which only does SLAAC from gw1's RAs in
// translation mode. h1 keeps its static address on the bridge.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The LAN hosts of site 1 (Options.LANHosts).
const (
	H1D Node = "h1d" // DHCPv6 client
	H1S Node = "h1s" // SLAAC only, translated by the gateway
)

// How a host got its address (StreamStats.Addressing).
const (
	AddrStatic          = "static"
	AddrDHCPv6          = "dhcpv6"
	AddrSLAACTranslated = "slaac-translated"
)

// Book entries of site 1 per addressing mode (hba.hosts is 16): static
// hosts below DHCPv6FirstEntry, then the DHCPv6 pool, then the SLAAC
// translation pool.
const (
	DHCPv6FirstEntry = 4
	DHCPv6Entries    = 4
	SLAACFirstEntry  = 8
	SLAACEntries     = 8
)

// SLAACPrefix is site 1's lan.slaac_prefix (not a book prefix);
// SLAACGatewayAddr is gw1's address in it on lan0, the route back to the
// SLAAC hosts.
var (
	SLAACPrefix      = subnet64(Site1.A.Prefix, 5)
	SLAACGatewayAddr = addrIn(SLAACPrefix, 1)
)

// lanPort is h1's bridge port towards node n.
func lanPort(n Node) string { return "lan-" + string(n) }

// lanHostWait bounds the wait for h1d's lease and h1s's SLAAC address.
const lanHostWait = 20 * time.Second

// LANServicesConfig returns the lines under "lan:" of site 1's gateway
// in a LANHosts lab: DHCPv6 with the lease file in dir, RAs (interval at
// its minimum, so hosts learn the router fast), SLAAC translation with
// its state file in dir. Lifetimes are short so that renewals happen
// within a test.
func LANServicesConfig(dir string) string {
	return fmt.Sprintf(`  dhcpv6:
    enabled: true
    first_entry: %d
    entries: %d
    preferred_lifetime: 1m
    valid_lifetime: 2m
    lease_file: %s
  ra:
    enabled: true
    interval: 4s
    router_lifetime: 30s
  slaac_prefix: %s
  slaac:
    first_entry: %d
    entries: %d
    state_file: %s
`, DHCPv6FirstEntry, DHCPv6Entries, filepath.Join(dir, "gw1-dhcpv6-leases.json"),
		SLAACPrefix, SLAACFirstEntry, SLAACEntries, filepath.Join(dir, "gw1-slaac.json"))
}

// lanHostSysctls are the sysctls of node n beyond Up's defaults: the LAN
// hosts take RAs (a default route, the on-link prefixes); only h1s builds
// addresses from them. Set before the interfaces exist ("default").
func lanHostSysctls(n Node) []string {
	switch n {
	case H1D:
		return []string{"net.ipv6.conf.default.accept_ra=1", "net.ipv6.conf.default.autoconf=0"}
	case H1S:
		return []string{"net.ipv6.conf.default.accept_ra=1", "net.ipv6.conf.default.autoconf=1"}
	}
	return nil
}

// lanLinks rewires site 1's LAN for LANHosts: gw1's lan0 and both new
// hosts are ports of h1's bridge.
func lanLinks(ls []link) []link {
	var out []link
	for _, k := range ls {
		if k.a == H1 && k.b == GW1 {
			out = append(out, link{H1, lanPort(GW1), GW1, LANIf},
				link{H1D, HostIf, H1, lanPort(H1D)}, link{H1S, HostIf, H1, lanPort(H1S)})
			continue
		}
		out = append(out, k)
	}
	return out
}

// lanNodeConfig returns the `ip -batch` lines of node n in a LANHosts
// lab, or nil when n is configured as without LANHosts.
func (l *Lab) lanNodeConfig(n Node) []string {
	switch n {
	case H1:
		return append(bridgeLines(HostIf, lanPort(GW1), lanPort(H1D), lanPort(H1S)), ipConfig(n, l.opts.Mode, l.hostAddrs)...)
	case H1D, H1S:
		return []string{"link set lo up", "link set " + HostIf + " up"}
	case GW1:
		return append(ipConfig(n, l.opts.Mode, l.hostAddrs),
			fmt.Sprintf("addr add %s/64 dev %s nodad", SLAACGatewayAddr, LANIf))
	}
	return nil
}

// DHCPClientScript is an ISC dhclient -sf script for tests: it adds and
// removes the leased address and touches nothing else. The stock
// dhclient-script would rewrite the machine's /etc/resolv.conf.
const DHCPClientScript = `#!/bin/sh
case "$reason" in
BOUND6|RENEW6|REBIND6|REBOOT6)
	if [ -n "$old_ip6_address" ] && [ "$old_ip6_address" != "$new_ip6_address" ]; then
		ip -6 addr del "$old_ip6_address/128" dev "$interface"
	fi
	ip -6 addr replace "$new_ip6_address/128" dev "$interface" valid_lft "$new_max_life" preferred_lft "$new_preferred_life" ;;
EXPIRE6|RELEASE6|STOP6)
	[ -n "$old_ip6_address" ] && ip -6 addr del "$old_ip6_address/128" dev "$interface" ;;
esac
exit 0
`

// startLANHosts starts h1d's DHCPv6 client and waits until h1d holds a
// lease and h1s a SLAAC address (Up, after the gateways).
func (l *Lab) startLANHosts(ctx context.Context) error {
	if _, err := exec.LookPath("dhclient"); err != nil {
		return fmt.Errorf("%w: dhclient (isc-dhcp-client)", ErrTool)
	}
	if _, err := l.StartDHCPClient(ctx, "h1d-dhclient6.leases"); err != nil {
		return err
	}
	a, err := l.waitAddr(ctx, H1S, func(a netip.Addr) bool { return SLAACPrefix.Contains(a) })
	if err != nil {
		return err
	}
	// The default route comes with the same RA as the prefix.
	for _, n := range []Node{H1D, H1S} {
		if err := l.waitDefaultRoute(ctx, n); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.hostAddrs[H1S] = []netip.Addr{a}
	l.mu.Unlock()
	return nil
}

// StartDHCPClient starts ISC dhclient -6 in h1d (DUID-LL, so the same
// client identity whatever the lease file), with its lease file leases
// (relative to the lab directory), after stopping the one running, and
// returns the address it leased. A fresh lease file makes the client
// Solicit as a new start: what it gets then is what the server kept.
func (l *Lab) StartDHCPClient(ctx context.Context, leases string) (netip.Addr, error) {
	l.mu.Lock()
	old := l.dhclient
	l.dhclient = nil
	dir := l.dir
	l.mu.Unlock()
	if old != nil {
		stopProcess(old)
		if _, err := l.Exec(ctx, H1D, "ip", "-6", "addr", "flush", "dev", HostIf, "scope", "global"); err != nil {
			return netip.Addr{}, err
		}
	}
	script := filepath.Join(dir, "dhclient-script")
	if err := os.WriteFile(script, []byte(DHCPClientScript), 0o755); err != nil {
		return netip.Addr{}, fmt.Errorf("lab: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "h1d-dhclient.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("lab: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	c, err := l.spawn(H1D, logf, logf, "dhclient", "-6", "-d", "-v", "-D", "LL",
		"-lf", filepath.Join(dir, leases), "-pf", filepath.Join(dir, "h1d-dhclient6.pid"), "-sf", script, HostIf)
	if err != nil {
		return netip.Addr{}, err
	}
	l.mu.Lock()
	l.dhclient = c
	l.mu.Unlock()
	a, err := l.waitAddr(ctx, H1D, func(a netip.Addr) bool { return Site1.A.LAN.Contains(a) })
	if err != nil {
		return netip.Addr{}, err
	}
	l.mu.Lock()
	l.hostAddrs[H1D] = []netip.Addr{a}
	l.mu.Unlock()
	return a, nil
}

// GlobalAddrs returns the global addresses on node n's eth0.
func (l *Lab) GlobalAddrs(ctx context.Context, n Node) ([]netip.Addr, error) {
	out, err := l.Exec(ctx, n, "ip", "-6", "-o", "addr", "show", "dev", HostIf, "scope", "global")
	if err != nil {
		return nil, err
	}
	var as []netip.Addr
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					as = append(as, p.Addr())
				}
			}
		}
	}
	return as, nil
}

// waitAddr polls node n's global addresses (at most lanHostWait) until
// one satisfies ok.
func (l *Lab) waitAddr(ctx context.Context, n Node, ok func(netip.Addr) bool) (netip.Addr, error) {
	deadline := time.Now().Add(lanHostWait)
	for {
		as, err := l.GlobalAddrs(ctx, n)
		if err != nil {
			return netip.Addr{}, err
		}
		for _, a := range as {
			if ok(a) {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			return netip.Addr{}, fmt.Errorf("lab: %s got no address after %v (has %v; see h1d-dhclient.log)", n, lanHostWait, as)
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitDefaultRoute polls (at most lanHostWait) until node n has a default
// route (learnt from an RA).
func (l *Lab) waitDefaultRoute(ctx context.Context, n Node) error {
	deadline := time.Now().Add(lanHostWait)
	for {
		out, err := l.Exec(ctx, n, "ip", "-6", "route", "show", "default")
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("lab: " + string(n) + " has no default route from an RA")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// addressing returns how host n got its address.
func addressing(n Node) string {
	switch n {
	case H1D:
		return AddrDHCPv6
	case H1S:
		return AddrSLAACTranslated
	}
	return AddrStatic
}

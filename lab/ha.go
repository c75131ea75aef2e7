package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// An HA lab (Options.HA) builds site 1 with two gateways, gw1a and gw1b,
// in place of gw1; everything else is as in the package doc:
//
//	h1 (bridge eth0) ─┬─ lan-gw1a ── lan0 gw1a upA ── cust-gw1a ─┬─ ispa1 (bridge cust)
//	                  └─ lan-gw1b ── lan0 gw1b upA ── cust-gw1b ─┘
//	                                      gw1a upB ── cust-gw1a ─┬─ ispb1 (bridge cust)
//	                                      gw1b upB ── cust-gw1b ─┘
//
// The hosts' router address (fe80::1, <P_X>:1::1) and each uplink's address
// (<P_X>:ffff::2, where the provider routes the site's /48) are keepalived
// virtual addresses; the gateways' own addresses are ::2 and ::3 on the
// LAN, ::3 and ::4 on the uplinks. Both gateways run the daemon with the
// same configuration (gw1.yaml: same HBA secret and hosts) and keepalived
// (KeepalivedConfig) with the lab's VRRP timers; gw1a starts first and
// becomes master.

// The HA gateways of site 1.
const (
	GW1A Node = "gw1a"
	GW1B Node = "gw1b"
)

// VRRPTimers are an HA lab's keepalived timers.
type VRRPTimers struct {
	// Advert is advert_int (keepalived's default: 1s).
	Advert time.Duration
}

// LabVRRP are the lab's VRRP timers: 100 ms adverts, so that the standby
// declares the master dead after 3 × 100 ms plus its skew (RFC 5798
// §6.1: Master_Down_Interval).
var LabVRRP = VRRPTimers{Advert: 100 * time.Millisecond}

// haVRID is the LAN instance's virtual router ID in the lab.
const haVRID = 61

// haState is what an HA lab remembers about its gateways.
type haState struct {
	off   map[Node]bool // powered off now
	kills map[Node]int  // PowerOff calls, so a stop knows its daemon was killed
	files []*os.File    // keepalived logs, closed by Down
}

// closeHAFiles closes the keepalived logs (Down, after the processes).
func (l *Lab) closeHAFiles() {
	l.mu.Lock()
	files := l.ha.files
	l.ha.files = nil
	l.mu.Unlock()
	for _, f := range files {
		_ = f.Close()
	}
}

// nodes lists the lab's namespaces in creation order.
func (l *Lab) nodes() []Node {
	if l.opts.LANHosts {
		return append(slices.Clone(Nodes), H1D, H1S)
	}
	if !l.opts.HA {
		return Nodes
	}
	var out []Node
	for _, n := range Nodes {
		if n == GW1 {
			out = append(out, GW1A, GW1B)
		} else {
			out = append(out, n)
		}
	}
	return out
}

// Gateways lists the gateway namespaces (gw1, gw2; or gw1a, gw1b, gw2).
func (l *Lab) Gateways() []Node {
	return append(l.siteGateways(Site1), l.siteGateways(Site2)...)
}

// HAGateways lists site 1's HA pair (nil in a lab without HA).
func (l *Lab) HAGateways() []Node {
	if !l.opts.HA {
		return nil
	}
	return []Node{GW1A, GW1B}
}

func (l *Lab) siteGateways(s Site) []Node {
	if l.opts.HA && s.Index == 1 {
		return []Node{GW1A, GW1B}
	}
	return []Node{s.Gateway}
}

func haLANPort(gw Node) string  { return "lan-" + string(gw) }
func haCustPort(gw Node) string { return "cust-" + string(gw) }

// haIndex is 0 for gw1a, 1 for gw1b.
func haIndex(gw Node) uint64 {
	if gw == GW1B {
		return 1
	}
	return 0
}

// HALANAddr is HA gateway gw's own address in uplink u's LAN /64.
func HALANAddr(gw Node, u Uplink) netip.Addr { return addrIn(u.LAN, 2+haIndex(gw)) }

// HAUplinkAddr is HA gateway gw's own address on uplink u's link.
func HAUplinkAddr(gw Node, u Uplink) netip.Addr {
	return addrIn(netip.PrefixFrom(u.GWAddr, 64).Masked(), 3+haIndex(gw))
}

// topoLinks returns the veth pairs of the lab.
func (l *Lab) topoLinks() []link {
	if l.opts.LANHosts {
		return lanLinks(links())
	}
	if !l.opts.HA {
		return links()
	}
	var out []link
	for _, k := range links() {
		switch {
		case k.a == H1 && k.b == GW1:
			for _, gw := range l.HAGateways() {
				out = append(out, link{H1, haLANPort(gw), gw, LANIf})
			}
		case k.a == GW1:
			for _, gw := range l.HAGateways() {
				out = append(out, link{gw, k.aName, k.b, haCustPort(gw)})
			}
		default:
			out = append(out, k)
		}
	}
	return out
}

// nodeConfig returns the `ip -batch` lines of node n.
func (l *Lab) nodeConfig(n Node) []string {
	if l.opts.LANHosts {
		if c := l.lanNodeConfig(n); c != nil {
			return c
		}
	}
	if !l.opts.HA {
		return ipConfig(n, l.opts.Mode, l.hostAddrs)
	}
	bridge := bridgeLines
	switch n {
	case H1:
		return append(bridge(HostIf, haLANPort(GW1A), haLANPort(GW1B)), ipConfig(n, l.opts.Mode, l.hostAddrs)...)
	case Site1.A.ISP, Site1.B.ISP:
		return append(bridge(CustIf, haCustPort(GW1A), haCustPort(GW1B)), ipConfig(n, l.opts.Mode, l.hostAddrs)...)
	case GW1A, GW1B:
		out := []string{"link set lo up"}
		for _, u := range Site1.Uplinks() {
			out = append(out, fmt.Sprintf("addr add %s/64 dev %s nodad", HALANAddr(n, u), LANIf),
				fmt.Sprintf("addr add %s/64 dev %s nodad", HAUplinkAddr(n, u), u.Interface),
				fmt.Sprintf("link set %s up", u.Interface))
		}
		return append(out, fmt.Sprintf("link set %s up", LANIf))
	}
	return ipConfig(n, l.opts.Mode, l.hostAddrs)
}

// bridgeLines are the `ip -batch` lines that make a bridge name of the
// given ports (a switch: no snooping, forwarding at once).
func bridgeLines(name string, ports ...string) []string {
	out := []string{fmt.Sprintf("link add %s type bridge mcast_snooping 0 forward_delay 0", name)}
	for _, p := range ports {
		out = append(out, fmt.Sprintf("link set %s master %s", p, name), fmt.Sprintf("link set %s up", p))
	}
	return out
}

// custPorts are the interfaces of ISP router isp that face its customer:
// its one veth, or in an HA lab the bridge ports of both gateways.
func (l *Lab) custPorts(isp Node) []string {
	if l.opts.HA && (isp == Site1.A.ISP || isp == Site1.B.ISP) {
		return []string{haCustPort(GW1A), haCustPort(GW1B)}
	}
	return []string{CustIf}
}

// haStop wraps a gateway's stop so that a daemon FailGateway killed does
// not count as a failure at Down.
func (l *Lab) haStop(gw Node, stop func() error) func() error {
	l.mu.Lock()
	gen := l.ha.kills[gw]
	l.mu.Unlock()
	return func() error {
		err := stop()
		l.mu.Lock()
		killed := l.ha.kills[gw] != gen
		l.mu.Unlock()
		if killed {
			return nil
		}
		return err
	}
}

// poweredOff reports whether PowerOff killed gw (and PowerOn did not
// bring it back).
func (l *Lab) poweredOff(gw Node) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ha.off[gw]
}

// GatewayLog returns where the daemon in namespace ns should also log, so
// that its failovers and recoveries become events (io.Discard without
// Options.Events).
func (l *Lab) GatewayLog(ns string) io.Writer {
	return l.opts.Events.Writer(Node(strings.TrimPrefix(ns, l.opts.Prefix+"-")), SourceGateway)
}

func (l *Lab) vrrp() VRRPTimers {
	if l.opts.VRRP.Advert > 0 {
		return l.opts.VRRP
	}
	return LabVRRP
}

// KeepalivedParams returns the keepalived parameters of HA gateway gw,
// with ready as the health check command.
func (l *Lab) KeepalivedParams(gw Node, ready string) KeepalivedParams {
	p := KeepalivedParams{RouterID: string(gw), Priority: 110 - 10*int(haIndex(gw)), Advert: l.vrrp().Advert,
		LAN: LANIf, VRIDBase: haVRID, Ready: ready, ReadyInterval: time.Second}
	for _, u := range Site1.Uplinks() {
		p.LANVIP = append(p.LANVIP, netip.PrefixFrom(u.GatewayLAN, 64))
		p.Uplinks = append(p.Uplinks, KeepalivedUplink{Name: u.Name, Interface: u.Interface, VIP: netip.PrefixFrom(u.GWAddr, 64)})
	}
	return p
}

// startVRRP starts keepalived on gw1a, waits until it is master, then on
// gw1b, so that gw1a is the first active.
func (l *Lab) startVRRP(ctx context.Context) error {
	if _, err := exec.LookPath("keepalived"); err != nil {
		return fmt.Errorf("%w: keepalived (for --ha)", ErrTool)
	}
	script := filepath.Join(l.Dir(), "shim6gw-ready")
	if err := os.WriteFile(script, []byte(ReadyScript), 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	for _, gw := range l.HAGateways() {
		if err := l.startKeepalived(gw, script+" "+AdminListen); err != nil {
			return err
		}
		if gw == GW1A {
			if err := l.waitActive(ctx, GW1A, 15*time.Second); err != nil {
				return err
			}
		}
	}
	// A takeover needs a standby that has heard the master.
	return l.waitLog(ctx, filepath.Join(l.Dir(), "keepalived-gw1b.log"), "(lan) Entering BACKUP STATE", 15*time.Second)
}

// waitLog waits until the file at path contains line.
func (l *Lab) waitLog(ctx context.Context, path, line string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), line) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %q not in %s after %v", line, path, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startKeepalived writes gw's keepalived.conf and starts keepalived in its
// namespace (VRRP only, in the foreground, logging to the lab's events).
func (l *Lab) startKeepalived(gw Node, ready string) error {
	dir := l.Dir()
	conf := filepath.Join(dir, "keepalived-"+string(gw)+".conf")
	if err := os.WriteFile(conf, KeepalivedConfig(l.KeepalivedParams(gw, ready)), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	// Its log: <dir>/keepalived-<gw>.log, and the events.
	f, err := os.OpenFile(filepath.Join(dir, "keepalived-"+string(gw)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	l.mu.Lock()
	l.ha.files = append(l.ha.files, f)
	l.mu.Unlock()
	w := io.MultiWriter(f, l.opts.Events.Writer(gw, SourceVRRP))
	pid := func(s string) string { return filepath.Join(dir, "keepalived-"+string(gw)+s+".pid") }
	_, err = l.spawn(gw, w, w, "keepalived", "--vrrp", "--dont-fork", "--log-console", "--log-detail", "--no-syslog",
		"--use-file", conf, "--pid", pid(""), "--vrrp_pid", pid("-vrrp"), "--checkers_pid", pid("-checkers"))
	return err
}

// Active returns the HA gateways that hold the hosts' router address (one
// normally; two in a split brain; none during a takeover).
func (l *Lab) Active(ctx context.Context) ([]Node, error) {
	var out []Node
	vip := Site1.A.GatewayLAN.String() + "/"
	for _, gw := range l.HAGateways() {
		if l.poweredOff(gw) {
			continue // its addresses stay on its dead interface
		}
		b, err := run(ctx, nil, "ip", "-n", l.NS(gw), "-6", "-o", "addr", "show", "dev", LANIf)
		if err != nil {
			if l.poweredOff(gw) {
				continue
			}
			return nil, err
		}
		if strings.Contains(string(b), " "+vip) {
			out = append(out, gw)
		}
	}
	return out, nil
}

// ActiveName renders Active for reports: "gw1a", "gw1a+gw1b" or "none".
func (l *Lab) ActiveName(ctx context.Context) string {
	a, err := l.Active(ctx)
	if err != nil {
		return "?(" + err.Error() + ")"
	}
	if len(a) == 0 {
		return "none"
	}
	s := make([]string, len(a))
	for i, n := range a {
		s[i] = string(n)
	}
	return strings.Join(s, "+")
}

// waitActive waits until gw alone holds the router address.
func (l *Lab) waitActive(ctx context.Context, gw Node, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		a, err := l.Active(ctx)
		if err != nil {
			return err
		}
		if slices.Equal(a, []Node{gw}) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s not the only active gateway after %v (active: %v)", gw, limit, a)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ErrNoActive: FailGateway found no single active gateway to kill.
var ErrNoActive = errors.New("lab: no single active gateway")

// FailGateway powers off the active HA gateway: SIGKILL to every process
// in its namespace (shim6gw and keepalived) and its interfaces down, so
// its peers lose carrier. It returns the gateway it killed.
func (l *Lab) FailGateway(ctx context.Context) (Node, error) {
	a, err := l.Active(ctx)
	if err != nil {
		return "", err
	}
	if len(a) != 1 {
		return "", fmt.Errorf("%w: %v", ErrNoActive, a)
	}
	return a[0], l.PowerOff(ctx, a[0])
}

// PowerOff kills every process in HA gateway gw's namespace and sets its
// interfaces down.
func (l *Lab) PowerOff(ctx context.Context, gw Node) error {
	if !slices.Contains(l.HAGateways(), gw) {
		return fmt.Errorf("lab: %s is no HA gateway", gw)
	}
	l.mu.Lock()
	if l.ha.off == nil {
		l.ha.off, l.ha.kills = map[Node]bool{}, map[Node]int{}
	}
	l.ha.off[gw] = true
	l.ha.kills[gw]++
	l.mu.Unlock()
	out, err := run(ctx, nil, "ip", "netns", "pids", l.NS(gw))
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	l.opts.Events.Add(gw, SourceLab, "power off")
	script := fmt.Sprintf("link set %s down\nlink set %s down\nlink set %s down\n", LANIf, UplinkAIf, UplinkBIf)
	_, err = run(ctx, strings.NewReader(script), "ip", "-n", l.NS(gw), "-batch", "-")
	return err
}

// PowerOn brings HA gateway gw back after PowerOff: interfaces up, the
// daemon and keepalived started again (as a standby: nopreempt).
func (l *Lab) PowerOn(ctx context.Context, gw Node) error {
	// A power loss forgets the virtual addresses and keepalived's pid
	// files; the kill left them (keep_addr_on_down).
	var script strings.Builder
	p := l.KeepalivedParams(gw, "")
	fmt.Fprintf(&script, "addr del %s/64 dev %s\n", routerLinkLocal, LANIf)
	for _, v := range p.LANVIP {
		fmt.Fprintf(&script, "addr del %s dev %s\n", v, LANIf)
	}
	for _, u := range p.Uplinks {
		fmt.Fprintf(&script, "addr del %s dev %s\n", u.VIP, u.Interface)
	}
	_, _ = run(ctx, strings.NewReader(script.String()), "ip", "-n", l.NS(gw), "-force", "-batch", "-")
	for _, s := range []string{"", "-vrrp", "-checkers"} {
		_ = os.Remove(filepath.Join(l.Dir(), "keepalived-"+string(gw)+s+".pid"))
	}
	up := fmt.Sprintf("link set %s up\nlink set %s up\nlink set %s up\n", LANIf, UplinkAIf, UplinkBIf)
	if _, err := run(ctx, strings.NewReader(up), "ip", "-n", l.NS(gw), "-batch", "-"); err != nil {
		return err
	}
	// The uplinks may stay without carrier (a provider failure).
	if err := l.waitOperUp(ctx, gw, LANIf); err != nil {
		return err
	}
	l.mu.Lock()
	delete(l.ha.off, gw)
	l.mu.Unlock()
	if err := l.startGateway(ctx, gw, l.ConfigPath(Site1)); err != nil {
		return err
	}
	l.opts.Events.Add(gw, SourceLab, "power on")
	return l.startKeepalived(gw, filepath.Join(l.Dir(), "shim6gw-ready")+" "+AdminListen)
}

// ActiveContextPair returns a ScenarioOptions.LocatorPair that reads the
// locator pair of context local–peer on whichever HA gateway is active
// ("no context" while it has none, "no active gateway" during a takeover).
func (l *Lab) ActiveContextPair(local, peer netip.Addr) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		a, err := l.Active(ctx)
		if err != nil {
			return "", err
		}
		if len(a) == 0 {
			return "no active gateway", nil
		}
		p, err := l.ContextPair(a[0], local, peer)(ctx)
		return string(a[0]) + ": " + p, err
	}
}

// PartitionVRRP drops VRRP (IPv6 next header 112, RFC 5798 §5.1.2.4)
// between the HA gateways on the LAN bridge: each hears no adverts and
// both become master (split brain). HealVRRP undoes it.
func (l *Lab) PartitionVRRP(ctx context.Context) error {
	t := l.opts.Prefix + "_vrrp"
	_, err := l.nft(ctx, H1, fmt.Sprintf("table bridge %[1]s {\n  chain drop_vrrp {\n    type filter hook forward priority 0; policy accept;\n"+
		"    ip6 nexthdr 112 counter drop\n  }\n}\n", t))
	l.opts.Events.Add(H1, SourceLab, "VRRP partitioned")
	return err
}

// HealVRRP lets VRRP through again after PartitionVRRP.
func (l *Lab) HealVRRP(ctx context.Context) error {
	_, err := l.nft(ctx, H1, "delete table bridge "+l.opts.Prefix+"_vrrp\n")
	l.opts.Events.Add(H1, SourceLab, "VRRP healed")
	return err
}

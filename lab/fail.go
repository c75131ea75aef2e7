package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// FailMode is how a provider fails.
type FailMode string

const (
	// FailNone injects nothing (a control run).
	FailNone FailMode = "none"
	// FailLink: the ISP's customer-facing interface goes down, so the
	// gateway's uplink loses carrier.
	FailLink FailMode = "link"
	// FailBlackhole: the ISP silently drops everything to and from the
	// customer; carrier stays up.
	FailBlackhole FailMode = "blackhole"
	// FailGateway powers off the active gateway of an HA lab (FailGateway
	// method): kill -9 and its links down.
	FailGateway FailMode = "gateway"
)

// ParseFailMode parses "none", "link" or "blackhole".
func ParseFailMode(s string) (FailMode, error) {
	switch m := FailMode(s); m {
	case FailNone, FailLink, FailBlackhole, FailGateway:
		return m, nil
	}
	return "", fmt.Errorf("lab: unknown failure mode %q (want link, blackhole, gateway or none)", s)
}

// Fail injects failure mode m at ISP router isp.
func (l *Lab) Fail(ctx context.Context, isp Node, m FailMode) error {
	switch m {
	case FailNone:
		return nil
	case FailLink:
		return l.FailLink(ctx, isp)
	case FailBlackhole:
		return l.FailBlackhole(ctx, isp)
	case FailGateway:
		_, err := l.FailGateway(ctx)
		return err
	}
	return fmt.Errorf("lab: unknown failure mode %q", m)
}

// FailLink sets ISP router isp's customer-facing veth down: the peer, the
// gateway's uplink, loses carrier (operstate LOWERLAYERDOWN / NO-CARRIER).
func (l *Lab) FailLink(ctx context.Context, isp Node) error {
	if _, _, err := ispOf(isp); err != nil {
		return err
	}
	var script strings.Builder
	for _, p := range l.custPorts(isp) {
		fmt.Fprintf(&script, "link set %s down\n", p)
	}
	_, err := run(ctx, strings.NewReader(script.String()), "ip", "-n", l.NS(isp), "-batch", "-")
	l.opts.Events.Add(isp, SourceLab, "link down")
	return err
}

// FailBlackhole makes ISP router isp drop every packet from and to its
// customer (forwarded or its own, NDP included) with nftables; the link
// and carrier stay up. Drops are counted in counter "blackhole_drops".
func (l *Lab) FailBlackhole(ctx context.Context, isp Node) error {
	if _, _, err := ispOf(isp); err != nil {
		return err
	}
	t := l.opts.Prefix
	script := fmt.Sprintf("flush chain inet %[1]s bh_in\nflush chain inet %[1]s bh_out\nflush chain inet %[1]s bh_fwd\n"+
		"add rule inet %[1]s bh_in iifname %[2]q counter name blackhole_drops drop\n"+
		"add rule inet %[1]s bh_out oifname %[2]q counter name blackhole_drops drop\n"+
		"add rule inet %[1]s bh_fwd iifname %[2]q counter name blackhole_drops drop\n"+
		"add rule inet %[1]s bh_fwd oifname %[2]q counter name blackhole_drops drop\n", t, CustIf)
	_, err := l.nft(ctx, isp, script)
	l.opts.Events.Add(isp, SourceLab, "blackhole")
	return err
}

// Restore undoes FailLink and FailBlackhole at ISP router isp (either or
// both; restoring a healthy ISP is a no-op).
func (l *Lab) Restore(ctx context.Context, isp Node) error {
	if _, _, err := ispOf(isp); err != nil {
		return err
	}
	t := l.opts.Prefix
	if _, err := l.nft(ctx, isp, fmt.Sprintf("flush chain inet %[1]s bh_in\nflush chain inet %[1]s bh_out\nflush chain inet %[1]s bh_fwd\n", t)); err != nil {
		return err
	}
	ports := l.custPorts(isp)
	for _, p := range ports {
		if _, err := run(ctx, nil, "ip", "-n", l.NS(isp), "link", "set", p, "up"); err != nil {
			return err
		}
	}
	site, u, _ := ispOf(isp)
	if err := l.waitOperUp(ctx, isp, CustIf); err != nil {
		return err
	}
	for _, gw := range l.siteGateways(site) {
		if l.poweredOff(gw) {
			continue
		}
		if err := l.waitOperUp(ctx, gw, u.Interface); err != nil {
			return err
		}
	}
	l.opts.Events.Add(isp, SourceLab, "restored")
	// "link set down" flushed the routes through the interface (the
	// addresses stay: keep_addr_on_down); put them back.
	var routes []string
	for _, line := range ipConfig(isp, l.opts.Mode, l.hostAddrs) {
		if strings.HasPrefix(line, "route ") {
			routes = append(routes, line)
		}
	}
	_, err := run(ctx, strings.NewReader(strings.Join(routes, "\n")+"\n"), "ip", "-6", "-n", l.NS(isp), "-batch", "-")
	return err
}

// Counter is an nftables counter's value.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// IngressDrops returns how many packets ISP router isp dropped because
// their source was not in its customer's prefix.
func (l *Lab) IngressDrops(ctx context.Context, isp Node) (Counter, error) {
	return l.counter(ctx, isp, "ingress_drops")
}

// BlackholeDrops returns how many packets FailBlackhole dropped at isp.
func (l *Lab) BlackholeDrops(ctx context.Context, isp Node) (Counter, error) {
	return l.counter(ctx, isp, "blackhole_drops")
}

func (l *Lab) counter(ctx context.Context, isp Node, name string) (Counter, error) {
	if _, _, err := ispOf(isp); err != nil {
		return Counter{}, err
	}
	out, err := l.Exec(ctx, isp, "nft", "-j", "list", "counter", "inet", l.opts.Prefix, name)
	if err != nil {
		return Counter{}, err
	}
	return parseCounter(out, name)
}

// parseCounter extracts counter name from `nft -j list counter` output.
func parseCounter(out []byte, name string) (Counter, error) {
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name string `json:"name"`
				Counter
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return Counter{}, fmt.Errorf("lab: nft counter %s: %w", name, err)
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil && o.Counter.Name == name {
			return o.Counter.Counter, nil
		}
	}
	return Counter{}, fmt.Errorf("lab: nft counter %s not found in %q", name, strings.TrimSpace(string(out)))
}

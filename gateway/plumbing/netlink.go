package plumbing

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/internal/nsrun"
)

// MainTable is the kernel's main routing table (RT_TABLE_MAIN).
const MainTable = unix.RT_TABLE_MAIN

// Rule is one IPv6 policy rule as the gateway sees it.
type Rule struct {
	Priority int
	IifName  string       // "" matches every input interface
	Src      netip.Prefix // invalid: from all
	Table    int
	// SuppressPrefixlen < 0 means unset; 0 makes "lookup main" ignore the
	// default route (ip rule … suppress_prefixlength 0).
	SuppressPrefixlen int
	Protocol          int
}

// String renders the rule like `ip -6 rule` does, plus its protocol.
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d: from ", r.Priority)
	if r.Src.IsValid() {
		b.WriteString(r.Src.String())
	} else {
		b.WriteString("all")
	}
	if r.IifName != "" {
		fmt.Fprintf(&b, " iif %s", r.IifName)
	}
	fmt.Fprintf(&b, " lookup %s", tableName(r.Table))
	if r.SuppressPrefixlen >= 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixlen)
	}
	fmt.Fprintf(&b, " proto %d", r.Protocol)
	return b.String()
}

func tableName(t int) string {
	if t == MainTable {
		return "main"
	}
	return fmt.Sprint(t)
}

// ip6DefaultMetric is the metric the kernel gives an IPv6 route added
// without one (IP6_RT_PRIO_USER).
const ip6DefaultMetric = 1024

// Route is one IPv6 route in one of the gateway's tables.
type Route struct {
	Table    int
	Dst      netip.Prefix
	Gateway  netip.Addr // invalid: directly on Dev
	Dev      string
	Protocol int
	// Unreachable: an `unreachable` route (no Gateway, no Dev); a lookup
	// that ends on it fails with an ICMPv6 unreachable instead of going
	// on to the next rule.
	Unreachable bool
	// Metric is the route's priority; 0 means the kernel's default (1024).
	Metric int
}

// String renders the route like `ip -6 route show table T` does.
func (r Route) String() string {
	var b strings.Builder
	if r.Unreachable {
		b.WriteString("unreachable ")
	}
	if r.Dst.Bits() == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Gateway.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Gateway)
	}
	if r.Dev != "" {
		fmt.Fprintf(&b, " dev %s", r.Dev)
	}
	fmt.Fprintf(&b, " table %s proto %d", tableName(r.Table), r.Protocol)
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	return b.String()
}

// NetlinkOps is the seam between the Plumber and the kernel: the real one
// talks rtnetlink and /proc/sys, the fake in tests records text.
type NetlinkOps interface {
	config.LinkInspector
	// LinkUp reports whether the interface is administratively up.
	LinkUp(name string) (bool, error)
	// SetLink sets the MTU (if mtu > 0) and brings the interface up.
	SetLink(name string, mtu int) error
	// Rules lists the IPv6 policy rules.
	Rules() ([]Rule, error)
	AddRule(r Rule) error
	DelRule(r Rule) error
	// Routes lists the IPv6 routes of one table.
	Routes(table int) ([]Route, error)
	// ReplaceRoute adds or replaces a route (idempotent).
	ReplaceRoute(r Route) error
	DelRoute(r Route) error
	// ReadSysctl and WriteSysctl access /proc/sys/<key with / separators>,
	// e.g. "net/ipv6/conf/all/forwarding", in the ops' namespace.
	ReadSysctl(key string) (string, error)
	WriteSysctl(key, value string) error
	Close() error
}

// nlOps is NetlinkOps over vishvananda/netlink.
type nlOps struct {
	h  *netlink.Handle
	ns *netns.NsHandle // nil: the calling process's namespace
}

// NewNetlinkOps opens rtnetlink in the namespace ns (nil: the current one).
// The caller keeps ownership of ns.
func NewNetlinkOps(ns *netns.NsHandle) (NetlinkOps, error) {
	var h *netlink.Handle
	var err error
	if ns == nil {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandleAt(*ns, unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: open netlink: %w", err)
	}
	return &nlOps{h: h, ns: ns}, nil
}

func (o *nlOps) Close() error { o.h.Close(); return nil }

func (o *nlOps) LinkExists(name string) (bool, error) {
	_, err := o.h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	return err == nil, err
}

func (o *nlOps) LinkUp(name string) (bool, error) {
	l, err := o.h.LinkByName(name)
	if err != nil {
		return false, err
	}
	return l.Attrs().Flags&net.FlagUp != 0, nil
}

func (o *nlOps) SetLink(name string, mtu int) error {
	l, err := o.h.LinkByName(name)
	if err != nil {
		return err
	}
	if mtu > 0 && l.Attrs().MTU != mtu {
		if err := o.h.LinkSetMTU(l, mtu); err != nil {
			return err
		}
	}
	return o.h.LinkSetUp(l)
}

// LinkStatsReader reads a link's kernel counters; the NetlinkOps of
// NewNetlinkOps implement it.
type LinkStatsReader interface {
	// TxDropped is the link's tx_dropped counter (for a TUN: packets the
	// kernel dropped because the reader did not keep up).
	TxDropped(name string) (uint64, error)
}

// TxQueueLenSetter sets a link's transmit queue length; the NetlinkOps
// of NewNetlinkOps implement it.
type TxQueueLenSetter interface {
	SetTxQueueLen(name string, qlen int) error
}

func (o *nlOps) SetTxQueueLen(name string, qlen int) error {
	l, err := o.h.LinkByName(name)
	if err != nil {
		return err
	}
	if l.Attrs().TxQLen == qlen {
		return nil
	}
	return o.h.LinkSetTxQLen(l, qlen)
}

// TxDropped opens its own rtnetlink socket: it runs on scrape goroutines,
// concurrently with the plumbing's use of o.h.
func (o *nlOps) TxDropped(name string) (uint64, error) {
	var h *netlink.Handle
	var err error
	if o.ns == nil {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandleAt(*o.ns, unix.NETLINK_ROUTE)
	}
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return 0, err
	}
	st := l.Attrs().Statistics
	if st == nil {
		return 0, errors.New("gateway: no link statistics")
	}
	return st.TxDropped, nil
}

func toNLPrefix(p netip.Prefix) *net.IPNet {
	if !p.IsValid() {
		return nil
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}
}

func fromNLPrefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

func (o *nlOps) nlRule(r Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = unix.AF_INET6
	nr.Priority = r.Priority
	nr.IifName = r.IifName
	nr.Src = toNLPrefix(r.Src)
	nr.Table = r.Table
	nr.SuppressPrefixlen = r.SuppressPrefixlen
	nr.Protocol = uint8(r.Protocol)
	return nr
}

func (o *nlOps) Rules() ([]Rule, error) {
	rs, err := o.h.RuleList(unix.AF_INET6)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, err
	}
	out := make([]Rule, 0, len(rs))
	for _, r := range rs {
		out = append(out, Rule{Priority: r.Priority, IifName: r.IifName, Src: fromNLPrefix(r.Src),
			Table: r.Table, SuppressPrefixlen: r.SuppressPrefixlen, Protocol: int(r.Protocol)})
	}
	return out, err
}

func (o *nlOps) AddRule(r Rule) error { return o.h.RuleAdd(o.nlRule(r)) }
func (o *nlOps) DelRule(r Rule) error { return o.h.RuleDel(o.nlRule(r)) }

func (o *nlOps) nlRoute(r Route) (*netlink.Route, error) {
	if r.Unreachable {
		return &netlink.Route{Family: unix.AF_INET6, Table: r.Table, Dst: toNLPrefix(r.Dst), Type: unix.RTN_UNREACHABLE,
			Priority: r.Metric, Protocol: netlink.RouteProtocol(r.Protocol)}, nil
	}
	l, err := o.h.LinkByName(r.Dev)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		// The device went away (a closed TUN) and its routes with it.
		return nil, fmt.Errorf("gateway: no device %q: %w", r.Dev, unix.ENODEV)
	}
	if err != nil {
		return nil, err
	}
	nr := &netlink.Route{
		Family:    unix.AF_INET6,
		Table:     r.Table,
		Dst:       toNLPrefix(r.Dst),
		LinkIndex: l.Attrs().Index,
		Protocol:  netlink.RouteProtocol(r.Protocol),
		Priority:  r.Metric,
	}
	if r.Gateway.IsValid() {
		nr.Gw = r.Gateway.AsSlice()
	}
	return nr, nil
}

func (o *nlOps) Routes(table int) ([]Route, error) {
	rs, err := o.h.RouteListFiltered(unix.AF_INET6, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, err
	}
	out := make([]Route, 0, len(rs))
	for _, r := range rs {
		rt := Route{Table: r.Table, Dst: fromNLPrefix(r.Dst), Protocol: int(r.Protocol)}
		if !rt.Dst.IsValid() {
			rt.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			rt.Gateway = gw
		}
		if r.Priority != ip6DefaultMetric {
			rt.Metric = r.Priority
		}
		if r.Type == unix.RTN_UNREACHABLE {
			rt.Unreachable = true // the kernel hangs it on lo
		} else if l, err := o.h.LinkByIndex(r.LinkIndex); err == nil {
			rt.Dev = l.Attrs().Name
		}
		out = append(out, rt)
	}
	return out, err
}

func (o *nlOps) ReplaceRoute(r Route) error {
	nr, err := o.nlRoute(r)
	if err != nil {
		return err
	}
	return o.h.RouteReplace(nr)
}

func (o *nlOps) DelRoute(r Route) error {
	nr, err := o.nlRoute(r)
	if err != nil {
		return err
	}
	return o.h.RouteDel(nr)
}

// inNS runs f on a thread switched into the ops' namespace: /proc/sys/net
// shows the namespace of the thread that opens it.
func (o *nlOps) inNS(f func() error) error {
	if o.ns == nil {
		return f()
	}
	return nsrun.In(*o.ns, f)
}

func sysctlPath(key string) (string, error) {
	if key == "" || strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
		return "", fmt.Errorf("gateway: bad sysctl key %q", key)
	}
	return filepath.Join("/proc/sys", key), nil
}

func (o *nlOps) ReadSysctl(key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	var v string
	err = o.inNS(func() error {
		b, err := os.ReadFile(p)
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}

func (o *nlOps) WriteSysctl(key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return err
	}
	return o.inNS(func() error { return os.WriteFile(p, []byte(value+"\n"), 0o644) })
}

// Check is `shim6gw check`: CheckSystem against the live system through
// netlink, plus notes: missing uplinks, a slow HBA generation. It
// changes nothing.
func Check(c *config.Config) (notes []string, err error) {
	ops, err := NewNetlinkOps(nil)
	if err != nil {
		return nil, err
	}
	defer ops.Close()
	if err := config.CheckSystem(c, ops); err != nil {
		return nil, err
	}
	notes = config.MissingUplinks(c, ops)
	if n := config.HBACostNote(c); n != "" {
		notes = append(notes, n)
	}
	return notes, nil
}

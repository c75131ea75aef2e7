package plumbing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/gateway/config"
)

// UplinkSpec names an uplink the monitor watches.
type UplinkSpec struct {
	Name      string
	Interface string
	// RequireDefaultRoute: the uplink is down while no ::/0 route (other
	// than the gateway's own, by protocol) leaves through the interface.
	RequireDefaultRoute bool
}

// UplinkSpecsFrom returns the monitor's view of the configured uplinks.
func UplinkSpecsFrom(c *config.Config) []UplinkSpec {
	out := make([]UplinkSpec, len(c.Uplinks))
	for i, u := range c.Uplinks {
		out[i] = UplinkSpec{Name: u.Name, Interface: u.Interface, RequireDefaultRoute: u.RequireDefaultRoute}
	}
	return out
}

// UplinkEvent reports a change of an uplink's usability; the control
// loop turns it into the engine's "uplink down/up" event.
type UplinkEvent struct {
	Uplink string
	Up     bool
	Reason string // why it is down ("no carrier", …) or "up"
	At     time.Time
}

// UplinkStatus is the current state of one uplink (metrics, /healthz).
type UplinkStatus struct {
	Name      string
	Interface string
	Up        bool
	Reason    string
	Since     time.Time
}

// Reasons an uplink is down, in the order they are checked.
const (
	ReasonUp             = "up"
	ReasonMissing        = "interface missing"
	ReasonAdminDown      = "admin down"
	ReasonNoCarrier      = "no carrier"
	ReasonNoAddress      = "no global address"
	ReasonNoDefaultRoute = "no default route"
)

// linkFacts is what the kernel told us about one interface.
type linkFacts struct {
	name    string
	adminUp bool
	carrier bool
}

// routeKey identifies one default route through an interface.
type routeKey struct {
	table int
	gw    netip.Addr
	index int
}

// uplinkTracker is the monitor's pure state: kernel facts by interface
// index, and the last state reported per uplink. Methods are not safe for
// concurrent use.
type uplinkTracker struct {
	specs    []UplinkSpec
	links    map[int]linkFacts
	addrs    map[int]map[netip.Addr]bool // usable global addresses
	defaults map[routeKey]bool
	last     []UplinkStatus
	reported []bool
}

func newUplinkTracker(specs []UplinkSpec) *uplinkTracker {
	t := &uplinkTracker{specs: specs, last: make([]UplinkStatus, len(specs)), reported: make([]bool, len(specs))}
	t.reset()
	for i, s := range specs {
		t.last[i] = UplinkStatus{Name: s.Name, Interface: s.Interface, Reason: ReasonMissing}
	}
	return t
}

// reset forgets the kernel facts (before a full resync), not what was
// reported.
func (t *uplinkTracker) reset() {
	t.links = map[int]linkFacts{}
	t.addrs = map[int]map[netip.Addr]bool{}
	t.defaults = map[routeKey]bool{}
}

func (t *uplinkTracker) setLink(index int, f linkFacts, present bool) {
	if !present {
		delete(t.links, index)
		delete(t.addrs, index)
		for k := range t.defaults {
			if k.index == index {
				delete(t.defaults, k)
			}
		}
		return
	}
	t.links[index] = f
}

func (t *uplinkTracker) setAddr(index int, a netip.Addr, usable, present bool) {
	if !a.Is6() || a.Is4In6() || !a.IsGlobalUnicast() {
		return
	}
	if !present || !usable {
		delete(t.addrs[index], a)
		return
	}
	if t.addrs[index] == nil {
		t.addrs[index] = map[netip.Addr]bool{}
	}
	t.addrs[index][a] = true
}

func (t *uplinkTracker) setDefaultRoute(k routeKey, present bool) {
	if present {
		t.defaults[k] = true
	} else {
		delete(t.defaults, k)
	}
}

// evaluate computes one uplink's state from the facts.
func (t *uplinkTracker) evaluate(s UplinkSpec) (bool, string) {
	index := -1
	var f linkFacts
	for i, l := range t.links {
		if l.name == s.Interface {
			index, f = i, l
			break
		}
	}
	switch {
	case index < 0:
		return false, ReasonMissing
	case !f.adminUp:
		return false, ReasonAdminDown
	case !f.carrier:
		return false, ReasonNoCarrier
	case len(t.addrs[index]) == 0:
		return false, ReasonNoAddress
	}
	if s.RequireDefaultRoute {
		for k := range t.defaults {
			if k.index == index {
				return true, ReasonUp
			}
		}
		return false, ReasonNoDefaultRoute
	}
	return true, ReasonUp
}

// changes re-evaluates every uplink and returns an event for each whose
// up/down state differs from the last report (the first report of each
// uplink is always an event). A changed reason while down is not news.
func (t *uplinkTracker) changes(now time.Time) []UplinkEvent {
	var out []UplinkEvent
	for i, s := range t.specs {
		up, reason := t.evaluate(s)
		if t.reported[i] && t.last[i].Up == up {
			t.last[i].Reason = reason
			continue
		}
		t.reported[i] = true
		t.last[i] = UplinkStatus{Name: s.Name, Interface: s.Interface, Up: up, Reason: reason, Since: now}
		out = append(out, UplinkEvent{Uplink: s.Name, Up: up, Reason: reason, At: now})
	}
	return out
}

// MonitorOptions tune a Monitor; the zero value watches the current
// namespace.
type MonitorOptions struct {
	// Namespace to watch (nil: the process's own). The caller keeps it.
	Namespace *netns.NsHandle
	// Protocol marks the gateway's own routes, which never count as an
	// uplink's default route (default config.DefaultRouteProtocol).
	Protocol int
	// Now is the clock for event times (default time.Now).
	Now func() time.Time
	// Buffer is the capacity of the event channel (default 64).
	Buffer int
	Log    *slog.Logger
}

// Monitor turns netlink link, address and route notifications into
// UplinkEvents: an uplink is up while its interface is administratively
// up, has carrier, holds a usable global IPv6 address and, if its spec
// asks, has a default route. Events are de-duplicated, never delayed.
type Monitor struct {
	opts   MonitorOptions
	events chan UplinkEvent

	mu      sync.Mutex
	tracker *uplinkTracker // guarded by mu
}

// NewMonitor returns a monitor for the uplinks; Run starts it.
func NewMonitor(specs []UplinkSpec, opts MonitorOptions) *Monitor {
	if opts.Protocol == 0 {
		opts.Protocol = config.DefaultRouteProtocol
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 64
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.Log = opts.Log.With("component", "monitor")
	return &Monitor{opts: opts, events: make(chan UplinkEvent, opts.Buffer), tracker: newUplinkTracker(specs)}
}

// Events delivers uplink changes. The first event of each uplink tells its
// initial state. The channel is closed when Run returns.
func (m *Monitor) Events() <-chan UplinkEvent { return m.events }

// UplinkStates returns the last reported state of every uplink, in
// configuration order.
func (m *Monitor) UplinkStates() []UplinkStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]UplinkStatus(nil), m.tracker.last...)
}

// LinkUp reports whether an interface the kernel told the monitor about
// is administratively up (the TUN: its carrier follows the reader's fd).
func (m *Monitor) LinkUp(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.tracker.links {
		if l.name == name {
			return l.adminUp
		}
	}
	return false
}

// ErrMonitorClosed: a netlink subscription ended while the context was
// still live; the caller restarts the monitor.
var ErrMonitorClosed = errors.New("gateway: netlink subscription closed")

// Run subscribes to link, address and route notifications, takes a full
// snapshot, and then reports changes until ctx ends. A subscription the
// kernel drops (e.g. on receive-buffer overflow) is renewed with a fresh
// snapshot. It returns nil when ctx ends and closes the Events channel.
func (m *Monitor) Run(ctx context.Context) error {
	defer close(m.events)
	quick := 0
	for {
		began := time.Now()
		err := m.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errResubscribe) {
			return err
		}
		// Bound renewals that fail at once, so a broken socket is an
		// error and not a busy loop.
		if time.Since(began) < time.Second {
			quick++
		} else {
			quick = 0
		}
		if quick >= 5 {
			return ErrMonitorClosed
		}
		m.opts.Log.Warn("netlink subscription lost, subscribing again")
	}
}

var errResubscribe = errors.New("gateway: resubscribe")

// session is one set of subscriptions: snapshot, then notifications.
func (m *Monitor) session(ctx context.Context) error {
	done := make(chan struct{})
	linkCh := make(chan netlink.LinkUpdate, 256)
	addrCh := make(chan netlink.AddrUpdate, 256)
	routeCh := make(chan netlink.RouteUpdate, 256)
	defer func() {
		close(done)
		// The library's readers block on a full channel; drain until
		// they close them, so none is left behind.
		go func() {
			for range linkCh {
			}
		}()
		go func() {
			for range addrCh {
			}
		}()
		go func() {
			for range routeCh {
			}
		}()
	}()
	ns := netns.None()
	if m.opts.Namespace != nil {
		ns = *m.opts.Namespace
	}
	errc := make(chan error, 1)
	onErr := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	if err := netlink.LinkSubscribeWithOptions(linkCh, done, netlink.LinkSubscribeOptions{Namespace: &ns, ErrorCallback: onErr}); err != nil {
		close(linkCh) // never handed to a reader
		close(addrCh)
		close(routeCh)
		return fmt.Errorf("gateway: subscribe links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrCh, done, netlink.AddrSubscribeOptions{Namespace: &ns, ErrorCallback: onErr}); err != nil {
		close(addrCh)
		close(routeCh)
		return fmt.Errorf("gateway: subscribe addresses: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(routeCh, done, netlink.RouteSubscribeOptions{Namespace: &ns, ErrorCallback: onErr}); err != nil {
		close(routeCh)
		return fmt.Errorf("gateway: subscribe routes: %w", err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("gateway: monitor netlink: %w", err)
	}
	defer h.Close()
	// Subscribed first, listed second: nothing between is lost, and a
	// notification older than the listing only repeats what it showed.
	if err := m.resync(h); err != nil {
		return err
	}
	if err := m.flush(ctx); err != nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-linkCh:
			if !ok {
				return errResubscribe
			}
			m.apply(func(t *uplinkTracker) { applyLink(t, u.Header.Type == unix.RTM_NEWLINK, u.Link) })
		case u, ok := <-addrCh:
			if !ok {
				return errResubscribe
			}
			m.apply(func(t *uplinkTracker) { applyAddr(t, u.NewAddr, u.LinkIndex, u.LinkAddress, u.Flags) })
		case u, ok := <-routeCh:
			if !ok {
				return errResubscribe
			}
			m.apply(func(t *uplinkTracker) { applyRoute(t, u.Type == unix.RTM_NEWROUTE, u.Route, m.opts.Protocol) })
		case err := <-errc:
			// Some notifications may be lost: take a fresh snapshot.
			m.opts.Log.Warn("netlink notification error, resyncing", "err", err)
			if err := m.resync(h); err != nil {
				return err
			}
		}
		if err := m.flush(ctx); err != nil {
			return nil
		}
	}
}

func (m *Monitor) apply(f func(*uplinkTracker)) {
	m.mu.Lock()
	f(m.tracker)
	m.mu.Unlock()
}

// flush sends the events the latest facts imply; it fails only when ctx
// ends while the consumer is not reading.
func (m *Monitor) flush(ctx context.Context) error {
	m.mu.Lock()
	evs := m.tracker.changes(m.opts.Now())
	m.mu.Unlock()
	for _, e := range evs {
		// The control loop logs the change at info; this is the raw event.
		m.opts.Log.Debug("uplink event", "uplink", e.Uplink, "up", e.Up, "reason", e.Reason)
		select {
		case m.events <- e:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// resync replaces the facts with a fresh listing.
func (m *Monitor) resync(h *netlink.Handle) error {
	links, err := h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("gateway: list links: %w", err)
	}
	addrs, err := h.AddrList(nil, unix.AF_INET6)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("gateway: list addresses: %w", err)
	}
	routes, err := h.RouteListFiltered(unix.AF_INET6, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("gateway: list routes: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tracker
	t.reset()
	for _, l := range links {
		applyLink(t, true, l)
	}
	for _, a := range addrs {
		applyAddr(t, true, a.LinkIndex, *a.IPNet, a.Flags)
	}
	for _, r := range routes {
		applyRoute(t, true, r, m.opts.Protocol)
	}
	return nil
}

// applyLink records a link notification.
func applyLink(t *uplinkTracker, present bool, l netlink.Link) {
	a := l.Attrs()
	carrier := a.RawFlags&unix.IFF_LOWER_UP != 0
	switch a.OperState {
	case netlink.OperDown, netlink.OperLowerLayerDown, netlink.OperNotPresent:
		carrier = false
	}
	t.setLink(a.Index, linkFacts{name: a.Name, adminUp: a.Flags&net.FlagUp != 0, carrier: carrier}, present)
}

// applyAddr records an address notification. Tentative (DAD running) and
// duplicate addresses are not usable yet (RFC 4862 §5.4).
func applyAddr(t *uplinkTracker, present bool, index int, n net.IPNet, flags int) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return
	}
	usable := flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0
	t.setAddr(index, a, usable, present)
}

// applyRoute records a default-route notification; other routes and the
// gateway's own (by protocol) do not matter.
func applyRoute(t *uplinkTracker, present bool, r netlink.Route, protocol int) {
	if r.Family != 0 && r.Family != unix.AF_INET6 {
		return
	}
	if int(r.Protocol) == protocol {
		return
	}
	if r.Dst != nil {
		if ones, _ := r.Dst.Mask.Size(); ones != 0 || r.Dst.IP.To4() != nil {
			return
		}
	}
	add := func(index int, gw net.IP) {
		g, _ := netip.AddrFromSlice(gw)
		t.setDefaultRoute(routeKey{table: r.Table, gw: g, index: index}, present)
	}
	if len(r.MultiPath) > 0 {
		for _, nh := range r.MultiPath {
			add(nh.LinkIndex, nh.Gw)
		}
		return
	}
	add(r.LinkIndex, r.Gw)
}

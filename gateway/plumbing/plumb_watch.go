package plumbing

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shim6gw/shim6gw/gateway/config"
)

// Timing of the plumbing watcher.
const (
	// repairSettle lets a burst of deletions (a flush removes one rule per
	// message) end before the pass, and bounds passes to 20 per second
	// whoever sends the notifications.
	repairSettle = 50 * time.Millisecond
	// repairInterval is the safety net for lost notifications (receive
	// buffer overflow): a pass at least this often.
	repairInterval = 10 * time.Second
)

// Metric families the PlumbWatcher exports (registered next to Metrics).
const (
	metricPlumbingRepairs = "shim6gw_plumbing_repairs_total"
	metricPlumbingIntact  = "shim6gw_plumbing_intact"
)

// PlumbMetricNames lists them, for MetricNames.
var PlumbMetricNames = []string{metricPlumbingIntact, metricPlumbingRepairs}

// PlumbWatchOptions configure a PlumbWatcher.
type PlumbWatchOptions struct {
	// Notify subscribes to rtnetlink notifications (rules, routes, links)
	// in Namespace; without it only the periodic pass runs.
	Notify    bool
	Namespace *netns.NsHandle // nil: the process's own
	// Tables is the range of the gateway's routing tables; deleted routes
	// elsewhere are not its business.
	FirstTable, LastTable int
	Interval              time.Duration // default repairInterval
	Log                   *slog.Logger
}

// PlumbWatcher keeps the Plumber's rules and routes in the kernel: on a
// rule or route deletion (systemd-networkd or mwan3 flushing foreign
// rules, an operator's `ip rule flush`) it re-installs them within
// repairSettle plus one pass, and on a new link it installs what waited
// for it. It counts each repair and exports whether the plumbing is
// intact.
type PlumbWatcher struct {
	p     *Plumber
	opts  PlumbWatchOptions
	kicks chan struct{}

	repairs [2]atomic.Uint64 // by RepairKinds index
	intact  atomic.Bool

	mu      sync.Mutex
	lastErr string

	repairsDesc, intactDesc *prometheus.Desc
}

// NewPlumbWatcher returns a watcher of p's plumbing; Run starts it.
func NewPlumbWatcher(p *Plumber, opts PlumbWatchOptions) *PlumbWatcher {
	if opts.Interval <= 0 {
		opts.Interval = repairInterval
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.Log = opts.Log.With("component", "plumbing")
	return &PlumbWatcher{p: p, opts: opts, kicks: make(chan struct{}, 1),
		repairsDesc: prometheus.NewDesc(metricPlumbingRepairs,
			"Rules and routes of the gateway re-installed after something else removed them, by kind.", []string{"kind"}, nil),
		intactDesc: prometheus.NewDesc(metricPlumbingIntact,
			"1 while every rule and route of the gateway is in the kernel (routes of down uplinks excepted).", nil, nil),
	}
}

// PlumbWatchOptionsFor returns the watcher options for the daemon's ops:
// notifications when they are the real rtnetlink ops.
func PlumbWatchOptionsFor(ops NetlinkOps, rules config.RulesConfig, log *slog.Logger) PlumbWatchOptions {
	o := PlumbWatchOptions{FirstTable: rules.TableBase, LastTable: rules.LastTable(), Log: log}
	if n, ok := ops.(*nlOps); ok {
		o.Notify, o.Namespace = true, n.ns
	}
	return o
}

// Intact reports the result of the last pass.
func (w *PlumbWatcher) Intact() bool { return w.intact.Load() }

// Repairs returns the repairs counted so far, by kind.
func (w *PlumbWatcher) Repairs(kind string) uint64 {
	for i, k := range RepairKinds {
		if k == kind {
			return w.repairs[i].Load()
		}
	}
	return 0
}

// Run checks the plumbing once, then on every relevant notification and
// every Interval, until ctx ends. It returns nil.
func (w *PlumbWatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if w.opts.Notify {
		wg.Add(1)
		go func() { defer wg.Done(); w.listen(ctx) }()
	}
	w.pass()
	tick := time.NewTicker(w.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-w.kicks:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(repairSettle):
			}
			select { // notifications of the burst are covered by this pass
			case <-w.kicks:
			default:
			}
		}
		w.pass()
	}
}

func (w *PlumbWatcher) kick() {
	select {
	case w.kicks <- struct{}{}:
	default:
	}
}

// pass runs one Repair and records its outcome.
func (w *PlumbWatcher) pass() {
	res, err := w.p.Repair()
	w.repairs[0].Add(uint64(res.Rules))
	w.repairs[1].Add(uint64(res.Routes))
	ok := err == nil && len(res.Missing) == 0
	w.intact.Store(ok)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	w.mu.Lock()
	changed := msg != w.lastErr
	w.lastErr = msg
	w.mu.Unlock()
	switch {
	case changed && err != nil:
		w.opts.Log.Error("plumbing repair failed", "err", err)
	case changed:
		w.opts.Log.Info("plumbing intact again")
	}
}

// listen turns rtnetlink notifications into passes until ctx ends. A
// subscription that breaks is renewed after a second (bounded retries
// cost nothing: the periodic pass goes on meanwhile).
func (w *PlumbWatcher) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := w.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		w.opts.Log.Warn("plumbing notifications lost, subscribing again", "err", err)
		w.kick()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (w *PlumbWatcher) listenOnce(ctx context.Context) error {
	groups := []uint{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV6_ROUTE, unix.RTNLGRP_IPV6_RULE}
	var s *nl.NetlinkSocket
	var err error
	if w.opts.Namespace != nil {
		s, err = nl.SubscribeAt(*w.opts.Namespace, netns.None(), unix.NETLINK_ROUTE, groups...)
	} else {
		s, err = nl.Subscribe(unix.NETLINK_ROUTE, groups...)
	}
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, s.Close) // unblocks Receive
	defer func() {
		if stop() {
			s.Close()
		}
	}()
	// Subscribed: anything removed before now is found by this pass.
	w.kick()
	for {
		msgs, _, err := s.Receive()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, syscall.ENOBUFS):
			w.kick() // notifications were dropped: look at everything
			continue
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return err
		}
		for _, m := range msgs {
			if w.relevant(m) {
				w.kick()
			}
		}
	}
}

// relevant: a rule deleted, a route deleted from one of the gateway's
// tables, or a link that appeared or changed (an uplink that was absent).
func (w *PlumbWatcher) relevant(m syscall.NetlinkMessage) bool {
	switch m.Header.Type {
	case unix.RTM_DELRULE, unix.RTM_NEWLINK:
		return true
	case unix.RTM_DELROUTE:
		t := routeTable(m.Data)
		return t >= w.opts.FirstTable && t <= w.opts.LastTable
	}
	return false
}

// routeTable reads the table of a route message: RTA_TABLE when present
// (tables above 255), else rtm_table; -1 if the message is short. It walks
// the attributes itself: nl.ParseRouteAttr panics on a truncated one.
func routeTable(b []byte) int {
	if len(b) < unix.SizeofRtMsg {
		return -1
	}
	table := int(b[4]) // rtm_table
	for a := b[unix.SizeofRtMsg:]; len(a) >= unix.SizeofRtAttr; {
		n := int(binary.NativeEndian.Uint16(a[0:]))
		if n < unix.SizeofRtAttr || n > len(a) {
			break
		}
		if binary.NativeEndian.Uint16(a[2:]) == unix.RTA_TABLE && n >= unix.SizeofRtAttr+4 {
			return int(binary.NativeEndian.Uint32(a[unix.SizeofRtAttr:]))
		}
		a = a[min((n+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1), len(a)):]
	}
	return table
}

// Describe implements prometheus.Collector.
func (w *PlumbWatcher) Describe(ch chan<- *prometheus.Desc) {
	ch <- w.repairsDesc
	ch <- w.intactDesc
}

// Collect implements prometheus.Collector.
func (w *PlumbWatcher) Collect(ch chan<- prometheus.Metric) {
	for i, k := range RepairKinds {
		ch <- prometheus.MustNewConstMetric(w.repairsDesc, prometheus.CounterValue, float64(w.repairs[i].Load()), k)
	}
	intact := 0.0
	if w.intact.Load() {
		intact = 1
	}
	ch <- prometheus.MustNewConstMetric(w.intactDesc, prometheus.GaugeValue, intact)
}

package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netns"

	"github.com/shim6gw/shim6gw/fastpath"
	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/internal/nsrun"
	"github.com/shim6gw/shim6gw/rewrite"
)

// Values of dataplane.fastpath (config.FastpathAuto and its siblings).
const (
	FastpathAuto = config.FastpathAuto
	FastpathEBPF = config.FastpathEBPF
	FastpathOff  = config.FastpathOff
)

// FastpathOptions configure StartFastpath.
type FastpathOptions struct {
	Mode    string // dataplane.fastpath; "" means auto
	LAN     string
	Uplinks []string
	// TUN is the gateway's TUN device: the program looks routes up as if
	// its packets came out of it, so the TUN path's rules pick the uplink.
	TUN string
	// MaxContexts sizes the maps (limits.max_contexts at start; a reload
	// that raises it leaves the contexts beyond on the TUN path).
	MaxContexts int
	Log         *slog.Logger
}

// Fastpath is the kernel fast path (package fastpath) as the daemon runs
// it. A nil *Fastpath is the TUN path alone: every method does nothing.
type Fastpath struct {
	prog *fastpath.Program
	log  *slog.Logger

	// ns is the network namespace the program was attached in; in auto
	// mode a watcher re-lists its netfilter chains every filterRecheck
	// and detaches the program for good when a forward filter appears.
	ns       netns.NsHandle
	stop     chan struct{}
	stopOnce sync.Once
	watching sync.WaitGroup

	mu      sync.Mutex
	att     *fastpath.Attachment // nil once detached (failed publish, netfilter)
	tooMany bool                 // logged that contexts beyond the maps stay on the TUN path
	exclude func(netip.Addr) bool

	packets, bytes *prometheus.Desc
}

// StartFastpath removes fast-path programs a previous run left on the
// interfaces, then loads the program and attaches it to the LAN interface
// and every uplink. It returns nil (and no error) when the mode is off, or
// when it is auto and the fast path cannot run, having logged why.
func StartFastpath(o FastpathOptions) (*Fastpath, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	switch o.Mode {
	case "", FastpathAuto, FastpathEBPF, FastpathOff:
	default:
		return nil, fmt.Errorf("gateway: dataplane.fastpath %q: want auto, ebpf or off", o.Mode)
	}
	ifaces := append([]string{o.LAN}, o.Uplinks...)
	if n, err := fastpath.Cleanup(ifaces); n > 0 || err != nil && o.Mode != FastpathOff {
		log.Info("removed fast-path programs of a previous run", "programs", n, "err", err)
	}
	if o.Mode == FastpathOff {
		return nil, nil
	}
	filters, err := forwardFilters()
	if err != nil {
		log.Info("cannot list the netfilter rules the kernel fast path would bypass", "err", err)
	}
	if len(filters) > 0 {
		if o.Mode != FastpathEBPF {
			log.Warn("kernel fast path not used: netfilter filters forwarded packets here and would not see the ones it forwards; every packet takes the TUN path (dataplane.fastpath: ebpf uses it anyway)",
				"filters", filters)
			return nil, nil
		}
		log.Warn("kernel fast path bypasses netfilter for the packets it forwards", "filters", filters)
	}
	f, err := startFastpath(o, log)
	if err != nil {
		if o.Mode == FastpathEBPF {
			return nil, err
		}
		log.Warn("kernel fast path unavailable, every packet takes the TUN path", "reason", err)
		return nil, nil
	}
	log.Info("kernel fast path attached", "interfaces", ifaces)
	if o.Mode != FastpathEBPF {
		if f.ns, err = netns.Get(); err == nil {
			f.watching.Go(func() { f.watchFilters(filterRecheck) })
		}
	}
	return f, nil
}

// filterRecheck is how often auto mode looks for netfilter chains that
// appeared after the start.
const filterRecheck = 5 * time.Second

func (f *Fastpath) watchFilters(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			if !f.recheckFilters() {
				return // detached for good: nothing left to watch
			}
		}
	}
}

// recheckFilters detaches the program when netfilter now filters
// forwarded IPv6 in the gateway's namespace: the program would bypass
// the filter. It stays detached until a restart (one log line). It
// reports whether the program is still attached.
func (f *Fastpath) recheckFilters() bool {
	var filters []string
	err := nsrun.In(f.ns, func() error {
		var err error
		filters, err = forwardFilters()
		return err
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.att == nil || err != nil || len(filters) == 0 {
		return f.att != nil
	}
	f.att.Close()
	f.att = nil
	f.log.Warn("kernel fast path detached: netfilter now filters forwarded packets here and would not see the ones it forwards; every packet takes the TUN path until a restart",
		"filters", filters)
	return false
}

func startFastpath(o FastpathOptions, log *slog.Logger) (*Fastpath, error) {
	tun, err := net.InterfaceByName(o.TUN)
	if err != nil {
		return nil, fmt.Errorf("gateway: fast path: tun: %w", err)
	}
	prog, err := fastpath.Load(fastpath.Options{TUNIndex: tun.Index, MaxContexts: o.MaxContexts})
	if err != nil {
		return nil, err
	}
	att, err := prog.Attach(o.LAN, o.Uplinks)
	if err != nil {
		prog.Close()
		return nil, err
	}
	return &Fastpath{
		prog: prog, att: att, log: log, stop: make(chan struct{}), ns: -1,
		packets: prometheus.NewDesc("shim6gw_fastpath_packets_total",
			"Packets the kernel fast path saw, by path (fast: forwarded by it; tun: handed to the TUN path) and verdict.", []string{"path", "verdict"}, nil),
		bytes: prometheus.NewDesc("shim6gw_fastpath_bytes_total",
			"Bytes (IPv6 header on) the kernel fast path saw, by path and verdict.", []string{"path", "verdict"}, nil),
	}, nil
}

// ExcludeLocal keeps the contexts of local ULIDs for which skip reports
// true on the TUN path: the SLAAC translation's ULIDs, whose packets the
// data plane translates around the rewriter and the program cannot. Call
// it before the first Publish.
func (f *Fastpath) ExcludeLocal(skip func(netip.Addr) bool) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exclude = skip
}

// Publish mirrors a table published to the rewrite.Rewriter into the
// kernel; call it right after Rewriter.Publish with the same Config and
// Table. If the maps cannot follow, the program is detached (one log
// line) so that it never forwards by a stale table.
func (f *Fastpath) Publish(cfg rewrite.Config, t *rewrite.Table) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.att == nil {
		return
	}
	if f.exclude != nil {
		kept := make([]rewrite.ContextConfig, 0, len(cfg.Contexts))
		for _, cc := range cfg.Contexts {
			if !f.exclude(cc.LocalULID) {
				kept = append(kept, cc)
			}
		}
		cfg.Contexts = kept
	}
	err := f.prog.Maps().Apply(cfg, t)
	if errors.Is(err, fastpath.ErrTooMany) {
		// The contexts that fit are mirrored; the rest take the TUN path.
		if !f.tooMany {
			f.log.Warn("kernel fast path full: further contexts take the TUN path", "err", err)
		}
		f.tooMany = true
		return
	}
	f.tooMany = false
	if err != nil {
		f.log.Error("kernel fast path detached: its maps cannot follow the table; every packet takes the TUN path", "err", err)
		f.att.Close()
		f.att = nil
	}
}

// Harvest folds the program's traffic stamps into the contexts'
// rewrite.Stamps; call it before reading them for REAP, with now read
// from the clock the data plane stamps with.
func (f *Fastpath) Harvest(now int64) {
	if f != nil {
		f.prog.Maps().Harvest(now)
	}
}

// Close detaches and unloads the program.
func (f *Fastpath) Close() error {
	if f == nil {
		return nil
	}
	f.stopOnce.Do(func() { close(f.stop) })
	f.watching.Wait()
	if f.ns.IsOpen() {
		f.ns.Close()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var err error
	if f.att != nil {
		err = f.att.Close()
		f.att = nil
	}
	return errors.Join(err, f.prog.Close())
}

// Describe implements prometheus.Collector.
func (f *Fastpath) Describe(ch chan<- *prometheus.Desc) {
	ch <- f.packets
	ch <- f.bytes
}

// Collect implements prometheus.Collector.
func (f *Fastpath) Collect(ch chan<- prometheus.Metric) {
	stats, err := f.prog.Maps().Stats()
	if err != nil {
		return
	}
	for v, s := range stats {
		verdict := fastpath.Verdict(v)
		ch <- prometheus.MustNewConstMetric(f.packets, prometheus.CounterValue, float64(s.Packets), verdict.Path(), verdict.String())
		ch <- prometheus.MustNewConstMetric(f.bytes, prometheus.CounterValue, float64(s.Bytes), verdict.Path(), verdict.String())
	}
}

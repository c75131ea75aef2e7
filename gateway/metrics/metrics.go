package metrics

import (
	"net/http"
	"runtime"
	"sort"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
)

// Closed label vocabularies, derived from the enums of packages shim6 and
// rewrite. A source may only use these values; anything else is not
// exported (ULIDs, locators and tags never become labels).
var (
	// ContextStateLabels are RFC 5533 §6.2 states (IDLE is not stored).
	ContextStateLabels = stateLabels()
	// EstablishmentResultLabels: how a context establishment ended.
	EstablishmentResultLabels = []string{"established", "failed", "no_support", "recovered"}
	// MessageTypeLabels are the control message types (RFC 5533 §5.3
	// Table 1, RFC 5534 §5) plus "unknown".
	MessageTypeLabels = typeLabels()
	// MessageDirectionLabels: control messages received or sent.
	MessageDirectionLabels = []string{"rx", "tx"}
	// ControlDropLabels are the engine's reasons to ignore a control
	// message.
	ControlDropLabels = enumLabels(shim6.NumDropReasons, func(d shim6.DropReason) bool { return true })
	// PacketDirectionLabels are data-plane directions.
	PacketDirectionLabels = enumLabels(rewrite.NumDirections, func(rewrite.Direction) bool { return true })
	// PathKindLabels are data-plane path kinds; dropped packets are
	// counted by reason instead.
	PathKindLabels = enumLabels(rewrite.NumPathKinds, func(k rewrite.PathKind) bool { return k != rewrite.PathDropped })
	// PacketDropLabels are data-plane drop reasons.
	PacketDropLabels = enumLabels(rewrite.NumDropReasons, func(r rewrite.DropReason) bool { return r != rewrite.NotDropped })
)

// enumLabels returns the String of every value below n that keep accepts.
func enumLabels[E interface {
	~uint8 | ~int
	String() string
}](n E, keep func(E) bool) []string {
	var out []string
	for e := E(0); e < n; e++ {
		if keep(e) {
			out = append(out, e.String())
		}
	}
	return out
}

func stateLabels() []string {
	var out []string
	for s := shim6.StateI1Sent; s <= shim6.StateNoSupport; s++ {
		out = append(out, StateLabel(s))
	}
	return out
}

func typeLabels() []string {
	var out []string
	for t := range shim6.Type(128) {
		if t.Known() {
			out = append(out, TypeLabel(t))
		}
	}
	return append(out, "unknown")
}

// MessageKey labels a control message counter.
type MessageKey struct{ Type, Direction string }

// PathKey labels a data-plane packet or byte counter.
type PathKey struct{ Direction, Path string }

// UplinkKey labels a per-uplink packet or byte counter.
type UplinkKey struct{ Uplink, Direction string }

// DropKey labels a data-plane drop counter.
type DropKey struct{ Direction, Reason string }

// ControlStats is the control plane's view at scrape time.
type ControlStats struct {
	ContextsByState map[string]uint64 // ContextStateLabels → contexts now
	Establishments  map[string]uint64 // EstablishmentResultLabels → total
	Messages        map[MessageKey]uint64
	Drops           map[string]uint64 // ControlDropLabels → total
	Explorations    uint64            // REAP explorations started (RFC 5534 §4.3)
	Failovers       uint64            // REAP moves to a new locator pair
	// Evictions: idle or unestablished contexts dropped at max_contexts
	// to make room for a new one.
	Evictions uint64
}

// DataplaneStats is the data plane's view at scrape time (sums of its
// per-worker atomic counters).
type DataplaneStats struct {
	Packets map[PathKey]uint64
	Bytes   map[PathKey]uint64
	Drops   map[DropKey]uint64
	// UplinkPackets and UplinkBytes count forwarded packets by the uplink
	// they left or arrived by (outbound by source, inbound by destination
	// locator); every configured uplink appears.
	UplinkPackets, UplinkBytes map[UplinkKey]uint64
	// NoticeDrops: "traffic seen" and other notices lost because the
	// control loop's queue was full. InjectErrors: control packets the
	// TUN refused. ControlQueueDrops: control messages lost because the
	// control loop's queue was full.
	NoticeDrops, InjectErrors, ControlQueueDrops uint64
}

// ControlStatsSource is read at scrape time from the HTTP goroutine, so it
// must not touch the engine directly: the control loop publishes a copy
// (e.g. through an atomic.Pointer) and this returns it.
type ControlStatsSource interface{ ControlStats() ControlStats }

// DataplaneStatsSource sums the data plane's counters; safe for
// concurrent use.
type DataplaneStatsSource interface{ DataplaneStats() DataplaneStats }

// UplinkStateSource reports uplink states; *Monitor implements it.
type UplinkStateSource interface {
	UplinkStates() []plumbing.UplinkStatus
}

// MetricsOptions connects the collector to its sources; nil sources
// export zeros.
type MetricsOptions struct {
	Version   string // release version (shim6gw version)
	Revision  string // VCS revision; "" when unknown
	Control   ControlStatsSource
	Dataplane DataplaneStatsSource
	Uplinks   UplinkStateSource
	// TUNUp reports whether the TUN device is up (nil: false).
	TUNUp func() bool
	// TUNDropped reads the kernel's tx_dropped counter of the TUN (packets
	// the kernel could not queue for the gateway); ok false: not exported.
	TUNDropped func() (n uint64, ok bool)
	// Runtime adds the Go runtime and process collectors.
	Runtime bool
}

// Metrics is the gateway's Prometheus collector on a private registry.
// Histograms are fed directly; everything else is read from the sources
// when scraped, so nothing is done on the packet path.
type Metrics struct {
	FailoverDuration prometheus.Histogram // seconds from exploration start to failover
	PathRTT          prometheus.Histogram // seconds, REAP probe round trips
	BatchSize        prometheus.Histogram // packets per TUN read (tunnel.Config.BatchSizes)

	reloadsOK, reloadsFailed atomic.Uint64
	lastReloadFailed         atomic.Bool

	opts  MetricsOptions
	reg   *prometheus.Registry
	descs metricDescs
	names []string
}

type metricDescs struct {
	buildInfo, contexts, establishments, messages, controlDrops, explorations, failovers, evictions, uplinkUp, tunUp, packets, bytes, packetDrops,
	reloads, lastReloadOK, noticeDrops, injectErrors, controlQueueDrops, tunDropped, uplinkPackets, uplinkBytes *prometheus.Desc
}

// newHistogram builds a histogram named shim6gw_<subsystem>_<name> and
// records the name; the caller registers it.
func (m *Metrics) newHistogram(subsystem, name, help string, buckets []float64) prometheus.Histogram {
	m.names = append(m.names, prometheus.BuildFQName("shim6gw", subsystem, name))
	return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "shim6gw", Subsystem: subsystem,
		Name: name, Help: help, Buckets: buckets})
}

// newDesc builds a descriptor named shim6gw_<subsystem>_<name> and
// records the name.
func (m *Metrics) newDesc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	fq := prometheus.BuildFQName("shim6gw", subsystem, name)
	m.names = append(m.names, fq)
	return prometheus.NewDesc(fq, help, labels, nil)
}

// NewMetrics builds the collector and its registry.
func NewMetrics(opts MetricsOptions) *Metrics {
	if opts.Version == "" {
		opts.Version = "dev"
	}
	m := &Metrics{opts: opts, reg: prometheus.NewRegistry()}
	m.FailoverDuration = m.newHistogram("reap", "failover_duration_seconds",
		"Time from the start of a REAP exploration to the failover.", FailoverBuckets)
	m.PathRTT = m.newHistogram("reap", "path_rtt_seconds", "Round-trip time of REAP probes.", RTTBuckets)
	m.BatchSize = m.newHistogram("tunnel", "batch_size", "Packets per TUN read.", BatchBuckets)
	m.descs = metricDescs{
		buildInfo:         m.newDesc("", "build_info", "Build information; always 1.", "version", "revision", "goversion"),
		contexts:          m.newDesc("", "contexts", "Shim6 contexts by state (RFC 5533 §6.2).", "state"),
		establishments:    m.newDesc("context", "establishments_total", "Context establishments by result.", "result"),
		messages:          m.newDesc("control", "messages_total", "Shim6 control messages by type and direction.", "type", "direction"),
		controlDrops:      m.newDesc("control", "dropped_messages_total", "Control messages the engine ignored, by reason.", "reason"),
		explorations:      m.newDesc("reap", "explorations_total", "REAP path explorations started (RFC 5534 §4.3)."),
		failovers:         m.newDesc("reap", "failovers_total", "REAP moves of a context to another locator pair."),
		evictions:         m.newDesc("context", "evictions_total", "Idle or unestablished contexts evicted at limits.max_contexts to make room for a new one."),
		uplinkUp:          m.newDesc("uplink", "up", "1 while the uplink is usable (carrier, address, route).", "uplink"),
		uplinkPackets:     m.newDesc("uplink", "packets_total", "Packets forwarded through the uplink: outbound by source, inbound by destination locator.", "uplink", "direction"),
		uplinkBytes:       m.newDesc("uplink", "bytes_total", "Bytes forwarded through the uplink: outbound by source, inbound by destination locator.", "uplink", "direction"),
		lastReloadOK:      m.newDesc("config", "last_reload_successful", "1 unless the last configuration reload (SIGHUP) was rejected."),
		tunUp:             m.newDesc("tunnel", "up", "1 while the TUN device is up."),
		packets:           m.newDesc("dataplane", "packets_total", "Packets through the data plane by direction and path kind.", "direction", "path"),
		bytes:             m.newDesc("dataplane", "bytes_total", "Bytes through the data plane by direction and path kind.", "direction", "path"),
		packetDrops:       m.newDesc("rewrite", "dropped_packets_total", "Packets the data plane dropped, by reason.", "direction", "reason"),
		reloads:           m.newDesc("config", "reloads_total", "Configuration reloads (SIGHUP) by result.", "result"),
		noticeDrops:       m.newDesc("dataplane", "dropped_notices_total", "Data-plane notices (traffic seen, unknown tag, path error) lost because the control loop's queue was full."),
		injectErrors:      m.newDesc("control", "inject_errors_total", "Control packets the TUN refused to take."),
		controlQueueDrops: m.newDesc("control", "queue_dropped_messages_total", "Control messages (and ICMPv6 errors about them) lost because the control loop's queue was full."),
		tunDropped:        m.newDesc("tunnel", "dropped_packets_total", "Packets the kernel dropped on the TUN's transmit queue (tx_dropped): the gateway did not read fast enough."),
	}
	m.reg.MustRegister(m, m.FailoverDuration, m.PathRTT, m.BatchSize)
	if opts.Runtime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Registry returns the private registry (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text (or negotiated)
// format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveReload counts a SIGHUP reload.
func (m *Metrics) ObserveReload(ok bool) {
	if ok {
		m.reloadsOK.Add(1)
	} else {
		m.reloadsFailed.Add(1)
	}
	m.lastReloadFailed.Store(!ok)
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	d := m.descs
	for _, x := range []*prometheus.Desc{d.buildInfo, d.contexts, d.establishments, d.messages, d.controlDrops,
		d.explorations, d.failovers, d.evictions, d.uplinkUp, d.tunUp, d.packets, d.bytes,
		d.packetDrops, d.reloads, d.lastReloadOK, d.noticeDrops, d.injectErrors, d.controlQueueDrops, d.tunDropped, d.uplinkPackets, d.uplinkBytes} {
		ch <- x
	}
}

// Collect implements prometheus.Collector: it reads every source once.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	d := m.descs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(d.buildInfo, 1, m.opts.Version, m.opts.Revision, runtime.Version())

	var cs ControlStats
	if m.opts.Control != nil {
		cs = m.opts.Control.ControlStats()
	}
	for _, s := range ContextStateLabels {
		gauge(d.contexts, float64(cs.ContextsByState[s]), s)
	}
	for _, r := range EstablishmentResultLabels {
		counter(d.establishments, cs.Establishments[r], r)
	}
	for _, ty := range MessageTypeLabels {
		for _, dir := range MessageDirectionLabels {
			counter(d.messages, cs.Messages[MessageKey{ty, dir}], ty, dir)
		}
	}
	for _, r := range ControlDropLabels {
		counter(d.controlDrops, cs.Drops[r], r)
	}
	counter(d.explorations, cs.Explorations)
	counter(d.evictions, cs.Evictions)
	counter(d.failovers, cs.Failovers)

	if m.opts.Uplinks != nil {
		states := m.opts.Uplinks.UplinkStates()
		sort.Slice(states, func(i, j int) bool { return states[i].Name < states[j].Name })
		for _, u := range states {
			gauge(d.uplinkUp, b2f(u.Up), u.Name)
		}
	}
	gauge(d.tunUp, b2f(m.opts.TUNUp != nil && m.opts.TUNUp()))
	if m.opts.TUNDropped != nil {
		if n, ok := m.opts.TUNDropped(); ok {
			counter(d.tunDropped, n)
		}
	}

	var ds DataplaneStats
	if m.opts.Dataplane != nil {
		ds = m.opts.Dataplane.DataplaneStats()
	}
	for _, dir := range PacketDirectionLabels {
		for _, p := range PathKindLabels {
			counter(d.packets, ds.Packets[PathKey{dir, p}], dir, p)
			counter(d.bytes, ds.Bytes[PathKey{dir, p}], dir, p)
		}
		for _, r := range PacketDropLabels {
			counter(d.packetDrops, ds.Drops[DropKey{dir, r}], dir, r)
		}
	}
	counter(d.noticeDrops, ds.NoticeDrops)
	counter(d.injectErrors, ds.InjectErrors)
	counter(d.controlQueueDrops, ds.ControlQueueDrops)
	counter(d.reloads, m.reloadsOK.Load(), "success")
	counter(d.reloads, m.reloadsFailed.Load(), "failure")
	gauge(d.lastReloadOK, b2f(!m.lastReloadFailed.Load()))
	for _, k := range sortedKeys(ds.UplinkPackets) {
		counter(d.uplinkPackets, ds.UplinkPackets[k], k.Uplink, k.Direction)
		counter(d.uplinkBytes, ds.UplinkBytes[k], k.Uplink, k.Direction)
	}
}

// sortedKeys orders the uplink keys for a stable exposition.
func sortedKeys(m map[UplinkKey]uint64) []UplinkKey {
	keys := make([]UplinkKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Uplink != keys[j].Uplink {
			return keys[i].Uplink < keys[j].Uplink
		}
		return keys[i].Direction < keys[j].Direction
	})
	return keys
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// MetricNames returns the names of every metric family the collector and
// the plumbing watcher export, histograms as their base name (for
// dashboards and docs).
func MetricNames() []string {
	names := append(append([]string(nil), NewMetrics(MetricsOptions{}).names...), plumbing.PlumbMetricNames...)
	sort.Strings(names)
	return names
}

// Bucket layouts of the gateway's histograms.
var (
	// FailoverBuckets spans REAP failovers: probes start after 0.5 s and
	// back off to 60 s (RFC 5534 §4.3, §7), plus the Send Timeout.
	FailoverBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120}
	// RTTBuckets spans path round-trip times from a LAN lab to satellites.
	RTTBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
	// BatchBuckets spans TUN batch sizes (the backends read up to 128).
	BatchBuckets = prometheus.ExponentialBuckets(1, 2, 8)
)

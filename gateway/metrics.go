package gateway

import (
	"net/http"
	"runtime"
	"sort"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Closed label vocabularies. A source may only use these values; anything
// else is not exported (ULIDs, locators and tags never become labels).
var (
	// ContextStateLabels are RFC 5533 §6.2 states (IDLE is not stored).
	ContextStateLabels = []string{"i1_sent", "i2_sent", "i2bis_sent", "established", "e_failed", "no_support"}
	// EstablishmentResultLabels: how a context establishment ended.
	EstablishmentResultLabels = []string{"established", "failed", "no_support", "recovered"}
	// MessageTypeLabels are the control message types (RFC 5533 §5.3
	// Table 1, RFC 5534 §5) plus "unknown".
	MessageTypeLabels = []string{"i1", "r1", "i2", "r2", "r1bis", "i2bis", "update_request", "update_ack",
		"keepalive", "probe", "error", "unknown"}
	// MessageDirectionLabels: control messages received or sent.
	MessageDirectionLabels = []string{"rx", "tx"}
	// ControlDropLabels are the engine's reasons to ignore a control
	// message (shim6.DropReason names).
	ControlDropLabels = []string{"malformed", "unknown_type", "critical_option", "no_context", "bad_validator",
		"stale_nonce", "verify_failed", "wrong_state", "bad_locator", "rate_limited", "bad_address", "bad_preferences",
		"too_long", "bad_validator_len", "context_limit"}
	// PacketDirectionLabels are data-plane directions (rewrite.Direction).
	PacketDirectionLabels = []string{"outbound", "inbound"}
	// PathKindLabels are data-plane path kinds (rewrite.PathKind names).
	PathKindLabels = []string{"passthrough", "outbound_shim", "inbound_shim", "control", "fallback_out",
		"fallback_in", "icmp_error", "too_big"}
	// PacketDropLabels are data-plane drop reasons (rewrite.DropReason
	// names, without not_dropped).
	PacketDropLabels = []string{"malformed", "no_headroom", "too_big", "unknown_tag", "locator_mismatch",
		"bad_payload_header", "fragmented_shim"}
)

// MessageKey labels a control message counter.
type MessageKey struct{ Type, Direction string }

// PathKey labels a data-plane packet or byte counter.
type PathKey struct{ Direction, Path string }

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
}

// DataplaneStats is the data plane's view at scrape time (sums of its
// per-worker atomic counters).
type DataplaneStats struct {
	Packets map[PathKey]uint64
	Bytes   map[PathKey]uint64
	Drops   map[DropKey]uint64
	// BatchSizes, when set, is exported as shim6gw_tunnel_batch_size
	// instead of Metrics.BatchSize (for a data plane that keeps its own
	// buckets, like tunnel.Stats.BatchSizes with Sum = RxPackets).
	BatchSizes *BucketCounts
	// NoticeDrops: "traffic seen" and other notices lost because the
	// control loop's queue was full. InjectErrors: control packets the
	// TUN refused.
	NoticeDrops, InjectErrors uint64
}

// BucketCounts is a histogram kept elsewhere: Counts[i] counts values in
// (Bounds[i-1], Bounds[i]]; the last of len(Bounds)+1 counts is +Inf.
type BucketCounts struct {
	Bounds []float64
	Counts []uint64
	Sum    float64
}

// cumulative converts to the form prometheus.MustNewConstHistogram takes;
// ok is false when the shape is inconsistent.
func (b *BucketCounts) cumulative() (count uint64, sum float64, buckets map[float64]uint64, ok bool) {
	if len(b.Counts) != len(b.Bounds)+1 {
		return 0, 0, nil, false
	}
	buckets = make(map[float64]uint64, len(b.Bounds))
	for i, bound := range b.Bounds {
		count += b.Counts[i]
		buckets[bound] = count
	}
	return count + b.Counts[len(b.Bounds)], b.Sum, buckets, true
}

// ControlStatsSource is read at scrape time from the HTTP goroutine, so it
// must not touch the engine directly: the control loop publishes a copy
// (e.g. through an atomic.Pointer) and this returns it.
type ControlStatsSource interface{ ControlStats() ControlStats }

// DataplaneStatsSource sums the data plane's counters; safe for
// concurrent use.
type DataplaneStatsSource interface{ DataplaneStats() DataplaneStats }

// UplinkStateSource reports uplink states; *Monitor implements it.
type UplinkStateSource interface{ UplinkStates() []UplinkStatus }

// MetricsOptions connects the collector to its sources; nil sources
// export zeros.
type MetricsOptions struct {
	Version   string
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
	FailoverDuration *Histogram // seconds from exploration start to failover
	PathRTT          *Histogram // seconds, REAP probe round trips
	BatchSize        *Histogram // packets per TUN read

	reloadsOK, reloadsFailed atomic.Uint64

	opts  MetricsOptions
	reg   *prometheus.Registry
	descs metricDescs
	names []string
}

type metricDescs struct {
	buildInfo, contexts, establishments, messages, controlDrops, explorations, failovers,
	failoverDuration, pathRTT, uplinkUp, tunUp, packets, bytes, packetDrops, batchSize,
	reloads, noticeDrops, injectErrors, tunDropped *prometheus.Desc
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
	m := &Metrics{
		FailoverDuration: NewHistogram(FailoverBuckets),
		PathRTT:          NewHistogram(RTTBuckets),
		BatchSize:        NewHistogram(BatchBuckets),
		opts:             opts,
		reg:              prometheus.NewRegistry(),
	}
	m.descs = metricDescs{
		buildInfo:        m.newDesc("", "build_info", "Build information; always 1.", "version", "goversion"),
		contexts:         m.newDesc("context", "contexts", "Shim6 contexts by state (RFC 5533 §6.2).", "state"),
		establishments:   m.newDesc("context", "establishments_total", "Context establishments by result.", "result"),
		messages:         m.newDesc("control", "messages_total", "Shim6 control messages by type and direction.", "type", "direction"),
		controlDrops:     m.newDesc("control", "dropped_messages_total", "Control messages the engine ignored, by reason.", "reason"),
		explorations:     m.newDesc("reap", "explorations_total", "REAP path explorations started (RFC 5534 §4.3)."),
		failovers:        m.newDesc("reap", "failovers_total", "REAP moves of a context to another locator pair."),
		failoverDuration: m.newDesc("reap", "failover_duration_seconds", "Time from the start of a REAP exploration to the failover."),
		pathRTT:          m.newDesc("reap", "path_rtt_seconds", "Round-trip time of REAP probes."),
		uplinkUp:         m.newDesc("uplink", "up", "1 while the uplink is usable (carrier, address, route).", "uplink"),
		tunUp:            m.newDesc("tunnel", "up", "1 while the TUN device is up."),
		packets:          m.newDesc("dataplane", "packets_total", "Packets through the data plane by direction and path kind.", "direction", "path"),
		bytes:            m.newDesc("dataplane", "bytes_total", "Bytes through the data plane by direction and path kind.", "direction", "path"),
		packetDrops:      m.newDesc("rewrite", "dropped_packets_total", "Packets the data plane dropped, by reason.", "direction", "reason"),
		batchSize:        m.newDesc("tunnel", "batch_size", "Packets per TUN read."),
		reloads:          m.newDesc("config", "reloads_total", "Configuration reloads (SIGHUP) by result.", "result"),
		noticeDrops:      m.newDesc("dataplane", "dropped_notices_total", "Data-plane notices (traffic seen, unknown tag, path error) lost because the control loop's queue was full."),
		injectErrors:     m.newDesc("control", "inject_errors_total", "Control packets the TUN refused to take."),
		tunDropped:       m.newDesc("tunnel", "dropped_packets_total", "Packets the kernel dropped on the TUN's transmit queue (tx_dropped): the gateway did not read fast enough."),
	}
	m.reg.MustRegister(m)
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
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	d := m.descs
	for _, x := range []*prometheus.Desc{d.buildInfo, d.contexts, d.establishments, d.messages, d.controlDrops,
		d.explorations, d.failovers, d.failoverDuration, d.pathRTT, d.uplinkUp, d.tunUp, d.packets, d.bytes,
		d.packetDrops, d.batchSize, d.reloads, d.noticeDrops, d.injectErrors, d.tunDropped} {
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
	hist := func(desc *prometheus.Desc, h *Histogram) {
		count, sum, buckets := h.snapshot()
		ch <- prometheus.MustNewConstHistogram(desc, count, sum, buckets)
	}
	gauge(d.buildInfo, 1, m.opts.Version, runtime.Version())

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
	counter(d.failovers, cs.Failovers)
	hist(d.failoverDuration, m.FailoverDuration)
	hist(d.pathRTT, m.PathRTT)

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
	if bc := ds.BatchSizes; bc != nil {
		if count, sum, buckets, ok := bc.cumulative(); ok {
			ch <- prometheus.MustNewConstHistogram(d.batchSize, count, sum, buckets)
		}
	} else {
		hist(d.batchSize, m.BatchSize)
	}
	counter(d.noticeDrops, ds.NoticeDrops)
	counter(d.injectErrors, ds.InjectErrors)
	counter(d.reloads, m.reloadsOK.Load(), "success")
	counter(d.reloads, m.reloadsFailed.Load(), "failure")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// MetricNames returns the names of every metric family the collector
// exports, histograms as their base name (for dashboards and docs).
func MetricNames() []string {
	names := append(append([]string(nil), NewMetrics(MetricsOptions{}).names...), PlumbMetricNames...)
	sort.Strings(names)
	return names
}

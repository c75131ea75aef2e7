package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/internal/pcap"
	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
	"github.com/shim6gw/shim6gw/tunnel"
)

// ControllerOptions tunes a Controller; zero fields take defaults.
type ControllerOptions struct {
	// Capture, when set, receives every control message sent or received.
	Capture *pcap.Capture
	// Seed makes the engine's tags, nonces and jitter reproducible
	// (tests); zero means random.
	Seed [32]byte
	// DivertQueue is how many diverted control packets may wait for the
	// control loop (default 256); more are dropped and counted.
	DivertQueue int
	// NoticeQueue is how many data-plane notices may wait (default 1024).
	NoticeQueue int
	// ObserveInterval is how often the loop reads the contexts' traffic
	// stamps for REAP; 0 derives it from the timers (a tenth of the
	// shorter of the Send and Keepalive Timeouts, within [10 ms, 1 s]).
	ObserveInterval time.Duration
	// SnapshotInterval bounds how often /metrics and /debug/contexts
	// snapshots are refreshed when nothing notable happened (default
	// 250 ms); context and REAP events refresh them at once.
	SnapshotInterval time.Duration
	// Rewriter tunes the data plane's notice limiter and fallback flows.
	Rewriter rewrite.RewriterConfig
	// ICMPSource is the gateway's own global address, the source of the
	// ICMPv6 Packet Too Big messages it sends to LAN hosts whose packets
	// no longer fit once the payload header is added (docs/architecture.md §8).
	// Invalid: such packets are dropped silently (counted as too_big).
	ICMPSource netip.Addr
}

// Controller is the gateway's control plane (docs/architecture.md §5): Run owns the
// shim6.Engine on one goroutine and connects it to the data plane
// (Dataplane over one tunnel.Pipeline per TUN queue), the uplink monitor
// and configuration reloads. Its ControlStats, Contexts and
// DataplaneStats methods serve /metrics and /debug/contexts from
// snapshots, safe to call from any goroutine.
type Controller struct {
	opts  ControllerOptions
	clock clock
	rw    *rewrite.Rewriter
	dp    *Dataplane
	fp    *Fastpath // set by Run from ControlInputs; nil: TUN path alone

	bookMu sync.Mutex
	book   *hba.Book // siteBook

	mu      sync.Mutex
	devs    []tunnel.Device
	started bool

	stats    atomic.Pointer[metrics.ControlStats]
	contexts atomic.Pointer[[]metrics.ContextInfo]
	uplinkUp atomic.Int32 // uplinks not known to be down, -1 before Run
	round    atomic.Int64 // unix nanoseconds of the control loop's last round
	divert   atomic.Pointer[tunnel.DivertQueue]

	// InjectErrors counts control packets the TUN refused.
	InjectErrors atomic.Uint64
}

// NewController returns a Controller; attach its TUN devices with Attach
// (or through OpenTUN) before Run.
func NewController(opts ControllerOptions) *Controller {
	if opts.DivertQueue <= 0 {
		opts.DivertQueue = 256
	}
	if opts.SnapshotInterval <= 0 {
		opts.SnapshotInterval = 250 * time.Millisecond
	}
	c := &Controller{opts: opts, clock: newClock(), rw: rewrite.NewRewriter(opts.Rewriter)}
	c.dp = newDataplane(c.rw, opts.NoticeQueue, c.clock)
	c.stats.Store(&metrics.ControlStats{})
	c.contexts.Store(&[]metrics.ContextInfo{})
	c.uplinkUp.Store(-1)
	return c
}

// Dataplane returns the data plane (the pipelines' Processor).
func (c *Controller) Dataplane() *Dataplane { return c.dp }

// Attach adds TUN devices (one per queue) for Run to serve.
func (c *Controller) Attach(devs ...tunnel.Device) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.devs = append(c.devs, devs...)
}

// OpenFunc opens the TUN device (all its queues) for a TUNConfig.
type OpenFunc func(cfg config.TUNConfig) ([]tunnel.Device, error)

// OpenTUN adapts open to Hooks.OpenTUN: the devices are attached to the
// Controller and the returned Closer closes all of them.
func (c *Controller) OpenTUN(open OpenFunc) func(config.TUNConfig) (io.Closer, error) {
	return func(cfg config.TUNConfig) (io.Closer, error) {
		devs, err := open(cfg)
		if err != nil {
			return nil, err
		}
		c.Attach(devs...)
		return closeAll(devs), nil
	}
}

type closeAll []tunnel.Device

func (ds closeAll) Close() error {
	var errs []error
	for _, d := range ds {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}

// Hooks returns the daemon hooks served by this Controller, with open
// creating the TUN device.
func (c *Controller) Hooks(open OpenFunc) Hooks {
	return Hooks{
		OpenTUN: c.OpenTUN(open), Control: c.Run,
		ControlStats: c, DataplaneStats: c, Contexts: c,
		Ready:     []metrics.ReadyCheck{{Name: "locators", Check: c.locatorsReady}},
		Heartbeat: c.lastRound,
		LAN:       c.StartLAN,
	}
}

// StartLAN starts the LAN services of cfg on the controller's book and
// puts the SLAAC translator into its data plane.
func (c *Controller) StartLAN(cfg *config.Config, log *slog.Logger) (*LANServices, error) {
	book, err := c.siteBook(cfg)
	if err != nil {
		return nil, err
	}
	svc, err := StartLANServices(cfg.LAN, book, c.clock.nanos, log)
	if err != nil {
		return nil, err
	}
	if svc.SLAAC != nil {
		c.dp.SetSLAAC(svc.SLAAC)
	}
	return svc, nil
}

// siteBook derives the HBA book of cfg once: the LAN services and the
// control loop share it (a reload never changes it, config.PlanReload),
// and with hba.sec > 0 its derivation is slow.
func (c *Controller) siteBook(cfg *config.Config) (*hba.Book, error) {
	c.bookMu.Lock()
	defer c.bookMu.Unlock()
	if c.book == nil {
		b, err := hba.NewBook(cfg.HBA.Secret, cfg.LANPrefixes(), cfg.HBA.Hosts, hba.WithSec(uint8(cfg.HBA.Sec)))
		if err != nil {
			return nil, fmt.Errorf("gateway: hba book: %w", err)
		}
		c.book = b
	}
	return c.book, nil
}

// ControlStats implements ControlStatsSource from the last snapshot.
func (c *Controller) ControlStats() metrics.ControlStats { return *c.stats.Load() }

// Contexts implements ContextLister from the last snapshot.
func (c *Controller) Contexts() []metrics.ContextInfo {
	return append([]metrics.ContextInfo(nil), *c.contexts.Load()...)
}

// DataplaneStats implements DataplaneStatsSource.
func (c *Controller) DataplaneStats() metrics.DataplaneStats {
	ds := c.dp.DataplaneStats()
	ds.InjectErrors = c.InjectErrors.Load()
	if q := c.divert.Load(); q != nil {
		ds.ControlQueueDrops = q.Dropped.Load()
	}
	return ds
}

// lastRound is when the control loop last went round (it does at least
// every ObserveInterval, at most 1 s); zero before Run.
func (c *Controller) lastRound() time.Time {
	if n := c.round.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// ErrNoLocators: no uplink is usable, so no locator pair is (/readyz).
var ErrNoLocators = errors.New("gateway: no usable uplink")

func (c *Controller) locatorsReady() error {
	switch n := c.uplinkUp.Load(); {
	case n < 0:
		return errors.New("gateway: control loop not running")
	case n == 0:
		return ErrNoLocators
	}
	return nil
}

// Run is Hooks.Control: it builds the engine from in.Config, starts one
// pipeline per attached device and serves the engine until ctx ends. It
// returns nil after ctx ends and an error when the engine cannot be built
// or a pipeline fails.
func (c *Controller) Run(ctx context.Context, in ControlInputs) error {
	c.mu.Lock()
	devs, started := c.devs, c.started
	c.started = true
	c.mu.Unlock()
	if started {
		return errors.New("gateway: controller already ran")
	}
	if len(devs) == 0 {
		return errors.New("gateway: controller has no tun device")
	}
	log := in.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c.fp = in.Fastpath
	l, err := newControlLoop(c, in.Config, in.Metrics, log.With("component", "control"))
	if err != nil {
		return err
	}
	divert := tunnel.NewDivertQueue(c.opts.DivertQueue, max(in.Config.TUN.MTU, tunnel.ShimHeaderLen+shim6.MinMTU))
	c.divert.Store(divert)
	names := make([]string, len(in.Config.Uplinks))
	for i, u := range in.Config.Uplinks {
		names[i] = u.Name
	}
	c.dp.setUplinkNames(names)
	pcfg := tunnel.Config{Processor: c.dp, Divert: divert}
	if in.Metrics != nil {
		pcfg.BatchSizes = in.Metrics.BatchSize
	}
	pipes := make([]*tunnel.Pipeline, len(devs))
	for i, d := range devs {
		if pipes[i], err = tunnel.NewPipeline(d, pcfg); err != nil {
			return fmt.Errorf("gateway: pipeline: %w", err)
		}
	}
	l.pipes = pipes

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(pipes))
	var wg sync.WaitGroup
	for i, p := range pipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.Run(runCtx)
			if err == nil && runCtx.Err() == nil {
				err = tunnel.ErrClosed
			}
			if err != nil {
				err = fmt.Errorf("gateway: tun queue %d: %w", i, err)
			}
			errc <- err
		}()
	}
	err = l.serve(runCtx, in, divert, errc)
	cancel()
	wg.Wait()
	return err
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
)

// StateDir holds the default state files, which remember changed sysctls
// across a crash.
const StateDir = "/run/shim6gw"

// DefaultStateFile is the state file of a gateway whose TUN is named tun,
// in the network namespace of this process: sysctls are per namespace, so
// two gateways on one machine (the lab runs one per namespace, both with
// the same TUN name) never share one, and a restart after a crash in the
// same namespace finds the file of the crashed run.
func DefaultStateFile(tun string) string {
	return filepath.Join(StateDir, instanceName(tun)+".sysctl.json")
}

// UplinkWatcher is what the daemon needs of the uplink monitor; *Monitor
// implements it (tests substitute a fake).
type UplinkWatcher interface {
	Run(ctx context.Context) error
	Events() <-chan plumbing.UplinkEvent
	UplinkStates() []plumbing.UplinkStatus
	LinkUp(name string) bool
}

// Reload is a configuration accepted on SIGHUP, with what changed.
type Reload struct {
	Config *config.Config
	Plan   config.ReloadPlan
}

// ControlInputs is what the control loop gets from the daemon.
type ControlInputs struct {
	Config *config.Config
	// Uplinks carries the monitor's events (after the daemon re-installed
	// routes of an uplink that came back).
	Uplinks <-chan plumbing.UplinkEvent
	// Reloads carries accepted SIGHUP reloads (prefixes, timers, policy).
	Reloads <-chan Reload
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// Fastpath is the kernel fast path; nil: the TUN path alone.
	Fastpath *Fastpath
	// Running, if set, is called once when the loop serves events.
	Running func()
}

// Hooks connect the daemon to the packages gateway does not own.
type Hooks struct {
	// OpenTUN creates and opens the TUN device named cfg.Name (package
	// tunnel). The daemon sets its MTU and brings it up, and closes it
	// after removing the plumbing.
	OpenTUN func(cfg config.TUNConfig) (io.Closer, error)
	// Control runs the control loop until ctx ends; it owns the engine
	// and the data plane. A non-nil return other than ctx's error stops
	// the daemon.
	Control func(ctx context.Context, in ControlInputs) error
	// Sources for /metrics and /debug/contexts; nil exports nothing.
	ControlStats   metrics.ControlStatsSource
	DataplaneStats metrics.DataplaneStatsSource
	Contexts       metrics.ContextLister
	// Ready adds /readyz conditions (e.g. a usable locator pair).
	Ready []metrics.ReadyCheck
	// LAN, if set, starts the services for legacy hosts that cfg.LAN
	// enables (DHCPv6, RAs, SLAAC translation) once the plumbing is in.
	LAN func(cfg *config.Config, log *slog.Logger) (*LANServices, error)
	// Heartbeat, if set, returns when the control loop last went round;
	// the systemd watchdog is fed only while it is recent.
	Heartbeat func() time.Time
}

// DaemonOptions configures RunDaemon.
type DaemonOptions struct {
	ConfigPath string         // re-read on SIGHUP
	Config     *config.Config // as loaded from ConfigPath
	Ops        plumbing.NetlinkOps
	Monitor    UplinkWatcher // nil: plumbing.NewMonitor in the current namespace
	StateFile  string        // "": DefaultStateFile(config.Config.TUN.Name)
	// Signals delivers SIGHUP, SIGINT and SIGTERM; nil subscribes to the
	// process's signals.
	Signals <-chan os.Signal
	// AdminListener overrides Config.Admin.Listen (tests).
	AdminListener net.Listener
	Version       string // release version, for the log and shim6gw_build_info
	Revision      string // VCS revision, likewise
	Log           *slog.Logger
	LogLevel      *slog.LevelVar // changed in place by a reload
	Hooks         Hooks
	// Notify sends a state to the service manager ("READY=1",
	// "WATCHDOG=1", "RELOADING=1", "STOPPING=1"); nil: systemd's
	// sd_notify protocol, a no-op outside a Type=notify unit.
	Notify func(state string) error
	// Watchdog is how often the service manager wants WATCHDOG=1; 0 asks
	// systemd ($WATCHDOG_USEC), and none means no watchdog.
	Watchdog time.Duration
}

// sdNotify sends state over $NOTIFY_SOCKET.
func sdNotify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// ExitCode maps RunDaemon's and LoadConfig's errors to the process exit
// status: 2 for configuration errors (nothing was changed), 1 otherwise.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, config.ErrInvalid), errors.Is(err, config.ErrUnknownKey), errors.Is(err, config.ErrSystem):
		return 2
	}
	return 1
}

// RunDaemon is `shim6gw run`: it checks the system, removes what a crashed
// run left, opens the TUN, installs the plumbing, starts the monitor, the
// admin server and the control loop, and then serves signals: SIGHUP
// reloads the configuration, SIGINT/SIGTERM (or ctx) stop everything and
// remove every rule, route and sysctl change it made.
func RunDaemon(ctx context.Context, o DaemonOptions) (err error) {
	cfg := o.Config
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.StateFile == "" {
		o.StateFile = DefaultStateFile(cfg.TUN.Name)
	}
	if o.Hooks.OpenTUN == nil || o.Hooks.Control == nil {
		return errors.New("gateway: RunDaemon needs Hooks.OpenTUN and Hooks.Control")
	}
	serving := false
	defer func() {
		if !serving && o.AdminListener != nil {
			o.AdminListener.Close() // not handed to the admin server
		}
	}()
	log.Info("shim6gw starting", "version", o.Version, "revision", o.Revision, "config", o.ConfigPath)
	// Before anything reads or changes the system: a second instance
	// must not run the crash recovery that would wipe the first.
	lock, err := AcquireLock(LockPath(filepath.Dir(o.StateFile), cfg.TUN.Name))
	if err != nil {
		return err
	}
	defer lock.Release()
	if err := config.CheckSystem(cfg, o.Ops); err != nil {
		return err
	}
	for _, m := range config.MissingUplinks(cfg, o.Ops) {
		log.Warn("uplink interface missing: " + m)
	}
	if n := config.HBACostNote(cfg); n != "" {
		log.Warn(n)
	}
	plumber := plumbing.NewPlumber(o.Ops, plumbing.PlumbConfigFrom(cfg, o.StateFile), log)
	if _, err := plumber.CleanupStale(); err != nil {
		return err
	}
	tun, err := o.Hooks.OpenTUN(cfg.TUN)
	if err != nil {
		return fmt.Errorf("gateway: open tun %s: %w", cfg.TUN.Name, err)
	}
	defer func() {
		if cerr := tun.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("gateway: close tun: %w", cerr))
		}
	}()
	if err := plumber.Apply(); err != nil {
		return err
	}
	defer func() {
		if terr := plumber.Teardown(); terr != nil {
			err = errors.Join(err, terr)
		}
	}()

	upIfaces := make([]string, 0, len(cfg.Uplinks))
	for _, u := range cfg.Uplinks {
		upIfaces = append(upIfaces, u.Interface)
	}
	fp, err := StartFastpath(FastpathOptions{Mode: cfg.Dataplane.Fastpath, LAN: cfg.LAN.Interface,
		Uplinks: upIfaces, TUN: cfg.TUN.Name, MaxContexts: cfg.Limits.MaxContexts, Log: log})
	if err != nil {
		return err
	}
	defer func() {
		if ferr := fp.Close(); ferr != nil {
			err = errors.Join(err, ferr)
		}
	}()

	var lanSvc *LANServices
	if o.Hooks.LAN != nil && cfg.LAN.ServicesOn() {
		if lanSvc, err = o.Hooks.LAN(cfg, log); err != nil {
			return err
		}
		// Before the plumbing goes: the final RA tells hosts to stop
		// using this router (RFC 4861 §6.2.5).
		defer lanSvc.Close()
		if lanSvc.SLAAC != nil {
			fp.ExcludeLocal(lanSvc.SLAAC.InPool)
		}
	}

	sigs := o.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(ch)
		sigs = ch
	}
	mon := o.Monitor
	if mon == nil {
		mon = plumbing.NewMonitor(plumbing.UplinkSpecsFrom(cfg), plumbing.MonitorOptions{Protocol: cfg.Rules.Protocol, Log: log})
	}
	tunName := cfg.TUN.Name
	tunUp := func() bool { return mon.LinkUp(tunName) }
	var tunDropped func() (uint64, bool)
	if r, ok := o.Ops.(plumbing.LinkStatsReader); ok {
		tunDropped = func() (uint64, bool) {
			n, err := r.TxDropped(tunName)
			return n, err == nil
		}
	}
	mets := metrics.NewMetrics(metrics.MetricsOptions{Version: o.Version, Revision: o.Revision, Control: o.Hooks.ControlStats,
		Dataplane: o.Hooks.DataplaneStats, Uplinks: mon, TUNUp: tunUp, TUNDropped: tunDropped, Runtime: true})
	// Someone else's flush of our rules or routes is repaired and counted.
	watcher := plumbing.NewPlumbWatcher(plumber, plumbing.PlumbWatchOptionsFor(o.Ops, cfg.Rules, log))
	mets.Registry().MustRegister(watcher)
	if fp != nil {
		mets.Registry().MustRegister(fp)
	}
	var extra map[string]http.Handler
	if lanSvc != nil {
		mets.Registry().MustRegister(lanSvc.Collector())
		extra = map[string]http.Handler{"/debug/leases": lanSvc.DebugHandler()}
	}
	ready := append([]metrics.ReadyCheck{{Name: "plumbing", Check: plumber.Verify}}, o.Hooks.Ready...)
	admin := metrics.NewAdmin(metrics.AdminOptions{Metrics: mets, Contexts: o.Hooks.Contexts, Uplinks: mon,
		TUNUp: tunUp, Ready: ready, Handlers: extra, Log: log})
	ln := o.AdminListener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			return fmt.Errorf("gateway: admin listener: %w", err)
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	uplinks := make(chan plumbing.UplinkEvent, 64)
	reloads := make(chan Reload, 1)
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	start := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && runCtx.Err() == nil {
				errc <- fmt.Errorf("gateway: %s: %w", name, err)
			}
		}()
	}
	start("monitor", func() error { return mon.Run(runCtx) })
	start("plumbing watcher", func() error { return watcher.Run(runCtx) })
	serving = true
	start("admin", func() error { return admin.Serve(runCtx, ln) })
	start("uplink events", func() error {
		for {
			select {
			case <-runCtx.Done():
				return nil
			case e, ok := <-mon.Events():
				if !ok {
					return nil
				}
				if e.Up {
					if err := plumber.Reconcile(); err != nil {
						log.Warn("re-install uplink routes", "uplink", e.Uplink, "err", err)
					}
				}
				select {
				case uplinks <- e:
				case <-runCtx.Done():
					return nil
				}
			}
		}
	})
	running := make(chan struct{})
	var runningOnce sync.Once
	start("control", func() error {
		err := o.Hooks.Control(runCtx, ControlInputs{Config: cfg, Uplinks: uplinks, Reloads: reloads, Fastpath: fp,
			Metrics: mets, Log: log, Running: func() { runningOnce.Do(func() { close(running) }) }})
		if err == nil && runCtx.Err() == nil {
			err = errors.New("control loop ended")
		}
		return err
	})
	notify := o.Notify
	if notify == nil {
		notify = sdNotify
	}
	// The admin listener is bound; wait for the control loop to serve.
	var runErr error
	up := false
wait:
	for !up {
		select {
		case <-running:
			up = true
		case runErr = <-errc:
			log.Error("stopping", "err", runErr)
			break wait
		case <-ctx.Done():
			log.Info("stopping", "reason", ctx.Err())
			break wait
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				log.Info("stopping", "signal", sig.String())
				break wait
			}
			log.Warn("SIGHUP before the gateway runs: ignored")
		}
	}
	var watchdog <-chan time.Time
	every := o.Watchdog
	if up {
		log.Info("gateway running", "tun", tunName, "uplinks", len(cfg.Uplinks), "admin", ln.Addr().String(), "state_file", o.StateFile)
		if err := notify("READY=1"); err != nil {
			log.Warn("notify service manager", "err", err)
		}
		if every == 0 {
			every, _ = daemon.SdWatchdogEnabled(false)
		}
		if every > 0 {
			t := time.NewTicker(every / 2)
			defer t.Stop()
			watchdog = t.C
		}
	}

loop:
	for up {
		select {
		case <-ctx.Done():
			log.Info("stopping", "reason", ctx.Err())
			break loop
		case runErr = <-errc:
			log.Error("stopping", "err", runErr)
			break loop
		case <-watchdog:
			// Fed only while the control loop goes round.
			if hb := o.Hooks.Heartbeat; hb == nil || time.Since(hb()) < every {
				_ = notify("WATCHDOG=1")
			} else {
				log.Warn("control loop stalled: not feeding the watchdog", "last_round", hb())
			}
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				log.Info("stopping", "signal", sig.String())
				break loop
			}
			// systemd shows the unit "reloading" until READY=1 again.
			_ = notify("RELOADING=1")
			next, plan, rerr := reloadConfig(o.ConfigPath, cfg, o.Ops)
			mets.ObserveReload(rerr == nil)
			if rerr != nil {
				log.Error("config reload rejected", "err", rerr)
				_ = notify("READY=1")
				continue
			}
			// New prefixes mean new "from P_X" rules.
			if plan.PrefixesChanged {
				if perr := plumber.Update(plumbing.PlumbConfigFrom(next, o.StateFile)); perr != nil {
					log.Error("update rules for new prefixes", "err", perr)
				}
			}
			if plan.LogChanged && o.LogLevel != nil {
				if lvl, lerr := ParseLevel(next.Log.Level); lerr == nil {
					o.LogLevel.Set(lvl)
				}
			}
			cfg = next
			log.Info("config reloaded", "prefixes_changed", plan.PrefixesChanged,
				"timers_changed", plan.TimersChanged, "policy_changed", plan.PolicyChanged,
				"withdrawn_changed", plan.WithdrawnChanged)
			select {
			case reloads <- Reload{Config: next, Plan: plan}:
			case <-runCtx.Done():
			}
			_ = notify("READY=1")
		}
	}
	_ = notify("STOPPING=1")
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		runErr = errors.Join(runErr, errors.New("gateway: goroutines did not stop within 15s"))
	}
	return runErr
}

// reloadConfig reads and checks the file again and plans the change.
func reloadConfig(path string, cur *config.Config, sys config.LinkInspector) (*config.Config, config.ReloadPlan, error) {
	next, err := config.Load(path)
	if err != nil {
		return nil, config.ReloadPlan{}, err
	}
	if err := config.CheckSystem(next, sys); err != nil {
		return nil, config.ReloadPlan{}, err
	}
	plan, err := cur.PlanReload(next)
	return next, plan, err
}

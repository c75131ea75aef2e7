package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
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
	Events() <-chan UplinkEvent
	UplinkStates() []UplinkStatus
	LinkUp(name string) bool
}

// Reload is a configuration accepted on SIGHUP, with what changed.
type Reload struct {
	Config *Config
	Plan   ReloadPlan
}

// ControlInputs is what the control loop gets from the daemon.
type ControlInputs struct {
	Config *Config
	// Uplinks carries the monitor's events (after the daemon re-installed
	// routes of an uplink that came back).
	Uplinks <-chan UplinkEvent
	// Reloads carries accepted SIGHUP reloads (prefixes, timers, policy).
	Reloads <-chan Reload
	Metrics *Metrics
	Log     *slog.Logger
}

// Hooks connect the daemon to the packages gateway does not own.
type Hooks struct {
	// OpenTUN creates and opens the TUN device named cfg.Name (package
	// tunnel). The daemon sets its MTU and brings it up, and closes it
	// after removing the plumbing.
	OpenTUN func(cfg TUNConfig) (io.Closer, error)
	// Control runs the control loop until ctx ends; it owns the engine
	// and the data plane. A non-nil return other than ctx's error stops
	// the daemon.
	Control func(ctx context.Context, in ControlInputs) error
	// Sources for /metrics and /debug/contexts; nil exports nothing.
	ControlStats   ControlStatsSource
	DataplaneStats DataplaneStatsSource
	Contexts       ContextLister
	// Ready adds /readyz conditions (e.g. a usable locator pair).
	Ready []ReadyCheck
}

// DaemonOptions configures RunDaemon.
type DaemonOptions struct {
	ConfigPath string  // re-read on SIGHUP
	Config     *Config // as loaded from ConfigPath
	Ops        NetlinkOps
	Monitor    UplinkWatcher // nil: NewMonitor in the current namespace
	StateFile  string        // "": DefaultStateFile(Config.TUN.Name)
	// Signals delivers SIGHUP, SIGINT and SIGTERM; nil subscribes to the
	// process's signals.
	Signals <-chan os.Signal
	// AdminListener overrides Config.Admin.Listen (tests).
	AdminListener net.Listener
	Version       string
	Log           *slog.Logger
	LogLevel      *slog.LevelVar // changed in place by a reload
	Hooks         Hooks
}

// ExitCode maps RunDaemon's and LoadConfig's errors to the process exit
// status: 2 for configuration errors (nothing was changed), 1 otherwise.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrUnknownKey), errors.Is(err, ErrSystem):
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
	// Before anything reads or changes the system: a second instance
	// must not run the crash recovery that would wipe the first.
	lock, err := AcquireLock(LockPath(filepath.Dir(o.StateFile), cfg.TUN.Name))
	if err != nil {
		return err
	}
	defer lock.Release()
	if err := CheckSystem(cfg, o.Ops); err != nil {
		return err
	}
	for _, m := range MissingUplinks(cfg, o.Ops) {
		log.Warn("uplink interface missing: " + m)
	}
	if n := hbaCostNote(cfg); n != "" {
		log.Warn(n)
	}
	plumber := NewPlumber(o.Ops, PlumbConfigFrom(cfg, o.StateFile), log)
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

	sigs := o.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(ch)
		sigs = ch
	}
	mon := o.Monitor
	if mon == nil {
		mon = NewMonitor(UplinkSpecsFrom(cfg), MonitorOptions{Protocol: cfg.Rules.Protocol, Log: log})
	}
	tunName := cfg.TUN.Name
	tunUp := func() bool { return mon.LinkUp(tunName) }
	var tunDropped func() (uint64, bool)
	if r, ok := o.Ops.(LinkStatsReader); ok {
		tunDropped = func() (uint64, bool) {
			n, err := r.TxDropped(tunName)
			return n, err == nil
		}
	}
	metrics := NewMetrics(MetricsOptions{Version: o.Version, Control: o.Hooks.ControlStats,
		Dataplane: o.Hooks.DataplaneStats, Uplinks: mon, TUNUp: tunUp, TUNDropped: tunDropped, Runtime: true})
	// Someone else's flush of our rules or routes is repaired and counted.
	watcher := NewPlumbWatcher(plumber, PlumbWatchOptionsFor(o.Ops, cfg.Rules, log))
	metrics.Registry().MustRegister(watcher)
	ready := append([]ReadyCheck{{Name: "plumbing", Check: plumber.Verify}}, o.Hooks.Ready...)
	admin := NewAdmin(AdminOptions{Metrics: metrics, Contexts: o.Hooks.Contexts, Uplinks: mon,
		TUNUp: tunUp, Ready: ready, Log: log})
	ln := o.AdminListener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			return fmt.Errorf("gateway: admin listener: %w", err)
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	uplinks := make(chan UplinkEvent, 64)
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
	start("control", func() error {
		err := o.Hooks.Control(runCtx, ControlInputs{Config: cfg, Uplinks: uplinks, Reloads: reloads,
			Metrics: metrics, Log: log})
		if err == nil && runCtx.Err() == nil {
			err = errors.New("control loop ended")
		}
		return err
	})
	log.Info("gateway running", "tun", tunName, "uplinks", len(cfg.Uplinks), "admin", ln.Addr().String(), "state_file", o.StateFile)

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping", "reason", ctx.Err())
			break loop
		case runErr = <-errc:
			log.Error("stopping", "err", runErr)
			break loop
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				log.Info("stopping", "signal", sig.String())
				break loop
			}
			next, plan, rerr := reloadConfig(o.ConfigPath, cfg, o.Ops)
			metrics.ObserveReload(rerr == nil)
			if rerr != nil {
				log.Error("config reload rejected", "err", rerr)
				continue
			}
			// New prefixes mean new "from P_X" rules.
			if plan.PrefixesChanged {
				if perr := plumber.Update(PlumbConfigFrom(next, o.StateFile)); perr != nil {
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
		}
	}
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
func reloadConfig(path string, cur *Config, sys LinkInspector) (*Config, ReloadPlan, error) {
	next, err := LoadConfig(path)
	if err != nil {
		return nil, ReloadPlan{}, err
	}
	if err := CheckSystem(next, sys); err != nil {
		return nil, ReloadPlan{}, err
	}
	plan, err := cur.PlanReload(next)
	return next, plan, err
}

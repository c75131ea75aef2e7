package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shim6gw/shim6gw/lab"
	"github.com/shim6gw/shim6gw/shim6"
)

const labUsage = `usage: shim6gw lab [--fail link|blackhole|gateway|none] [--fail-at D] [--duration D]
                   [--json] [--capture DIR] [--keep] [--kernel] [--throughput D]
                   [--send-timeout D] [--prefix P] [--ha [--vrrp-advert D]] [--plot FILE]
       shim6gw lab --down

Build the two-site lab in network namespaces (needs root; see package lab):
site 1 (an unmodified host h1, gateway gw1 with two uplinks), ISP routers A
and B of each site doing ingress filtering, an Internet core, site 2 (h2,
gw2) and a legacy site without shim6. Both gateways run this binary's
"run" command with generated configurations (lab timers: fast REAP values,
see lab.LabTimers); the hosts get HBA addresses from each site's address
book. Then run a TCP stream in each direction between h1 and h2, fail site
1's ISP A at --fail-at, keep going until --duration and report.

With --ha, site 1 has two gateways, gw1a and gw1b, running the same
configuration behind keepalived (VRRPv3, lab.LabVRRP timers; --vrrp-advert
1s gives keepalived's defaults); --fail gateway powers off the active one
(kill -9, links down). --plot draws the bytes received per stream over
time with the failure and the gateways' failover, recovery and VRRP
events (SVG or PNG by the file's extension).

With --throughput D, instead of the failover scenario: iperf3 TCP (one
stream, D per row) from h1 through the daemon lab, once with
dataplane.fastpath ebpf and once off (--fastpath ebpf|off picks one):
h1→h2 with the context on its ULID pair (passthrough); then ISP A fails
(carrier loss) and, once the context is shimmed via P_B, h1→h2 (shimmed)
and h1→legacy (fallback, translated to h1's P_B locator); each with the
veths' TSO/GSO on and with TSO/GSO/GRO off. Then the same host pairs in a
kernel-forwarding lab, offloads on (kernel) and off (kernel-per-packet).
Prints the rows and the ratios against the goals of the kernel fast path.

The exit status is 0 when both connections were established and survived
(with --throughput: when every row was measured).
A new run first removes what a killed run left behind; Ctrl-C tears down.

flags:
`

// labFlags are the parsed flags of "shim6gw lab".
type labFlags struct {
	fail       lab.FailMode
	failAt     time.Duration
	duration   time.Duration
	json       bool
	capture    string
	keep       bool
	kernel     bool
	down       bool
	prefix     string
	throughput time.Duration
	// sendTimeout, if set, replaces the lab's send_timeout and
	// keepalive_timeout (lab.LabTimers).
	sendTimeout time.Duration
	ha          bool
	vrrpAdvert  time.Duration
	plot        string
	fastpath    string
	// set holds the flags given on the command line (by name).
	set map[string]bool
}

// parseLabFlags parses args; help is true for -h.
func parseLabFlags(args []string, stdout io.Writer) (f labFlags, help bool, err error) {
	fset := flag.NewFlagSet("lab", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	fail := fset.String("fail", "link", "how site 1's ISP A fails: link (carrier loss), blackhole (silent drops), gateway (the active HA gateway powers off; needs --ha) or none")
	fset.BoolVar(&f.ha, "ha", false, "site 1 with two gateways gw1a and gw1b behind keepalived (needs keepalived)")
	fset.DurationVar(&f.vrrpAdvert, "vrrp-advert", lab.LabVRRP.Advert, "with --ha: keepalived's advert_int, 10ms..40s (keepalived's default is 1s)")
	fset.StringVar(&f.plot, "plot", "", "draw the run into this .svg or .png file")
	fset.StringVar(&f.fastpath, "fastpath", "auto", "the gateways' dataplane.fastpath: auto, ebpf or off")
	fset.DurationVar(&f.failAt, "fail-at", 3*time.Second, "when to fail, after the streams start")
	fset.DurationVar(&f.duration, "duration", 10*time.Second, "how long the streams run in all")
	fset.BoolVar(&f.json, "json", false, "print one JSON object instead of the human report")
	fset.StringVar(&f.capture, "capture", "", "keep both gateways' shim6 control pcaps in this directory")
	fset.BoolVar(&f.keep, "keep", false, "leave the lab up afterwards and print how to enter it")
	fset.BoolVar(&f.kernel, "kernel", false, "plain kernel forwarding in the gateways instead of shim6gw (the baseline)")
	fset.BoolVar(&f.down, "down", false, "only remove a lab left by --keep or a killed run, then exit")
	fset.StringVar(&f.prefix, "prefix", lab.DefaultPrefix, "namespace name prefix (must start with s6lab)")
	fset.DurationVar(&f.throughput, "throughput", 0, "instead of the failover scenario, measure iperf3 throughput for this long per row: passthrough, shimmed and fallback in the daemon lab with the fast path on and off, then kernel forwarding")
	fset.DurationVar(&f.sendTimeout, "send-timeout", 0, "REAP Send and Keepalive Timeout of both gateways, 100ms..65535s (default: the lab timers' 300ms)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, labUsage)
			fset.SetOutput(stdout)
			fset.PrintDefaults()
			return f, true, nil
		}
		return f, false, fmt.Errorf("lab: %w", err)
	}
	if fset.NArg() > 0 {
		return f, false, fmt.Errorf("lab: unexpected argument %q", fset.Arg(0))
	}
	f.set = map[string]bool{}
	fset.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.fail, err = lab.ParseFailMode(*fail); err != nil {
		return f, false, err
	}
	switch {
	case f.failAt <= 0 || f.duration <= 0:
		return f, false, errors.New("lab: --fail-at and --duration must be positive")
	case f.failAt >= f.duration:
		return f, false, fmt.Errorf("lab: --fail-at %v is not before --duration %v", f.failAt, f.duration)
	case f.throughput < 0:
		return f, false, errors.New("lab: --throughput must not be negative")
	case f.sendTimeout != 0 && (f.sendTimeout < shim6.MinSendTimeout || f.sendTimeout > 65535*time.Second):
		// The gateway's config accepts the same range (gateway/config).
		return f, false, fmt.Errorf("lab: --send-timeout %v is not in %v..65535s", f.sendTimeout, shim6.MinSendTimeout)
	case f.fail == lab.FailGateway && !f.ha:
		return f, false, errors.New("lab: --fail gateway needs --ha")
	case f.fastpath != "auto" && f.fastpath != "ebpf" && f.fastpath != "off":
		return f, false, fmt.Errorf("lab: --fastpath %q: want auto, ebpf or off", f.fastpath)
	case f.ha && f.kernel:
		return f, false, errors.New("lab: --ha runs the daemon; it does not go with --kernel")
	case f.vrrpAdvert < 10*time.Millisecond || f.vrrpAdvert > 40950*time.Millisecond:
		return f, false, fmt.Errorf("lab: --vrrp-advert %v is not in 10ms..40.95s", f.vrrpAdvert)
	case f.plot != "" && !lab.PlotFormatOK(f.plot):
		return f, false, fmt.Errorf("lab: --plot %q: want a .svg or .png file", f.plot)
	case !strings.HasPrefix(f.prefix, lab.DefaultPrefix):
		return f, false, fmt.Errorf("lab: --prefix %q does not start with %s", f.prefix, lab.DefaultPrefix)
	}
	if f.throughput > 0 {
		return f, false, throughputConflict(f)
	}
	return f, false, nil
}

// runLab implements "shim6gw lab".
func runLab(args []string, stdout, stderr io.Writer) int {
	f, help, err := parseLabFlags(args, stdout)
	if help {
		return exitOK
	}
	if err != nil {
		return failf(stderr, exitUsage, "%v", err)
	}
	if os.Geteuid() != 0 {
		return failf(stderr, exitFail, "lab: needs root to create network namespaces (try: sudo go run ./cmd/shim6gw lab)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.down {
		if err := lab.CleanupLeftovers(ctx, f.prefix); err != nil {
			return failf(stderr, exitFail, "%v", err)
		}
		return exitOK
	}
	if f.sendTimeout > 0 {
		setSendTimeout(f.sendTimeout)
	}
	r := &labRun{f: f, stdout: stdout, stderr: stderr, events: lab.NewEventLog()}
	if f.throughput > 0 {
		return r.runThroughput(ctx)
	}
	return r.run(ctx)
}

// labRun is one "shim6gw lab" invocation.
type labRun struct {
	f              labFlags
	stdout, stderr io.Writer
	dir            string // generated configs, secrets, gateway log
	events         *lab.EventLog
}

// say prints a human line (nothing with --json).
func (r *labRun) say(format string, args ...any) {
	if !r.f.json {
		fmt.Fprintf(r.stdout, format+"\n", args...)
	}
}

func (r *labRun) run(ctx context.Context) int {
	dir, err := os.MkdirTemp("", "shim6gw-lab-")
	if err != nil {
		return failf(r.stderr, exitFail, "lab: %v", err)
	}
	r.dir = dir
	mode := lab.Daemon
	if r.f.kernel {
		mode = lab.KernelForwarding
	}
	l, gwLog, err := r.build(ctx, mode, r.f.fastpath)
	if gwLog != nil {
		defer gwLog.Close()
	}
	keep := false
	defer func() {
		if l != nil && !keep {
			r.say("tearing the lab down")
			if err := l.Down(); err != nil {
				fmt.Fprintf(r.stderr, "shim6gw: lab: down: %v\n", err)
			}
		}
		if !keep {
			_ = os.RemoveAll(dir)
		}
	}()
	if ctx.Err() != nil {
		return failf(r.stderr, exitFail, "lab: interrupted")
	}
	if err != nil {
		return failf(r.stderr, exitFail, "%v%s", err, r.logHint(mode))
	}
	h1, h2 := l.HostAddrs(lab.H1)[0], l.HostAddrs(lab.H2)[0]
	so := lab.ScenarioOptions{Fail: r.f.fail, ISP: lab.ISPA1, FailAt: r.f.failAt, Duration: r.f.duration}
	if mode == lab.Daemon {
		so.LocatorPair = l.ContextPair(lab.GW1, h1, h2)
	}
	what := string(lab.ISPA1)
	if r.f.ha {
		so.LocatorPair = l.ActiveContextPair(h1, h2)
	}
	if r.f.fail == lab.FailGateway {
		what = "the active gateway"
	}
	r.say("streams h1 [%s] <-> h2 [%s], failure %s of %s at %v", h1, h2, r.f.fail, what, r.f.failAt)
	so.Progress = r.progress()
	rep, err := l.RunScenario(ctx, so)
	if !r.f.json {
		fmt.Fprintln(r.stdout)
	}
	if ctx.Err() != nil {
		return failf(r.stderr, exitFail, "lab: interrupted")
	}
	if err != nil {
		return failf(r.stderr, exitFail, "%v", err)
	}
	if r.f.plot != "" {
		if err := plotReport(rep, r.plotTitle(), r.f.plot); err != nil {
			fmt.Fprintf(r.stderr, "shim6gw: lab: %v\n", err)
		} else {
			r.say("  plot: %s", r.f.plot)
		}
	}
	if !r.f.json {
		_ = rep.WriteSummary(r.stdout)
		if r.f.capture != "" {
			r.say("  captures: %s (shim6 control messages, from each daemon), %s (everything with next header 140 on the uplinks)",
				filepath.Join(r.f.capture, "gw{1,2}-control.pcap"), filepath.Join(r.f.capture, "gw{1,2}.pcapng"))
		}
	}
	if r.f.json {
		enc := json.NewEncoder(r.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return failf(r.stderr, exitFail, "lab: %v", err)
		}
	}
	if r.f.keep && ctx.Err() == nil {
		keep = true
		r.printKeep(l, mode)
	}
	if ctx.Err() != nil {
		return failf(r.stderr, exitFail, "lab: interrupted")
	}
	if !rep.Established || !rep.Survived {
		return exitFail
	}
	return exitOK
}

// build creates and starts a lab in mode, with the gateways'
// dataplane.fastpath in Daemon mode. In Daemon mode the hosts get entry 0
// of their site's HBA book and the gateways run this executable; the
// failover scenario adds the LAN hosts h1d and h1s.
func (r *labRun) build(ctx context.Context, mode lab.Mode, fastpath string) (*lab.Lab, *os.File, error) {
	opts := lab.Options{Prefix: r.f.prefix, Mode: mode, Dir: r.dir, CaptureDir: r.f.capture,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Events: r.events,
		HA: r.f.ha && mode == lab.Daemon, VRRP: lab.VRRPTimers{Advert: r.f.vrrpAdvert}, Fastpath: fastpath,
		LANHosts: mode == lab.Daemon && !r.f.ha && r.f.throughput == 0}
	var gwLog *os.File
	var l *lab.Lab
	if mode == lab.Daemon {
		b1, err := lab.SiteBook(r.dir, lab.Site1)
		if err != nil {
			return nil, nil, err
		}
		b2, err := lab.SiteBook(r.dir, lab.Site2)
		if err != nil {
			return nil, nil, err
		}
		opts.H1Addrs, opts.H2Addrs = lab.BookHostAddrs(b1, 0), lab.BookHostAddrs(b2, 0)
		exe, err := os.Executable()
		if err != nil {
			return nil, nil, fmt.Errorf("lab: %w", err)
		}
		if gwLog, err = os.Create(filepath.Join(r.dir, "gateways.log")); err != nil {
			return nil, nil, fmt.Errorf("lab: %w", err)
		}
		ready := func(ctx context.Context, ns string) error { return l.GatewayReady(ctx, ns) }
		// Each daemon logs to gateways.log and to the events.
		opts.StartGateway = func(ctx context.Context, ns, cfgPath string) (func() error, error) {
			log := io.MultiWriter(gwLog, l.GatewayLog(ns))
			start := lab.ExecGateway(log, ready, exe, "run", "--config", "{config}")
			if r.f.capture != "" {
				start = captureGateway(log, ready, exe, r.f.capture)
			}
			return start(ctx, ns, cfgPath)
		}
	}
	l, err := lab.New(opts)
	if err != nil {
		return nil, gwLog, err
	}
	r.say("building the %s lab: namespaces %s-{%s}", mode, r.f.prefix, nodeList(opts.HA, opts.LANHosts))
	if mode == lab.Daemon {
		r.say("  h1 %s (HBA entry 0 of site 1), h2 %s (entry 0 of site 2)", addrList(opts.H1Addrs), addrList(opts.H2Addrs))
		r.say("  gateways: %s run --config %s/gw{1,2}.yaml", filepath.Base(os.Args[0]), r.dir)
	}
	start := time.Now()
	if err := l.Up(ctx); err != nil {
		return nil, gwLog, err
	}
	if opts.LANHosts {
		r.say("  h1d %s (DHCPv6, dhclient -6), h1s %s (SLAAC, translated by gw1)",
			addrList(l.HostAddrs(lab.H1D)), addrList(l.HostAddrs(lab.H1S)))
	}
	r.say("  up in %.1fs", time.Since(start).Seconds())
	return l, gwLog, nil
}

// progress returns the live progress printer: one line rewritten in
// place on a terminal, one line a second otherwise.
func (r *labRun) progress() func(lab.Progress) {
	if r.f.json {
		return nil
	}
	tty := false
	if f, ok := r.stdout.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	var last time.Duration = -time.Second
	return func(p lab.Progress) {
		if tty {
			fmt.Fprintf(r.stdout, "\r\033[K%s", p)
			return
		}
		if p.Elapsed-last >= time.Second {
			last = p.Elapsed
			fmt.Fprintln(r.stdout, p)
		}
	}
}

// printKeep tells how to enter the lab left up.
func (r *labRun) printKeep(l *lab.Lab, mode lab.Mode) {
	w := r.stdout
	if r.f.json {
		w = r.stderr
	}
	fmt.Fprintf(w, "\nthe lab stays up (%s mode); enter a node with\n", mode)
	gw := l.Gateways()[0]
	fmt.Fprintf(w, "  sudo ip netns exec %s bash        # h1; likewise %s, %s, %s, ...\n",
		l.NS(lab.H1), l.NS(gw), l.NS(lab.H2), l.NS(lab.Legacy))
	if mode == lab.Daemon {
		fmt.Fprintf(w, "  sudo ip netns exec %s curl -s http://%s/debug/contexts\n", l.NS(gw), lab.AdminListen)
	}
	if mode == lab.Daemon {
		fmt.Fprintf(w, "configs, secrets and the gateways' log: %s\n", r.dir)
	}
	fmt.Fprintf(w, "remove it with\n  sudo go run ./cmd/shim6gw lab --down --prefix %s\n", r.f.prefix)
}

// logHint points at the gateways' log after a failed daemon start.
func (r *labRun) logHint(mode lab.Mode) string {
	if mode != lab.Daemon {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "gateways.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return " (gateway log: " + lines[len(lines)-1] + ")"
}

func nodeList(ha, lanHosts bool) string {
	var s []string
	for _, n := range lab.Nodes {
		if ha && n == lab.GW1 {
			s = append(s, string(lab.GW1A), string(lab.GW1B))
			continue
		}
		s = append(s, string(n))
	}
	if lanHosts {
		s = append(s, string(lab.H1D), string(lab.H1S))
	}
	return strings.Join(s, ",")
}

// plotTitle is the title of --plot's figure: the command line that made it.
func (r *labRun) plotTitle() string {
	t := "shim6gw lab"
	if r.f.ha {
		t += " --ha"
		if r.f.vrrpAdvert != lab.LabVRRP.Advert {
			t += " --vrrp-advert " + r.f.vrrpAdvert.String()
		}
	}
	return fmt.Sprintf("%s --fail %s --fail-at %v --duration %v", t, r.f.fail, r.f.failAt, r.f.duration)
}

func addrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

// setSendTimeout replaces send_timeout and keepalive_timeout in the lab
// timers that the generated gateway configurations use (one lab per
// process, so changing the package variable is safe here).
func setSendTimeout(d time.Duration) {
	timers := slices.Clone(lab.LabTimers)
	for i, t := range timers {
		if t.Key == "send_timeout" || t.Key == "keepalive_timeout" {
			timers[i].Value = d.String()
		}
	}
	lab.LabTimers = timers
}

// captureGateway starts the daemon with its own control-message capture
// (`run --capture`), <dir>/<node>-control.pcap (gw1, gw2, gw1a...); the
// lab's dumpcap files <dir>/gwN.pcapng hold everything with next header
// 140 on the wire, payload included.
func captureGateway(log io.Writer, ready func(context.Context, string) error, exe, dir string) lab.StartGatewayFunc {
	return func(ctx context.Context, ns, cfgPath string) (func() error, error) {
		// Named after the namespace's node: an HA pair shares one config.
		name := ns[strings.LastIndex(ns, "-")+1:] + "-control.pcap"
		start := lab.ExecGateway(log, ready, exe, "run", "--config", "{config}", "--capture", filepath.Join(dir, name))
		return start(ctx, ns, cfgPath)
	}
}

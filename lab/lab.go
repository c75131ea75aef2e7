package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Mode selects what the gateways do.
type Mode int

const (
	// KernelForwarding: plain kernel forwarding with source policy routing
	// (the baseline).
	KernelForwarding Mode = iota
	// Daemon: the real daemon, started through Options.StartGateway.
	Daemon
)

func (m Mode) String() string {
	switch m {
	case KernelForwarding:
		return "kernel"
	case Daemon:
		return "daemon"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// DefaultPrefix is the namespace name prefix.
const DefaultPrefix = "s6lab"

// cmdTimeout bounds every shell command the lab runs.
const cmdTimeout = 20 * time.Second

// StartGatewayFunc starts the gateway daemon inside namespace ns (a name
// for `ip netns exec` or /run/netns/<ns>) with the configuration at
// cfgPath, and returns a function that stops it. It must return once the
// daemon runs (or failed); stop must end the daemon and wait for it.
type StartGatewayFunc func(ctx context.Context, ns, cfgPath string) (stop func() error, err error)

// Options configure a lab.
type Options struct {
	// Prefix of every namespace name ("s6lab" if empty; must start with
	// "s6lab"). Concurrent labs need distinct prefixes, e.g. "s6labe2e".
	Prefix string
	Mode   Mode
	// H1Addrs and H2Addrs are the addresses of h1 and h2 (e.g. HBA
	// addresses from the address book, inside the site's LAN /64s); the
	// first is the one RunScenario's streams use. Default: ::100 under
	// each LAN /64 of the site, P_A first.
	H1Addrs, H2Addrs []netip.Addr
	// StartGateway is required in Daemon mode.
	StartGateway StartGatewayFunc
	// Dir receives the generated gateway configs and secrets; a temporary
	// directory (removed by Down) if empty.
	Dir string
	// CaptureDir, if set, keeps a pcap of the shim6 control traffic (IPv6
	// next header 140) on both uplinks of each gateway: <dir>/gw1.pcapng,
	// <dir>/gw2.pcapng.
	CaptureDir string
	Logger     *slog.Logger
	// HA builds site 1 with two gateways behind keepalived (see ha.go);
	// Daemon mode only.
	HA bool
	// VRRP are the keepalived timers of an HA lab (LabVRRP if zero).
	VRRP VRRPTimers
	// Fastpath is the gateways' dataplane.fastpath (auto, ebpf or off; ""
	// leaves the default, auto). Daemon mode only.
	Fastpath string
	// LANHosts adds h1d (DHCPv6 client) and h1s (SLAAC only) to site 1's
	// LAN and turns on gw1's DHCPv6 server, RAs and SLAAC translation
	// (lanhosts.go); Daemon mode, no HA.
	LANHosts bool
	// Events, if set, collects the lab's failures and the gateways' and
	// keepalived's notable log lines (for RunScenario's report and plot).
	Events *EventLog
}

// Lab is one testbed instance.
type Lab struct {
	opts      Options
	log       *slog.Logger
	hostAddrs map[Node][]netip.Addr

	mu       sync.Mutex
	dir      string
	ownDir   bool // dir is a temporary directory Down removes
	closed   bool // Down ran: a lab is built once
	procs    []*exec.Cmd
	captures []*exec.Cmd
	stops    []func() error
	ha       haState
	dhclient *exec.Cmd // h1d's DHCPv6 client (LANHosts)
}

// Down lets dumpcap write out what it holds before stopping it: libpcap's
// packet ring hands a block to dumpcap only when it fills or its timeout
// (dumpcap: 250 ms) expires, and SIGTERM loses a held block. Down waits
// until the capture files stopped growing for captureQuiet, at most
// captureDrainMax.
const (
	captureQuiet    = 600 * time.Millisecond
	captureDrainMax = 5 * time.Second
)

// New checks the options and returns a lab that is not built yet.
func New(opts Options) (*Lab, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(opts.Prefix, DefaultPrefix) || strings.ContainsAny(opts.Prefix, "/ \t") {
		return nil, fmt.Errorf("%w: %q", ErrBadPrefix, opts.Prefix)
	}
	if opts.Mode == Daemon && opts.StartGateway == nil {
		return nil, errors.New("lab: daemon mode needs Options.StartGateway")
	}
	if opts.HA && opts.Mode != Daemon {
		return nil, errors.New("lab: an HA lab needs daemon mode")
	}
	if opts.LANHosts && (opts.Mode != Daemon || opts.HA) {
		return nil, errors.New("lab: LAN hosts need daemon mode without HA")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(opts.H1Addrs) == 0 {
		opts.H1Addrs = []netip.Addr{Site1.A.HostAddr(), Site1.B.HostAddr()}
	}
	if len(opts.H2Addrs) == 0 {
		opts.H2Addrs = []netip.Addr{Site2.A.HostAddr(), Site2.B.HostAddr()}
	}
	for _, a := range append(append([]netip.Addr{}, opts.H1Addrs...), opts.H2Addrs...) {
		if !a.Is6() || a.Is4In6() {
			return nil, fmt.Errorf("lab: host address %s is not IPv6", a)
		}
	}
	return &Lab{opts: opts, log: opts.Logger, hostAddrs: map[Node][]netip.Addr{
		H1: opts.H1Addrs, H2: opts.H2Addrs, Legacy: {LegacyAddr}}}, nil
}

// NS returns the namespace name of node n.
func (l *Lab) NS(n Node) string { return l.opts.Prefix + "-" + string(n) }

// HostAddrs returns the addresses of host n (h1, h2 or legacy;
// (with LANHosts also h1d's lease and h1s's SLAAC address, after Up).
func (l *Lab) HostAddrs(n Node) []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hostAddrs[n]
}

// Dir returns the directory of generated files (valid after Up; a
// temporary one is removed by Down).
func (l *Lab) Dir() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dir
}

// Up removes leftovers of an earlier run with the same prefix, then builds
// the topology and, in Daemon mode, starts both gateways. On error it tears
// down what it built.
func (l *Lab) Up(ctx context.Context) (err error) {
	for _, tool := range []string{"ip", "nft", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s", ErrTool, tool)
		}
	}
	if err := CleanupLeftovers(ctx, l.opts.Prefix); err != nil {
		return err
	}
	if l.isClosed() {
		return ErrClosed
	}
	defer func() {
		if err != nil {
			_ = l.Down()
		}
	}()
	dir, own := l.opts.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", l.opts.Prefix+"-"); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		own = true
	}
	l.mu.Lock()
	l.dir, l.ownDir = dir, own
	l.mu.Unlock()
	for _, n := range l.nodes() {
		if err := l.abort(ctx); err != nil {
			return err
		}
		l.log.Info("lab: namespace", "ns", l.NS(n))
		if _, err := run(ctx, nil, "ip", "netns", "add", l.NS(n)); err != nil {
			return err
		}
		// Before any interface exists, so that "default" reaches all:
		// no DAD (addresses usable at once), no RAs, and addresses that
		// survive FailLink's "link set down" (keep_addr_on_down).
		fwd := "0"
		if forwards(n, l.opts.Mode) {
			fwd = "1"
		}
		sysctls := append([]string{"sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=" + fwd,
			"net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1"}, lanHostSysctls(n)...)
		if _, err := l.Exec(ctx, n, sysctls...); err != nil {
			return err
		}
	}
	for _, k := range l.topoLinks() {
		if _, err := run(ctx, nil, "ip", "-n", l.NS(k.a), "link", "add", k.aName, "type", "veth",
			"peer", "name", k.bName, "netns", l.NS(k.b)); err != nil {
			return err
		}
	}
	for _, n := range l.nodes() {
		if err := l.abort(ctx); err != nil {
			return err
		}
		script := strings.Join(l.nodeConfig(n), "\n") + "\n"
		if _, err := run(ctx, strings.NewReader(script), "ip", "-6", "-n", l.NS(n), "-batch", "-"); err != nil {
			return fmt.Errorf("lab: configure %s: %w", n, err)
		}
	}
	// A veth transmits nothing until the kernel's link watcher has
	// activated it (up to a second after "up"): wait for it.
	for _, k := range l.topoLinks() {
		if err := l.waitOperUp(ctx, k.a, k.aName); err != nil {
			return err
		}
		if err := l.waitOperUp(ctx, k.b, k.bName); err != nil {
			return err
		}
	}
	for _, n := range []Node{ISPA1, ISPB1, ISPA2, ISPB2} {
		if _, err := l.nft(ctx, n, ingressFilter(n, l.opts.Prefix)); err != nil {
			return fmt.Errorf("lab: ingress filter on %s: %w", n, err)
		}
	}
	if l.opts.CaptureDir != "" {
		if err := l.startCaptures(ctx); err != nil {
			return err
		}
	}
	if err := l.abort(ctx); err != nil {
		return err
	}
	if l.opts.Mode == Daemon {
		if err := l.startGateways(ctx); err != nil {
			return err
		}
	}
	if l.opts.HA {
		if err := l.startVRRP(ctx); err != nil {
			return err
		}
	}
	if l.opts.LANHosts {
		if err := l.startLANHosts(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// abort reports why Up must stop: its context ended, or Down ran
// meanwhile (Ctrl-C during Up); Up's deferred Down then removes what was
// built after Down's sweep.
func (l *Lab) abort(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lab: up: %w", err)
	}
	if l.isClosed() {
		return ErrClosed
	}
	return nil
}

// Down stops the gateways and every process the lab started, deletes all
// namespaces (veths, routes and nft tables go with them) and the temporary
// directory. It is safe to call more than once and from a signal handler
// goroutine, also while Up runs (Up then fails with ErrClosed and cleans
// up again); it returns the errors joined but always tries everything. A
// lab is built once: Up after Down fails with ErrClosed.
func (l *Lab) Down() error {
	l.mu.Lock()
	stops, procs, captures := l.stops, l.procs, l.captures
	dir, ownDir := l.dir, l.ownDir
	l.stops, l.procs, l.captures, l.closed, l.ownDir = nil, nil, nil, true, false
	l.mu.Unlock()
	var errs []error
	for i := len(stops) - 1; i >= 0; i-- {
		if err := stops[i](); err != nil {
			errs = append(errs, err)
		}
	}
	if len(captures) > 0 {
		l.drainCaptures()
	}
	for _, c := range append(captures, procs...) {
		stopProcess(c)
	}
	l.closeHAFiles()
	ctx, cancel := context.WithTimeout(context.Background(), 2*cmdTimeout)
	defer cancel()
	if err := CleanupLeftovers(ctx, l.opts.Prefix); err != nil {
		errs = append(errs, err)
	}
	if ownDir && dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("lab: %w", err))
		}
	}
	return errors.Join(errs...)
}

// CleanupLeftovers removes every namespace named <prefix>-* (first killing
// the processes inside, which an earlier lab run started) and any link in
// the current namespace named <prefix>-* (the lab creates none there, but
// an interrupted manual run might). Namespaces of other
// prefixes ("s6labe2e-…" for prefix "s6lab") are left alone.
func CleanupLeftovers(ctx context.Context, prefix string) error {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasPrefix(prefix, DefaultPrefix) {
		return fmt.Errorf("%w: %q", ErrBadPrefix, prefix)
	}
	var errs []error
	for _, ns := range namespaces(prefix) {
		killNamespacePids(ctx, ns)
		if _, err := run(ctx, nil, "ip", "netns", "del", ns); err != nil {
			// A concurrent sweep (Down during Up) may have won the race.
			if _, serr := os.Stat(filepath.Join("/run/netns", ns)); !errors.Is(serr, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	out, err := run(ctx, nil, "ip", "-o", "link", "show")
	if err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, prefix+"-") {
				if _, err := run(ctx, nil, "ip", "link", "del", name); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// namespaces lists the named namespaces <prefix>-*.
func namespaces(prefix string) []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// Namespaces lists the existing namespaces with the lab's prefix (empty
// after Down).
func (l *Lab) Namespaces() []string { return namespaces(l.opts.Prefix) }

// killNamespacePids kills, by pid, the processes inside ns; a process
// would keep the namespace (and its veths) alive after `ip netns del`.
func killNamespacePids(ctx context.Context, ns string) {
	out, err := run(ctx, nil, "ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// waitOperUp waits (at most 10 s) until interface ifname of node n is
// operationally up.
func (l *Lab) waitOperUp(ctx context.Context, n Node, ifname string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := run(ctx, nil, "ip", "-n", l.NS(n), "-o", "link", "show", "dev", ifname)
		if err != nil {
			return err
		}
		if strings.Contains(string(out), " state UP ") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s %s not up after 10 s: %s", n, ifname, strings.TrimSpace(string(out)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Exec runs argv inside node n's namespace (`ip netns exec`) and returns
// its standard output. It is bounded by ctx and by an internal timeout.
func (l *Lab) Exec(ctx context.Context, n Node, argv ...string) ([]byte, error) {
	return run(ctx, nil, append([]string{"ip", "netns", "exec", l.NS(n)}, argv...)...)
}

// nft runs an nft script in node n.
func (l *Lab) nft(ctx context.Context, n Node, script string) ([]byte, error) {
	return run(ctx, strings.NewReader(script), "ip", "netns", "exec", l.NS(n), "nft", "-f", "-")
}

// run runs a command with stdin, bounded by cmdTimeout, and returns its
// stdout; the error carries stderr.
func run(ctx context.Context, stdin io.Reader, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Stdin = stdin
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	c.WaitDelay = time.Second
	if err := c.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("lab: %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// spawn starts a long-running process in node n that Down kills.
func (l *Lab) spawn(n Node, stdout, stderr io.Writer, argv ...string) (*exec.Cmd, error) {
	c := exec.Command("ip", append([]string{"netns", "exec", l.NS(n)}, argv...)...)
	c.Stdout, c.Stderr = stdout, stderr
	// Its own process group, so a Ctrl-C to the terminal reaches the lab
	// (which then tears down in order) rather than every child at once.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", strings.Join(argv, " "), err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, c)
	l.mu.Unlock()
	return c, nil
}

// stopProcess ends c: SIGTERM, then SIGKILL after a grace period.
func stopProcess(c *exec.Cmd) {
	if c.Process == nil || c.ProcessState != nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	_ = c.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(3 * time.Second):
	}
	_ = c.Process.Kill()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
}

// startCaptures runs dumpcap on both uplinks of each gateway, keeping only
// shim6 control packets (next header 140, RFC 5533 §5).
func (l *Lab) startCaptures(ctx context.Context) error {
	if _, err := exec.LookPath("dumpcap"); err != nil {
		return fmt.Errorf("%w: dumpcap (for --capture)", ErrTool)
	}
	if err := os.MkdirAll(l.opts.CaptureDir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	for _, gw := range l.Gateways() {
		file := filepath.Join(l.opts.CaptureDir, string(gw)+".pcapng")
		w := &watchWriter{want: []byte("File: "), seen: make(chan struct{})}
		c, err := l.spawn(gw, io.Discard, w, "dumpcap", "-q", "-f", "ip6 proto 140",
			"-i", UplinkAIf, "-i", UplinkBIf, "-w", file)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.procs = slices.DeleteFunc(l.procs, func(p *exec.Cmd) bool { return p == c })
		l.captures = append(l.captures, c)
		l.mu.Unlock()
		// dumpcap names its output file ("File: …") after it opened the
		// interfaces and set the filter; "Capturing on" comes too early.
		select {
		case <-w.seen:
		case <-time.After(10 * time.Second):
			stopProcess(c)
			return fmt.Errorf("lab: capture on %s did not start", gw)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// drainCaptures waits until the capture files stopped growing.
func (l *Lab) drainCaptures() {
	size := func() int64 {
		var n int64
		for _, gw := range l.Gateways() {
			if fi, err := os.Stat(filepath.Join(l.opts.CaptureDir, string(gw)+".pcapng")); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	deadline := time.Now().Add(captureDrainMax)
	last, quietSince := size(), time.Now()
	for time.Now().Before(deadline) && time.Since(quietSince) < captureQuiet {
		time.Sleep(100 * time.Millisecond)
		if n := size(); n != last {
			last, quietSince = n, time.Now()
		}
	}
}

// watchWriter closes seen when the text written to it contains want.
type watchWriter struct {
	mu   sync.Mutex
	want []byte
	buf  []byte
	seen chan struct{}
	done bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.buf = append(w.buf, p...)
		if bytes.Contains(w.buf, w.want) {
			w.done, w.buf = true, nil
			close(w.seen)
		} else if len(w.buf) > 4096 {
			w.buf = w.buf[len(w.buf)-len(w.want):]
		}
	}
	return len(p), nil
}

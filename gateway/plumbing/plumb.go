package plumbing

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/shim6gw/shim6gw/gateway/config"
)

// SysctlForwarding is the sysctl key of IPv6 forwarding, which the
// Plumber turns on.
const SysctlForwarding = "net/ipv6/conf/all/forwarding"

func sysctlAcceptRA(iface string) string { return "net/ipv6/conf/" + iface + "/accept_ra" }

// PlumbUplink is the part of an uplink the Plumber needs.
type PlumbUplink struct {
	Name      string
	Interface string
	Prefix    netip.Prefix // P_X: "from P_X" selects this uplink's table
	Gateway   netip.Addr   // invalid: point-to-point
	AcceptRA  bool
}

// PlumbConfig is what the Plumber installs.
type PlumbConfig struct {
	TUN    string
	TUNMTU int
	// TUNTxQueueLen is the TUN's transmit queue length (0: leave it);
	// applied when the NetlinkOps implement TxQueueLenSetter.
	TUNTxQueueLen int
	LAN           string
	// LANPrefixes are the site's LAN /64s (one per uplink); packets the
	// gateway writes into the TUN for them leave on LAN.
	LANPrefixes []netip.Prefix
	Uplinks     []PlumbUplink
	Rules       config.RulesConfig
	// StateFile remembers the sysctl values the gateway changed, so that a
	// start after a crash can restore them ("" disables).
	StateFile string
}

// PlumbConfigFrom extracts the Plumber's view of a Config.
func PlumbConfigFrom(c *config.Config, stateFile string) PlumbConfig {
	p := PlumbConfig{TUN: c.TUN.Name, TUNMTU: c.TUN.MTU, TUNTxQueueLen: c.TUN.TxQueueLen, LAN: c.LAN.Interface, LANPrefixes: c.LANPrefixes(),
		Rules: c.Rules, StateFile: stateFile}
	for _, u := range c.Uplinks {
		p.Uplinks = append(p.Uplinks, PlumbUplink{Name: u.Name, Interface: u.Interface,
			Prefix: u.Prefix, Gateway: u.Gateway, AcceptRA: u.AcceptRA})
	}
	return p
}

// DesiredRules returns the policy rules of docs/architecture.md §3 in priority
// order (see the package doc for the layout).
func (c PlumbConfig) DesiredRules() []Rule {
	p, proto := c.Rules.PriorityBase, c.Rules.Protocol
	rules := []Rule{{Priority: p, IifName: c.TUN, Table: c.Rules.LANTable(), SuppressPrefixlen: -1, Protocol: proto}}
	for i, u := range c.Uplinks {
		rules = append(rules, Rule{Priority: p + 10 + i, IifName: c.TUN, Src: u.Prefix,
			Table: c.Rules.UplinkTable(i), SuppressPrefixlen: -1, Protocol: proto})
	}
	rules = append(rules,
		Rule{Priority: p + 50, IifName: c.TUN, Table: MainTable, SuppressPrefixlen: -1, Protocol: proto},
		Rule{Priority: p + 60, IifName: c.LAN, Table: c.Rules.ShimTable(), SuppressPrefixlen: -1, Protocol: proto})
	for i, u := range c.Uplinks {
		rules = append(rules, Rule{Priority: p + 70 + i, IifName: u.Interface, Table: c.Rules.ShimTable(),
			SuppressPrefixlen: -1, Protocol: proto})
	}
	return rules
}

var defaultRoute = netip.PrefixFrom(netip.IPv6Unspecified(), 0)

// DesiredRoutes returns the routes of the gateway's tables: the TUN
// table's default route first, then the LAN /64s, then one per uplink,
// then each uplink table's unreachable default (plumb_unreachable.go).
func (c PlumbConfig) DesiredRoutes() []Route {
	routes := []Route{{Table: c.Rules.ShimTable(), Dst: defaultRoute, Dev: c.TUN, Protocol: c.Rules.Protocol}}
	for _, pf := range c.LANPrefixes {
		routes = append(routes, Route{Table: c.Rules.LANTable(), Dst: pf, Dev: c.LAN, Protocol: c.Rules.Protocol})
	}
	for i, u := range c.Uplinks {
		routes = append(routes, Route{Table: c.Rules.UplinkTable(i), Dst: defaultRoute,
			Gateway: u.Gateway, Dev: u.Interface, Protocol: c.Rules.Protocol})
	}
	return append(routes, c.unreachableRoutes()...)
}

// Plumber installs and removes the gateway's kernel state through
// NetlinkOps: forwarding, the TUN's MTU and link state, the policy rules
// and routing tables of docs/architecture.md §3. It remembers what it added, so
// Teardown removes exactly that and restores the sysctls it changed.
// Safe for concurrent use (the daemon reconciles from its event goroutine
// and updates on SIGHUP).
type Plumber struct {
	ops NetlinkOps
	log *slog.Logger

	mu      sync.Mutex
	cfg     PlumbConfig
	rules   []Rule          // added, in order
	routes  []Route         // installed (or pending: uplink was down)
	sysctls []sysctlChange  // changed, in order
	pending map[int]bool    // index into routes not yet installed
	lateRA  map[string]bool // uplinks whose accept_ra waits for the interface
	applied bool
}

type sysctlChange struct {
	Key string `json:"key"`
	Old string `json:"old"`
}

// NewPlumber returns a Plumber; log may be nil.
func NewPlumber(ops NetlinkOps, cfg PlumbConfig, log *slog.Logger) *Plumber {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Plumber{ops: ops, cfg: cfg, log: log.With("component", "plumber"), pending: map[int]bool{}}
}

// CleanupStale removes what a crashed run left: every IPv6 rule in the
// priority range or with the gateway's protocol, every route with the
// gateway's protocol in its tables, and restores the sysctls recorded in
// the state file. It returns how many rules and routes it removed.
func (p *Plumber) CleanupStale() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	n := 0
	rules, err := p.ops.Rules()
	if err != nil {
		return 0, fmt.Errorf("gateway: list rules: %w", err)
	}
	base, proto := p.cfg.Rules.PriorityBase, p.cfg.Rules.Protocol
	for _, r := range rules {
		if (r.Priority >= base && r.Priority < base+config.PriorityRange) || r.Protocol == proto {
			if err := p.ops.DelRule(r); err != nil && !isGone(err) {
				errs = append(errs, fmt.Errorf("gateway: remove stale rule %v: %w", r, err))
				continue
			}
			n++
		}
	}
	for t := p.cfg.Rules.TableBase; t <= p.cfg.Rules.LastTable(); t++ {
		routes, err := p.ops.Routes(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("gateway: list table %d: %w", t, err))
			continue
		}
		for _, r := range routes {
			if r.Protocol != proto {
				continue
			}
			if err := p.ops.DelRoute(r); err != nil && !isGone(err) {
				errs = append(errs, fmt.Errorf("gateway: remove stale route %v: %w", r, err))
				continue
			}
			n++
		}
	}
	if err := p.restoreStateFile(); err != nil {
		errs = append(errs, err)
	}
	if n > 0 {
		p.log.Info("removed state left by an earlier run", "count", n)
	}
	return n, errors.Join(errs...)
}

// Apply enables IPv6 forwarding, configures the TUN and installs the
// rules and routes. A route out of an uplink that is down is left pending
// for Reconcile. On error everything done so far is undone.
func (p *Plumber) Apply() (err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.applied {
		return errors.New("gateway: plumbing already applied")
	}
	defer func() {
		if err != nil {
			if terr := p.teardownLocked(); terr != nil {
				p.log.Error("undo after failed apply", "err", terr)
			}
		}
	}()
	p.applied = true
	if err := p.setSysctl(SysctlForwarding, "1"); err != nil {
		return err
	}
	for _, u := range p.cfg.Uplinks {
		if u.AcceptRA {
			// RFC 4861 hosts ignore RAs when forwarding; 2 keeps them.
			if err := p.setSysctl(sysctlAcceptRA(u.Interface), "2"); sysctlAbsent(err) {
				p.deferAcceptRA(u.Interface)
			} else if err != nil {
				return err
			}
		}
	}
	if err := p.ops.SetLink(p.cfg.TUN, p.cfg.TUNMTU); err != nil {
		return fmt.Errorf("gateway: set %s up: %w", p.cfg.TUN, err)
	}
	if s, ok := p.ops.(TxQueueLenSetter); ok && p.cfg.TUNTxQueueLen > 0 {
		if err := s.SetTxQueueLen(p.cfg.TUN, p.cfg.TUNTxQueueLen); err != nil {
			return fmt.Errorf("gateway: set %s txqueuelen %d: %w", p.cfg.TUN, p.cfg.TUNTxQueueLen, err)
		}
	}
	p.routes = p.cfg.DesiredRoutes()
	for i, r := range p.routes {
		if err := p.ops.ReplaceRoute(r); err != nil {
			if i > 0 && linkAbsent(err) {
				p.pending[i] = true
				p.log.Warn("uplink down, route pending", "route", r.String())
				continue
			}
			p.routes = p.routes[:i]
			return fmt.Errorf("gateway: add route %v: %w", r, err)
		}
	}
	for _, r := range p.cfg.DesiredRules() {
		if err := p.ops.AddRule(r); err != nil {
			return fmt.Errorf("gateway: add rule %v: %w", r, err)
		}
		p.rules = append(p.rules, r)
	}
	p.log.Info("plumbing applied", "rules", len(p.rules), "routes", len(p.routes)-len(p.pending))
	return nil
}

// Reconcile re-installs the gateway's routes (idempotent). The kernel
// drops IPv6 routes when an interface goes administratively down, so the
// control loop calls this when the monitor reports an uplink up again.
func (p *Plumber) Reconcile() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reconcileLocked()
}

func (p *Plumber) reconcileLocked() error {
	var errs []error
	if err := p.setLateSysctls(); err != nil {
		errs = append(errs, err)
	}
	for i, r := range p.routes {
		err := p.ops.ReplaceRoute(r)
		switch {
		case err == nil:
			delete(p.pending, i)
		case linkAbsent(err):
			p.pending[i] = true
		default:
			errs = append(errs, fmt.Errorf("gateway: replace route %v: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// Update moves the installed rules and routes to next, as a SIGHUP with
// changed prefixes needs ("from P_X" rules): what is gone is removed, what
// is new is added, the rest is left alone. Sysctls and the TUN are not
// touched; next must keep the interfaces and rule placement.
func (p *Plumber) Update(next PlumbConfig) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.applied {
		p.cfg = next
		return nil
	}
	var errs []error
	want := next.DesiredRules()
	var kept []Rule
	for _, r := range p.rules {
		if slices.Contains(want, r) {
			kept = append(kept, r)
			continue
		}
		if err := p.ops.DelRule(r); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("gateway: remove rule %v: %w", r, err))
			kept = append(kept, r) // still ours to remove at Teardown
		}
	}
	for _, r := range want {
		if slices.Contains(kept, r) {
			continue
		}
		if err := p.ops.AddRule(r); err != nil {
			errs = append(errs, fmt.Errorf("gateway: add rule %v: %w", r, err))
			continue
		}
		kept = append(kept, r)
	}
	p.rules = kept
	wantRoutes := next.DesiredRoutes()
	for i, r := range p.routes {
		if slices.Contains(wantRoutes, r) || p.pending[i] {
			continue
		}
		if err := p.ops.DelRoute(r); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("gateway: remove route %v: %w", r, err))
		}
	}
	p.routes, p.pending, p.cfg = wantRoutes, map[int]bool{}, next
	if err := p.reconcileLocked(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ErrPlumbingMissing: rules or routes the gateway installed are gone
// (someone flushed them, or an uplink went down and Reconcile has not run).
var ErrPlumbingMissing = errors.New("gateway: plumbing missing")

// Verify checks that every rule and (non-pending) route Apply installed is
// still in the kernel; /readyz reports it as the "plumbing" check.
func (p *Plumber) Verify() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.applied {
		return fmt.Errorf("%w: not applied", ErrPlumbingMissing)
	}
	have, err := p.ops.Rules()
	if err != nil {
		return fmt.Errorf("gateway: list rules: %w", err)
	}
	var missing []string
	for _, r := range p.rules {
		if !slices.Contains(have, r) {
			missing = append(missing, "rule "+r.String())
		}
	}
	tables := map[int][]Route{}
	for i, r := range p.routes {
		if p.pending[i] {
			continue
		}
		rs, ok := tables[r.Table]
		if !ok {
			if rs, err = p.ops.Routes(r.Table); err != nil {
				return fmt.Errorf("gateway: list table %d: %w", r.Table, err)
			}
			tables[r.Table] = rs
		}
		if !slices.Contains(rs, r) {
			missing = append(missing, "route "+r.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrPlumbingMissing, strings.Join(missing, "; "))
	}
	return nil
}

// Pending returns the routes not installed because their uplink was down.
func (p *Plumber) Pending() []Route {
	p.mu.Lock()
	defer p.mu.Unlock()
	idx := make([]int, 0, len(p.pending))
	for i := range p.pending {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	out := make([]Route, len(idx))
	for j, i := range idx {
		out[j] = p.routes[i]
	}
	return out
}

// Teardown removes the rules and routes Apply added, in reverse order, and
// restores the sysctls it changed. What is already gone is not an error.
func (p *Plumber) Teardown() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.teardownLocked()
}

func (p *Plumber) teardownLocked() error {
	var errs []error
	for i := len(p.rules) - 1; i >= 0; i-- {
		if err := p.ops.DelRule(p.rules[i]); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("gateway: remove rule %v: %w", p.rules[i], err))
		}
	}
	for i := len(p.routes) - 1; i >= 0; i-- {
		if p.pending[i] {
			continue
		}
		if err := p.ops.DelRoute(p.routes[i]); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("gateway: remove route %v: %w", p.routes[i], err))
		}
	}
	for i := len(p.sysctls) - 1; i >= 0; i-- {
		s := p.sysctls[i]
		if err := p.ops.WriteSysctl(s.Key, s.Old); err != nil && !sysctlAbsent(err) {
			errs = append(errs, fmt.Errorf("gateway: restore %s: %w", s.Key, err))
		}
	}
	err := errors.Join(errs...)
	if err == nil && p.cfg.StateFile != "" {
		if rerr := os.Remove(p.cfg.StateFile); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = fmt.Errorf("gateway: remove state file: %w", rerr)
		}
	}
	p.rules, p.routes, p.sysctls, p.pending, p.lateRA, p.applied = nil, nil, nil, map[int]bool{}, nil, false
	if err == nil {
		p.log.Info("plumbing removed")
	}
	return err
}

// setSysctl writes value and remembers the old one (also in the state
// file, before the write, so a crash right after still restores it).
func (p *Plumber) setSysctl(key, value string) error {
	old, err := p.ops.ReadSysctl(key)
	if err != nil {
		return fmt.Errorf("gateway: read %s: %w", key, err)
	}
	if old == value {
		return nil
	}
	p.sysctls = append(p.sysctls, sysctlChange{Key: key, Old: old})
	if err := p.saveStateFile(); err != nil {
		p.sysctls = p.sysctls[:len(p.sysctls)-1]
		return err
	}
	if err := p.ops.WriteSysctl(key, value); err != nil {
		p.sysctls = p.sysctls[:len(p.sysctls)-1]
		if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			// Containers mount /proc/sys read-only: the host must do it.
			return fmt.Errorf("gateway: %s is %s and cannot be set here; set it to %s on the host (sysctl -w %s=%s): %w",
				key, old, value, strings.ReplaceAll(key, "/", "."), value, err)
		}
		return fmt.Errorf("gateway: set %s=%s: %w", key, value, err)
	}
	return nil
}

func (p *Plumber) saveStateFile() error {
	if p.cfg.StateFile == "" {
		return nil
	}
	b, err := json.Marshal(p.sysctls)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.cfg.StateFile), 0o755); err != nil {
		return fmt.Errorf("gateway: state file: %w", err)
	}
	tmp := p.cfg.StateFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("gateway: state file: %w", err)
	}
	if err := os.Rename(tmp, p.cfg.StateFile); err != nil {
		return fmt.Errorf("gateway: state file: %w", err)
	}
	return nil
}

func (p *Plumber) restoreStateFile() error {
	if p.cfg.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(p.cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gateway: read state file: %w", err)
	}
	var changes []sysctlChange
	if err := json.Unmarshal(b, &changes); err != nil {
		return fmt.Errorf("gateway: bad state file %s: %w", p.cfg.StateFile, err)
	}
	var errs []error
	for i := len(changes) - 1; i >= 0; i-- {
		if err := p.ops.WriteSysctl(changes[i].Key, changes[i].Old); err != nil && !sysctlAbsent(err) {
			errs = append(errs, fmt.Errorf("gateway: restore %s: %w", changes[i].Key, err))
		}
	}
	if len(errs) == 0 {
		p.log.Info("restored sysctls left by an earlier run", "count", len(changes))
		if err := os.Remove(p.cfg.StateFile); err != nil {
			errs = append(errs, fmt.Errorf("gateway: remove state file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// isGone reports the errors netlink gives for a rule or route that is not
// there any more.
func isGone(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENODEV)
}

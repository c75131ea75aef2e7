package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/lab"
)

// The row vocabulary of "shim6gw lab --throughput" (issue 12): mode is
// what forwards, path_kind which path a row measures or is the baseline
// for.
const (
	modeDaemon          = "daemon"
	modeKernel          = "kernel"
	modeKernelPerPacket = "kernel-per-packet"

	kindPassthrough = "passthrough"
	kindShimmed     = "shimmed"
	kindFallback    = "fallback"
)

// throughputRow is one iperf3 measurement of a --throughput run.
type throughputRow struct {
	Mode     string `json:"mode"`
	PathKind string `json:"path_kind"`
	// Fastpath: the gateways ran with dataplane.fastpath ebpf.
	Fastpath bool `json:"fastpath"`
	// Offloads: TSO and GSO on every veth of the lab (their defaults);
	// false: TSO, GSO and GRO off, every packet its own skb.
	Offloads    bool    `json:"offloads"`
	Path        string  `json:"path"`
	MbitPerSec  float64 `json:"mbit_per_s"`
	Retransmits int     `json:"retransmits"`
	// FastShare and FastByteShare: of the packets (bytes) gw1's fast-path
	// program saw during the measurement, the share it forwarded itself
	// (the rest went to the TUN path). Daemon rows with the fast path.
	FastShare     *float64 `json:"fast_share,omitempty"`
	FastByteShare *float64 `json:"fast_byte_share,omitempty"`
	// Note says what was off during the measurement (the context left
	// the locators the row is about).
	Note string `json:"note,omitempty"`
}

// rowKey identifies a row within one run.
type rowKey struct {
	mode, kind         string
	fastpath, offloads bool
}

func (t throughputRow) key() rowKey { return rowKey{t.Mode, t.PathKind, t.Fastpath, t.Offloads} }

// throughputGoal is one ratio issue 12 sets a goal for.
type throughputGoal struct {
	name     string
	num, den rowKey
	goal     float64
}

// throughputGoals: passthrough at kernel speed; shimmed at the per-packet
// ceiling (the kernel cannot segment next header 140, so kernel
// forwarding without offloads is the reference) and well above the TUN
// path, compared in the same offload setting and against the TUN path's
// best (offloads on: it forwards untouched super-packets whole and
// segments shimmed ones itself). Fallback stays on the TUN path: no goal.
var throughputGoals = []throughputGoal{
	{"passthrough: fast path / kernel",
		rowKey{modeDaemon, kindPassthrough, true, true}, rowKey{modeKernel, kindPassthrough, false, true}, 0.95},
	{"shimmed: fast path / kernel-per-packet (offloads off)",
		rowKey{modeDaemon, kindShimmed, true, false}, rowKey{modeKernelPerPacket, kindShimmed, false, false}, 0.8},
	{"shimmed: fast path / TUN path (offloads off)",
		rowKey{modeDaemon, kindShimmed, true, false}, rowKey{modeDaemon, kindShimmed, false, false}, 3},
	{"shimmed: fast path (offloads off) / TUN path (offloads on)",
		rowKey{modeDaemon, kindShimmed, true, false}, rowKey{modeDaemon, kindShimmed, false, true}, 3},
}

// throughputRatio is a goal's ratio in one run.
type throughputRatio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Goal  float64 `json:"goal"`
	Met   bool    `json:"met"`
}

// throughputRatios computes the goals' ratios from the rows of one run;
// a goal whose rows are missing (or measured nothing) is left out.
func throughputRatios(rows []throughputRow) []throughputRatio {
	byKey := map[rowKey]float64{}
	for _, t := range rows {
		byKey[t.key()] = t.MbitPerSec
	}
	var out []throughputRatio
	for _, g := range throughputGoals {
		num, okn := byKey[g.num]
		den, okd := byKey[g.den]
		if !okn || !okd || den <= 0 {
			continue
		}
		v := num / den
		out = append(out, throughputRatio{Name: g.name, Value: v, Goal: g.goal, Met: v >= g.goal})
	}
	return out
}

// baselineOf returns the kernel row a daemon row compares with: the same
// path kind, kernel with offloads on, kernel-per-packet with them off.
func baselineOf(t throughputRow, rows []throughputRow) (throughputRow, bool) {
	if t.Mode != modeDaemon {
		return throughputRow{}, false
	}
	want := rowKey{modeKernel, t.PathKind, false, true}
	if !t.Offloads {
		want = rowKey{modeKernelPerPacket, t.PathKind, false, false}
	}
	for _, b := range rows {
		if b.key() == want {
			return b, true
		}
	}
	return throughputRow{}, false
}

// throughputResult is the --json object of a --throughput run.
type throughputResult struct {
	Seconds float64           `json:"throughput_s"`
	Rows    []throughputRow   `json:"throughput"`
	Ratios  []throughputRatio `json:"ratios"`
	// LoadBefore and LoadAfter are /proc/loadavg's 1, 5 and 15 minute
	// averages when the run started and ended.
	LoadBefore string `json:"load_before,omitempty"`
	LoadAfter  string `json:"load_after,omitempty"`
	Error      string `json:"error,omitempty"`
}

// throughputRowsPerLab is how many rows a daemon lab adds (three path
// kinds, offloads on and off); the kernel lab adds as many.
const throughputRowsPerLab = 6

// throughputConflict rejects flags that do not go with --throughput: it
// runs its own failure (carrier loss of ISP A) in labs it builds and
// removes.
func throughputConflict(f labFlags) error {
	for _, name := range []string{"fail", "fail-at", "duration", "kernel", "capture", "keep", "plot", "ha", "vrrp-advert"} {
		if f.set[name] {
			return fmt.Errorf("lab: --%s does not go with --throughput", name)
		}
	}
	if f.set["fastpath"] && f.fastpath == "auto" {
		return errors.New("lab: --throughput measures --fastpath ebpf and off; auto would leave the rows' fastpath unknown")
	}
	return nil
}

// throughputFastpaths are the daemon labs' dataplane.fastpath values:
// both, unless --fastpath picked one.
func (f labFlags) throughputFastpaths() []string {
	if f.set["fastpath"] {
		return []string{f.fastpath}
	}
	return []string{"ebpf", "off"}
}

// runThroughput implements --throughput: the daemon lab once per fast
// path mode, then the kernel-forwarding lab, every row in one run.
func (r *labRun) runThroughput(ctx context.Context) int {
	dir, err := os.MkdirTemp("", "shim6gw-lab-")
	if err != nil {
		return failf(r.stderr, exitFail, "lab: %v", err)
	}
	defer os.RemoveAll(dir)
	r.dir = dir
	res := throughputResult{Seconds: r.f.throughput.Seconds(), LoadBefore: loadAvg()}
	var errs []error
	fps := r.f.throughputFastpaths()
	for _, fp := range fps {
		rows, err := r.daemonThroughput(ctx, fp)
		res.Rows = append(res.Rows, rows...)
		if err != nil {
			errs = append(errs, fmt.Errorf("daemon lab, fastpath %s: %w", fp, err))
		}
		if ctx.Err() != nil {
			return failf(r.stderr, exitFail, "lab: interrupted")
		}
	}
	rows, err := r.kernelThroughput(ctx)
	res.Rows = append(res.Rows, rows...)
	if err != nil {
		errs = append(errs, fmt.Errorf("kernel lab: %w", err))
	}
	if ctx.Err() != nil {
		return failf(r.stderr, exitFail, "lab: interrupted")
	}
	res.Ratios = throughputRatios(res.Rows)
	res.LoadAfter = loadAvg()
	if err := errors.Join(errs...); err != nil {
		res.Error = err.Error()
		fmt.Fprintf(r.stderr, "shim6gw: lab: %v\n", err)
	}
	if r.f.json {
		enc := json.NewEncoder(r.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // "h1->h2"
		if err := enc.Encode(res); err != nil {
			return failf(r.stderr, exitFail, "lab: %v", err)
		}
	} else {
		writeThroughput(r.stdout, res)
	}
	if res.Error != "" || len(res.Rows) != throughputRowsPerLab*(len(fps)+1) {
		return exitFail
	}
	return exitOK
}

// inLab builds a lab, runs fn in it and tears it down.
func (r *labRun) inLab(ctx context.Context, mode lab.Mode, fastpath string, fn func(*lab.Lab) error) error {
	l, gwLog, err := r.build(ctx, mode, fastpath)
	if gwLog != nil {
		defer gwLog.Close()
	}
	if err != nil {
		return fmt.Errorf("%w%s", err, r.logHint(mode))
	}
	defer func() {
		r.say("tearing the lab down")
		if err := l.Down(); err != nil {
			fmt.Fprintf(r.stderr, "shim6gw: lab: down: %v\n", err)
		}
	}()
	return fn(l)
}

// How long the daemon lab may take to open the h1–h2 context and to move
// it after the failure (REAP with the lab timers takes well under 1 s).
const contextWait = 15 * time.Second

// daemonThroughput measures the daemon rows with dataplane.fastpath fp:
// passthrough with the context on its ULID pair, then, after ISP A's
// carrier loss, shimmed and fallback via P_B; offloads on and off.
func (r *labRun) daemonThroughput(ctx context.Context, fp string) ([]throughputRow, error) {
	var rows []throughputRow
	err := r.inLab(ctx, lab.Daemon, fp, func(l *lab.Lab) error {
		m := &meter{r: r, l: l, fastpath: fp == "ebpf"}
		h1, h2 := m.h1(), l.HostAddrs(lab.H2)[0]
		// The first packets open the context.
		if _, err := l.UDPProbe(ctx, lab.H1, h1, lab.H2, h2, 5700, 5, 200*time.Millisecond); err != nil {
			return err
		}
		if err := waitBoth(ctx, l, h1, h2, lab.OnULIDPair, lab.OnULIDPair); err != nil {
			return err
		}
		measure := func(kind string, offloads bool) error {
			t, err := m.daemon(ctx, kind, offloads)
			if err == nil {
				rows = append(rows, t)
			}
			return err
		}
		if err := measure(kindPassthrough, true); err != nil {
			return err
		}
		if err := r.setOffloads(ctx, l, false); err != nil {
			return err
		}
		if err := measure(kindPassthrough, false); err != nil {
			return err
		}
		r.say("failing %s: carrier loss on gw1's %s", lab.ISPA1, lab.UplinkAIf)
		if err := l.FailLink(ctx, lab.ISPA1); err != nil {
			return err
		}
		pb := lab.Site1.B.Prefix
		if err := waitBoth(ctx, l, h1, h2, lab.LocatorIn(pb, false), lab.LocatorIn(pb, true)); err != nil {
			return err
		}
		for _, step := range []struct {
			kind     string
			offloads bool
		}{{kindShimmed, false}, {kindFallback, false}, {kindShimmed, true}, {kindFallback, true}} {
			if step.offloads && step.kind == kindShimmed {
				if err := r.setOffloads(ctx, l, true); err != nil {
					return err
				}
			}
			if err := measure(step.kind, step.offloads); err != nil {
				return err
			}
		}
		return nil
	})
	return rows, err
}

// kernelThroughput measures the kernel rows: h1→h2 (the baseline of
// passthrough and shimmed) and h1→legacy (of fallback), offloads on
// (kernel) and off (kernel-per-packet).
func (r *labRun) kernelThroughput(ctx context.Context) ([]throughputRow, error) {
	var rows []throughputRow
	err := r.inLab(ctx, lab.KernelForwarding, "", func(l *lab.Lab) error {
		m := &meter{r: r, l: l}
		for _, offloads := range []bool{true, false} {
			mode := modeKernel
			if !offloads {
				mode = modeKernelPerPacket
				if err := r.setOffloads(ctx, l, false); err != nil {
					return err
				}
			}
			t, err := m.iperf(ctx, mode, lab.H2, offloads)
			if err != nil {
				return err
			}
			rows = append(rows, kernelRows(t, mode, offloads, "h1->h2", kindPassthrough, kindShimmed)...)
			if t, err = m.iperf(ctx, mode, lab.Legacy, offloads); err != nil {
				return err
			}
			rows = append(rows, kernelRows(t, mode, offloads, "h1->legacy", kindFallback)...)
		}
		return nil
	})
	return rows, err
}

// kernelRows turns one kernel measurement into a row per path kind it is
// the baseline for.
func kernelRows(t lab.Throughput, mode string, offloads bool, path string, kinds ...string) []throughputRow {
	var out []throughputRow
	for _, k := range kinds {
		out = append(out, throughputRow{Mode: mode, PathKind: k, Offloads: offloads, Path: path,
			MbitPerSec: t.BitsPerSecond / 1e6, Retransmits: t.Retransmits})
	}
	return out
}

func (r *labRun) setOffloads(ctx context.Context, l *lab.Lab, on bool) error {
	if on {
		r.say("offloads on: TSO and GSO on every veth")
	} else {
		r.say("offloads off: TSO, GSO and GRO off on every veth")
	}
	return l.SetOffloads(ctx, on)
}

// waitBoth waits until gw1's context h1–h2 satisfies at1 and gw2's
// context h2–h1 satisfies at2.
func waitBoth(ctx context.Context, l *lab.Lab, h1, h2 netip.Addr, at1, at2 func(metrics.ContextInfo) bool) error {
	if _, err := l.WaitContext(ctx, lab.GW1, h1, h2, at1, contextWait); err != nil {
		return err
	}
	_, err := l.WaitContext(ctx, lab.GW2, h2, h1, at2, contextWait)
	return err
}

// meter runs the measurements of one lab.
type meter struct {
	r        *labRun
	l        *lab.Lab
	fastpath bool
}

func (m *meter) h1() netip.Addr { return m.l.HostAddrs(lab.H1)[0] }

// iperf measures h1 → to (h2 or legacy) for the run's duration.
func (m *meter) iperf(ctx context.Context, what string, to lab.Node, offloads bool) (lab.Throughput, error) {
	dst, port := m.l.HostAddrs(to)[0], uint16(5701)
	if to == lab.Legacy {
		port = 5702
	}
	m.r.say("measuring %s h1->%s, offloads %s, for %v", what, to, onOff(offloads), m.r.f.throughput)
	return m.l.Iperf3(ctx, lab.H1, m.h1(), to, dst, port, m.r.f.throughput)
}

// daemon measures one daemon row and, with the fast path, the share of
// gw1's packets it carried; it notes a context that left the row's
// locators meanwhile.
func (m *meter) daemon(ctx context.Context, kind string, offloads bool) (throughputRow, error) {
	to, path := lab.H2, "h1->h2 (context on the ULID pair)"
	switch kind {
	case kindShimmed:
		path = "h1->h2 (shimmed via P_B)"
	case kindFallback:
		to, path = lab.Legacy, "h1->legacy (fallback to h1's P_B locator)"
	}
	what := "daemon (TUN path)"
	if m.fastpath {
		what = "daemon (fast path)"
	}
	var before map[string]lab.PathCount
	var err error
	if m.fastpath {
		if before, err = m.l.FastpathCounts(ctx, lab.GW1); err != nil {
			return throughputRow{}, err
		}
	}
	t, err := m.iperf(ctx, what+" "+kind, to, offloads)
	if err != nil {
		return throughputRow{}, err
	}
	row := throughputRow{Mode: modeDaemon, PathKind: kind, Fastpath: m.fastpath, Offloads: offloads, Path: path,
		MbitPerSec: t.BitsPerSecond / 1e6, Retransmits: t.Retransmits}
	if m.fastpath {
		after, err := m.l.FastpathCounts(ctx, lab.GW1)
		if err != nil {
			return throughputRow{}, err
		}
		row.FastShare, row.FastByteShare = fastShares(before, after)
	}
	if kind != kindFallback {
		want := lab.OnULIDPair
		if kind == kindShimmed {
			want = lab.LocatorIn(lab.Site1.B.Prefix, false)
		}
		cs, err := m.l.Contexts(ctx, lab.GW1)
		if err != nil {
			return throughputRow{}, err
		}
		if c, ok := lab.FindContext(cs, m.h1(), m.l.HostAddrs(lab.H2)[0]); !ok || !want(c) {
			row.Note = "context after the measurement: " + lab.FormatPair(c)
		}
	}
	return row, nil
}

// fastShares returns the fast path's share of the packets and of the
// bytes between two FastpathCounts (nil without the fast path's metrics).
func fastShares(before, after map[string]lab.PathCount) (packets, bytes *float64) {
	if len(after) == 0 {
		return nil, nil
	}
	var fast, all lab.PathCount
	for path, a := range after {
		d := lab.PathCount{Packets: a.Packets - before[path].Packets, Bytes: a.Bytes - before[path].Bytes}
		all.Packets += d.Packets
		all.Bytes += d.Bytes
		if path == "fast" {
			fast = d
		}
	}
	share := func(f, a float64) *float64 {
		v := 0.0
		if a > 0 {
			v = f / a
		}
		return &v
	}
	return share(fast.Packets, all.Packets), share(fast.Bytes, all.Bytes)
}

// writeThroughput prints the rows as a table and the goals' ratios.
func writeThroughput(w io.Writer, res throughputResult) {
	fmt.Fprintf(w, "\nthroughput, iperf3 TCP, one stream, %gs per row (load average %s, after %s):\n", res.Seconds, res.LoadBefore, res.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  mode\tpath kind\tfast path\toffloads\tMbit/s\t× kernel\tretransmits\tfast share (pkts/bytes)\tpath")
	for _, t := range res.Rows {
		ratio, share := "", ""
		if b, ok := baselineOf(t, res.Rows); ok && b.MbitPerSec > 0 {
			ratio = fmt.Sprintf("%.2f", t.MbitPerSec/b.MbitPerSec)
		}
		if t.FastShare != nil {
			share = fmt.Sprintf("%.3f / %.3f", *t.FastShare, *t.FastByteShare)
		}
		path := t.Path
		if t.Note != "" {
			path += " [" + t.Note + "]"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%.0f\t%s\t%d\t%s\t%s\n", t.Mode, t.PathKind, yesNo(t.Fastpath), onOff(t.Offloads),
			t.MbitPerSec, ratio, t.Retransmits, share, path)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "goals (issue 12):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, q := range res.Ratios {
		verdict := "not met"
		if q.Met {
			verdict = "met"
		}
		fmt.Fprintf(tw, "  %s\t%.2f\t(goal ≥ %g)\t%s\n", q.Name, q.Value, q.Goal, verdict)
	}
	_ = tw.Flush()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// loadAvg returns the 1, 5 and 15 minute load averages ("" if unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

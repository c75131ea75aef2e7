package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// sample records the streams' received bytes every sampleEvery into
// r.Series until the returned function is called (idempotent).
func (l *Lab) sample(r *Report, streams []*Stream, start time.Time) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			s := Sample{At: time.Since(start), Bytes: make([]int64, len(streams))}
			for i, st := range streams {
				s.Bytes[i] = st.Tracker.Bytes()
			}
			r.Series = append(r.Series, s)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// ScenarioOptions configure RunScenario.
type ScenarioOptions struct {
	Fail     FailMode      // default FailLink
	ISP      Node          // the failing provider router (default ISPA1)
	FailAt   time.Duration // after the streams start (default 3 s)
	Duration time.Duration // total, from the streams' start (default 10 s)
	Rate     int           // per stream, bytes/s (StreamConfig.Rate)
	Port     uint16        // first of two TCP ports (default 5601)
	// Progress, if set, is called about every 250 ms with live figures.
	Progress func(Progress)
	// LocatorPair returns the current locator pair of the h1–h2 context
	// (in Daemon mode: from gw1's admin server). Nil: the streams' own
	// addresses, which is the truth in KernelForwarding mode.
	LocatorPair func(ctx context.Context) (string, error)
	// Steps are more things to do at their times (after the streams
	// start), e.g. a provider failure before the gateway dies.
	Steps []Step
}

// Step is one timed action of a scenario.
type Step struct {
	At   time.Duration
	Name string
	Do   func(ctx context.Context) error
}

// Progress is one live progress line.
type Progress struct {
	Elapsed time.Duration
	Bytes   int64 // received, both directions
	Pair    string
	Gap     time.Duration // largest gap so far, either direction
	Failed  bool          // the failure has been injected
}

// String renders the progress line.
func (p Progress) String() string {
	state := "before failure"
	if p.Failed {
		state = "after failure"
	}
	return fmt.Sprintf("%5.1fs  %10d bytes  pair %s  max gap %d ms  (%s)",
		p.Elapsed.Seconds(), p.Bytes, p.Pair, p.Gap.Milliseconds(), state)
}

// Report is the outcome of a scenario (`shim6gw lab --json`).
type Report struct {
	Mode        string        `json:"mode"`
	Established bool          `json:"established"`
	Survived    bool          `json:"survived"`
	GapMS       int64         `json:"gap_ms"`
	FailMode    FailMode      `json:"fail_mode"`
	FailedISP   Node          `json:"failed_isp"`
	FailAtMS    int64         `json:"fail_at_ms"`
	DurationMS  int64         `json:"duration_ms"`
	PairBefore  string        `json:"pair_before"`
	PairAfter   string        `json:"pair_after"`
	Bytes       int64         `json:"bytes"`
	Streams     []StreamStats `json:"streams"`
	Error       string        `json:"error,omitempty"`
	// HA lab: the gateway(s) holding the router address just before the
	// failure and at the end ("gw1a", "gw1b", "gw1a+gw1b", "none").
	ActiveBefore  string `json:"active_before,omitempty"`
	ActiveAfter   string `json:"active_after,omitempty"`
	FailedGateway Node   `json:"failed_gateway,omitempty"`
	// Events are the lab's actions and the processes' notable log lines
	// (with Options.Events).
	Events []Event `json:"events,omitempty"`
	// Start and FailTime are when the streams started and when the
	// failure was injected; Series samples the bytes each stream received.
	Start    time.Time `json:"-"`
	FailTime time.Time `json:"-"`
	// GapFrom and GapTo bound the gap of GapMS.
	GapFrom, GapTo time.Time `json:"-"`
	Series         []Sample  `json:"-"`
}

// Sample is the bytes received per stream (Report.Streams order) at At
// after the start.
type Sample struct {
	At    time.Duration
	Bytes []int64
}

// sampleEvery is RunScenario's sampling interval for Report.Series.
const sampleEvery = 20 * time.Millisecond

// RunScenario runs a TCP stream in each direction between h1 and h2 (h1's
// and h2's first addresses), injects the failure at FailAt, keeps going
// until Duration and reports. Survived means: both connections
// established, neither saw a reset or error, and both received data after
// the failure. With Options.LANHosts, h1d and h1s each send a stream to
// h2 as well, and all four must survive. GapMS is the largest interval
// without received data at either host among the gaps that end after the
// failure (an open gap at the end counts up to the end). The failure is
// left in place.
func (l *Lab) RunScenario(ctx context.Context, o ScenarioOptions) (*Report, error) {
	if o.Fail == "" {
		o.Fail = FailLink
	}
	if o.ISP == "" {
		o.ISP = ISPA1
	}
	if o.FailAt <= 0 {
		o.FailAt = 3 * time.Second
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.FailAt >= o.Duration {
		return nil, fmt.Errorf("lab: fail-at %v is not before the end %v", o.FailAt, o.Duration)
	}
	if o.Port == 0 {
		o.Port = 5601
	}
	if _, _, err := ispOf(o.ISP); err != nil && o.Fail != FailGateway {
		return nil, err
	}
	if o.Fail == FailGateway && !l.opts.HA {
		return nil, errors.New("lab: --fail gateway needs an HA lab (--ha)")
	}
	if o.Fail == FailGateway {
		o.ISP = ""
	}
	r := &Report{Mode: l.opts.Mode.String(), FailMode: o.Fail, FailedISP: o.ISP,
		FailAtMS: o.FailAt.Milliseconds(), DurationMS: o.Duration.Milliseconds()}
	h1, h2 := l.hostAddrs[H1][0], l.hostAddrs[H2][0]
	cfgs := []StreamConfig{
		{Name: "h1->h2", From: H1, Src: h1, To: H2, Dst: h2, Port: o.Port, Rate: o.Rate},
		{Name: "h2->h1", From: H2, Src: h2, To: H1, Dst: h1, Port: o.Port + 1, Rate: o.Rate, Host: H1},
	}
	if l.opts.LANHosts {
		// One session each from the hosts that configured themselves
		// (lanhosts.go); h2 cannot dial h1s, whose address is not global.
		for i, n := range []Node{H1D, H1S} {
			cfgs = append(cfgs, StreamConfig{Name: string(n) + "->h2", From: n, Src: l.HostAddrs(n)[0],
				To: H2, Dst: h2, Port: o.Port + 2 + uint16(i), Rate: o.Rate})
		}
	}
	var streams []*Stream
	defer func() {
		for _, s := range streams {
			s.Stop()
		}
	}()
	for _, c := range cfgs {
		s, err := l.StartStream(ctx, c)
		if err != nil {
			r.Error = err.Error()
			host := c.Host
			if host == "" {
				host = c.From
			}
			r.Streams = append(r.Streams, StreamStats{Name: c.Name, Src: netip.AddrPortFrom(c.Src, 0).String(),
				Dst: netip.AddrPortFrom(c.Dst, c.Port).String(), Err: err.Error(), Host: host, Addressing: addressing(host)})
			return r, nil
		}
		streams = append(streams, s)
	}
	r.Established = true
	pair := o.LocatorPair
	if pair == nil {
		pair = func(context.Context) (string, error) { return h1.String() + " <-> " + h2.String(), nil }
	}
	getPair := func() string {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		p, err := pair(pctx)
		if err != nil {
			return "?(" + err.Error() + ")"
		}
		return p
	}

	start := time.Now()
	r.Start = start
	stopSampling := l.sample(r, streams, start)
	defer stopSampling()
	steps := slices.Clone(o.Steps)
	var failTime time.Time
	var bytesAtFail []int64
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	end := start.Add(o.Duration)
	for {
		now := time.Now()
		if failTime.IsZero() && now.Sub(start) >= o.FailAt {
			r.PairBefore = getPair()
			if l.opts.HA {
				r.ActiveBefore = l.ActiveName(ctx)
			}
			for _, s := range streams {
				bytesAtFail = append(bytesAtFail, s.Tracker.Bytes())
			}
			// The failure instant is when it is in place: data that
			// arrives later crossed the failure.
			if o.Fail == FailGateway {
				gw, err := l.FailGateway(ctx)
				if err != nil {
					return nil, err
				}
				r.FailedGateway = gw
			} else if err := l.Fail(ctx, o.ISP, o.Fail); err != nil {
				return nil, err
			}
			failTime = time.Now()
			r.FailTime = failTime
		}
		for len(steps) > 0 && now.Sub(start) >= steps[0].At {
			l.opts.Events.Add("", SourceLab, steps[0].Name)
			if err := steps[0].Do(ctx); err != nil {
				return nil, fmt.Errorf("lab: step %s: %w", steps[0].Name, err)
			}
			steps = steps[1:]
		}
		if o.Progress != nil {
			p := Progress{Elapsed: now.Sub(start), Failed: !failTime.IsZero(), Pair: getPair()}
			for _, s := range streams {
				p.Bytes += s.Tracker.Bytes()
				p.Gap = max(p.Gap, s.Tracker.MaxGap(now).Len())
			}
			o.Progress(p)
		}
		if !now.Before(end) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	r.PairAfter = getPair()
	if l.opts.HA {
		r.ActiveAfter = l.ActiveName(ctx)
	}
	stopSampling()
	r.Events = l.opts.Events.Events()
	now := time.Now()
	r.Survived = true
	for i, s := range streams {
		st := s.Stats(now)
		r.Streams = append(r.Streams, st)
		r.Bytes += st.Bytes
		if g := s.Tracker.MaxGapAfter(failTime, now); g.Len().Milliseconds() > r.GapMS {
			r.GapMS, r.GapFrom, r.GapTo = g.Len().Milliseconds(), g.From, g.To
		}
		if st.Err != "" || st.Resets > 0 || st.Bytes <= bytesAtFail[i] || !st.LastRecv.After(failTime) {
			r.Survived = false
		}
	}
	return r, nil
}

// WriteSummary writes the short human report.
func (r *Report) WriteSummary(w io.Writer) error {
	verdict := "SURVIVED"
	if !r.Survived {
		verdict = "DID NOT SURVIVE"
	}
	if !r.Established {
		verdict = "NOT ESTABLISHED"
	}
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	at := r.FailedISP
	if r.FailedGateway != "" {
		at = r.FailedGateway
	}
	p("mode %s, failure %s at %s after %.1fs of %.1fs: %s\n", r.Mode, r.FailMode, at,
		float64(r.FailAtMS)/1000, float64(r.DurationMS)/1000, verdict)
	if r.ActiveBefore != "" {
		p("  active gateway before: %s, after: %s\n", r.ActiveBefore, r.ActiveAfter)
	}
	p("  largest gap around the failure: %d ms\n", r.GapMS)
	p("  locator pair before: %s\n  locator pair after:  %s\n", r.PairBefore, r.PairAfter)
	for _, s := range r.Streams {
		state := "ok"
		if s.Err != "" {
			state = s.Err
		}
		p("  %s  %s -> %s  %d bytes received, %d resets, max gap %d ms, %s (%s, %s)\n",
			s.Name, s.Src, s.Dst, s.Bytes, s.Resets, s.MaxGapMS, state, s.Host, s.Addressing)
	}
	if r.Error != "" {
		p("  error: %s\n", r.Error)
	}
	return err
}

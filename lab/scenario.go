package lab

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"
)

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
}

// RunScenario runs a TCP stream in each direction between h1 and h2 (h1's
// and h2's first addresses), injects the failure at FailAt, keeps going
// until Duration and reports. Survived means: both connections
// established, neither saw a reset or error, and both received data after
// the failure. GapMS is the largest interval without received data at
// either host among the gaps that end after the failure (an open gap at
// the end counts up to the end). The failure is left in place.
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
	if _, _, err := ispOf(o.ISP); err != nil {
		return nil, err
	}
	r := &Report{Mode: l.opts.Mode.String(), FailMode: o.Fail, FailedISP: o.ISP,
		FailAtMS: o.FailAt.Milliseconds(), DurationMS: o.Duration.Milliseconds()}
	h1, h2 := l.hostAddrs[H1][0], l.hostAddrs[H2][0]
	cfgs := []StreamConfig{
		{Name: "h1->h2", From: H1, Src: h1, To: H2, Dst: h2, Port: o.Port, Rate: o.Rate},
		{Name: "h2->h1", From: H2, Src: h2, To: H1, Dst: h1, Port: o.Port + 1, Rate: o.Rate},
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
			r.Streams = append(r.Streams, StreamStats{Name: c.Name, Src: netip.AddrPortFrom(c.Src, 0).String(),
				Dst: netip.AddrPortFrom(c.Dst, c.Port).String(), Err: err.Error()})
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
	var failTime time.Time
	var bytesAtFail []int64
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	end := start.Add(o.Duration)
	for {
		now := time.Now()
		if failTime.IsZero() && now.Sub(start) >= o.FailAt {
			r.PairBefore = getPair()
			for _, s := range streams {
				bytesAtFail = append(bytesAtFail, s.Tracker.Bytes())
			}
			if err := l.Fail(ctx, o.ISP, o.Fail); err != nil {
				return nil, err
			}
			failTime = time.Now()
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
	now := time.Now()
	r.Survived = true
	for i, s := range streams {
		st := s.Stats(now)
		r.Streams = append(r.Streams, st)
		r.Bytes += st.Bytes
		r.GapMS = max(r.GapMS, s.Tracker.MaxGapAfter(failTime, now).Len().Milliseconds())
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
	p("mode %s, failure %s at %s after %.1fs of %.1fs: %s\n", r.Mode, r.FailMode, r.FailedISP,
		float64(r.FailAtMS)/1000, float64(r.DurationMS)/1000, verdict)
	p("  largest gap around the failure: %d ms\n", r.GapMS)
	p("  locator pair before: %s\n  locator pair after:  %s\n", r.PairBefore, r.PairAfter)
	for _, s := range r.Streams {
		state := "ok"
		if s.Err != "" {
			state = s.Err
		}
		p("  %s  %s -> %s  %d bytes received, %d resets, max gap %d ms, %s\n",
			s.Name, s.Src, s.Dst, s.Bytes, s.Resets, s.MaxGapMS, state)
	}
	if r.Error != "" {
		p("  error: %s\n", r.Error)
	}
	return err
}

// Package labplot draws a lab scenario report (`shim6gw lab --plot`) with
// gonum.org/v1/plot. It is its own package so that a gateway binary built
// with the noplot tag leaves gonum/plot and its fonts out.
package labplot

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/shim6gw/shim6gw/lab"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

var (
	streamColors = []color.Color{color.RGBA{31, 119, 180, 255}, color.RGBA{44, 160, 44, 255}}
	failColor    = color.RGBA{214, 39, 40, 255}
	gapColor     = color.NRGBA{255, 170, 60, 90}
)

// eventColor is the colour of an event's line by what it says.
func eventColor(e lab.Event) color.Color {
	switch {
	case e.Source == lab.SourceLab:
		return failColor
	case e.Source == lab.SourceVRRP:
		return color.RGBA{148, 103, 189, 255}
	case e.What == "context recovered":
		return color.RGBA{44, 160, 44, 255}
	case strings.HasPrefix(e.What, "uplink"):
		return color.RGBA{127, 127, 127, 255}
	}
	return color.RGBA{255, 127, 14, 255}
}

// plotMark is one labelled vertical line.
type plotMark struct {
	at    float64 // seconds since the start
	label string
	color color.Color
}

// marks turns the events into labelled lines: events of one node within
// 100 ms of each other share a line ("gw2: failover ×2"), and events
// before the streams started are left out.
func marks(r *lab.Report) []plotMark {
	evs := append([]lab.Event(nil), r.Events...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
	var out []plotMark
	type key struct {
		node lab.Node
		what string
	}
	last := map[key]int{}
	counts := map[int]int{}
	for _, e := range evs {
		at := e.At.Sub(r.Start).Seconds()
		if at < 0 || e.Source == lab.SourceLab && !r.FailTime.IsZero() && e.At.Sub(r.FailTime).Abs() < 200*time.Millisecond {
			continue // before the streams, or the failure's own line
		}
		k := key{e.Node, e.What}
		if i, ok := last[k]; ok && at-out[i].at < 0.1 {
			counts[i]++
			continue
		}
		label := e.What
		if e.Node != "" {
			label = string(e.Node) + ": " + e.What
		}
		out = append(out, plotMark{at: at, label: label, color: eventColor(e)})
		last[k] = len(out) - 1
	}
	for i, n := range counts {
		out[i].label += fmt.Sprintf(" ×%d", n+1)
	}
	return out
}

// plotBin is the width of Plot's bins.
const plotBin = 100 * time.Millisecond

// Plot draws a scenario report into path (.svg or .png): what each stream
// received per 100 ms bin over time, the failure, the largest gap after it
// shaded, and a dashed line per event (the lab's actions, the gateways'
// failovers and recoveries, keepalived's state changes), listed with
// their times beside the plot.
func Plot(r *lab.Report, title, path string) error {
	ext := strings.ToLower(filepath.Ext(path))
	if !lab.PlotFormatOK(path) {
		return fmt.Errorf("labplot %q: want .svg or .png", path)
	}
	if len(r.Series) < 2 {
		return fmt.Errorf("labplot: no samples (the streams did not start)")
	}
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text = "time since the streams started (s)"
	p.Y.Label.Text = fmt.Sprintf("received (MB/s, %v bins)", plotBin)
	p.Add(plotter.NewGrid())
	leg := plot.NewLegend()
	leg.Top, leg.Left = true, true
	leg.TextStyle.Font.Size = vg.Points(8)

	step := 1
	if every := r.Series[1].At - r.Series[0].At; every > 0 {
		step = max(1, int(plotBin/every))
	}
	ymax := 0.0
	for i, st := range r.Streams {
		if i >= len(r.Series[0].Bytes) {
			break
		}
		var xy plotter.XYs
		for j := step; j < len(r.Series); j += step {
			a, b := r.Series[j-step], r.Series[j]
			rate := float64(b.Bytes[i]-a.Bytes[i]) / (b.At - a.At).Seconds() / 1e6
			xy = append(xy, plotter.XY{X: a.At.Seconds(), Y: rate}, plotter.XY{X: b.At.Seconds(), Y: rate})
			ymax = math.Max(ymax, rate)
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return fmt.Errorf("labplot: %w", err)
		}
		l.Color = streamColors[i%len(streamColors)]
		l.Width = vg.Points(1.2)
		p.Add(l)
		leg.Add(st.Name, l)
	}
	if ymax == 0 {
		ymax = 1
	}
	top := ymax * 1.05
	vline := func(x float64, c color.Color, dashed bool, width vg.Length) (*plotter.Line, error) {
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top}})
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = c, width
		if dashed {
			l.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
		}
		return l, nil
	}
	if !r.GapFrom.IsZero() && r.GapMS > 0 {
		a, b := r.GapFrom.Sub(r.Start).Seconds(), r.GapTo.Sub(r.Start).Seconds()
		g, err := plotter.NewPolygon(plotter.XYs{{X: a, Y: 0}, {X: b, Y: 0}, {X: b, Y: top}, {X: a, Y: top}})
		if err != nil {
			return fmt.Errorf("labplot: %w", err)
		}
		g.Color, g.LineStyle.Width = gapColor, 0
		p.Add(g)
		leg.Add(fmt.Sprintf("largest gap: %d ms", r.GapMS), g)
	}
	if !r.FailTime.IsZero() {
		at := r.FailTime.Sub(r.Start).Seconds()
		l, err := vline(at, failColor, false, vg.Points(1.5))
		if err != nil {
			return fmt.Errorf("labplot: %w", err)
		}
		p.Add(l)
		leg.Add(fmt.Sprintf("%5.2f s  failure: %s", at, failureName(r)), l)
	}
	for _, m := range marks(r) {
		l, err := vline(m.at, m.color, true, vg.Points(0.8))
		if err != nil {
			return fmt.Errorf("labplot: %w", err)
		}
		p.Add(l)
		leg.Add(fmt.Sprintf("%5.2f s  %s", m.at, m.label), l)
	}
	p.X.Min, p.X.Max = 0, r.Series[len(r.Series)-1].At.Seconds()
	p.Y.Min, p.Y.Max = 0, top

	const w, h, legW = 23 * vg.Centimeter, 12 * vg.Centimeter, 6.2 * vg.Centimeter
	var c vg.CanvasWriterTo
	if ext == ".png" {
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))}
	} else {
		c = vgsvg.New(w, h)
	}
	dc := draw.New(c)
	p.Draw(draw.Crop(dc, 0, -legW, 0, 0))
	leg.Draw(draw.Crop(dc, w-legW+vg.Points(6), 0, 0, -vg.Points(24)))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("labplot: %w", err)
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("labplot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("labplot: %w", err)
	}
	return nil
}

// failureName says what failed, for the legend.
func failureName(r *lab.Report) string {
	switch {
	case r.FailMode == lab.FailNone:
		return "none (scenario steps from here)"
	case r.FailedGateway != "":
		return "power off " + string(r.FailedGateway)
	case r.FailedISP != "":
		return string(r.FailMode) + " at " + string(r.FailedISP)
	}
	return string(r.FailMode)
}

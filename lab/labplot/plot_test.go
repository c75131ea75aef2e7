package labplot

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/lab"
)

// testReport is a scenario report with a 600 ms gap after a failure at 2 s
// and some events around it.
func testReport() *lab.Report {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &lab.Report{Start: start, FailTime: start.Add(2 * time.Second), FailMode: lab.FailGateway, FailedGateway: lab.GW1A, GapMS: 600,
		GapFrom: start.Add(2 * time.Second), GapTo: start.Add(2600 * time.Millisecond),
		Streams: []lab.StreamStats{{Name: "h1->h2"}, {Name: "h2->h1"}}}
	var b int64
	for t := time.Duration(0); t <= 5*time.Second; t += 20 * time.Millisecond {
		if t < 2*time.Second || t > 2600*time.Millisecond {
			b += 20000
		}
		r.Series = append(r.Series, lab.Sample{At: t, Bytes: []int64{b, b}})
	}
	at := func(d time.Duration) time.Time { return start.Add(d) }
	r.Events = []lab.Event{
		{At: at(-time.Second), Node: lab.GW1A, Source: lab.SourceVRRP, What: "MASTER"},
		{At: at(2 * time.Second), Node: lab.GW1A, Source: lab.SourceLab, What: "power off"},
		{At: at(2400 * time.Millisecond), Node: lab.GW1B, Source: lab.SourceVRRP, What: "MASTER"},
		{At: at(2450 * time.Millisecond), Node: lab.GW2, Source: lab.SourceGateway, What: "context recovered"},
		{At: at(2480 * time.Millisecond), Node: lab.GW2, Source: lab.SourceGateway, What: "context recovered"},
	}
	return r
}

// TestPlotMarks: events before the start and the failure's own lab event
// are left out; repeats within 100 ms share a line.
func TestPlotMarks(t *testing.T) {
	var got []string
	for _, m := range marks(testReport()) {
		got = append(got, m.label)
	}
	if d := cmp.Diff([]string{"gw1b: MASTER", "gw2: context recovered ×2"}, got); d != "" {
		t.Errorf("marks (-want +got):\n%s", d)
	}
}

func TestPlotWritesPNGAndSVG(t *testing.T) {
	dir := t.TempDir()
	r := testReport()
	png1 := filepath.Join(dir, "x.png")
	if err := Plot(r, "shim6gw lab --ha --fail gateway", png1); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(png1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 400 {
		t.Errorf("PNG is %v, too small to read", b)
	}
	svg := filepath.Join(dir, "x.svg")
	if err := Plot(r, "shim6gw lab --ha --fail gateway", svg); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "shim6gw lab --ha --fail gateway", "largest gap: 600 ms", "gw1b: MASTER", "power off gw1a", "h2-&gt;h1"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if err := Plot(r, "x", filepath.Join(dir, "x.pdf")); err == nil {
		t.Error("a .pdf was accepted")
	}
	if err := Plot(&lab.Report{}, "x", filepath.Join(dir, "y.png")); err == nil {
		t.Error("a report without samples was plotted")
	}
}

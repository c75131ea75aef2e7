package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"time"
)

// Throughput is one iperf3 measurement.
type Throughput struct {
	From, To      Node
	Src, Dst      netip.Addr
	Duration      time.Duration
	BitsPerSecond float64 // received at the server
	Retransmits   int
	BytesReceived int64
}

// String formats the figure as "h1→h2 943.2 Mbit/s (12 retransmits)".
func (t Throughput) String() string {
	return fmt.Sprintf("%s→%s %.1f Mbit/s (%d retransmits)", t.From, t.To, t.BitsPerSecond/1e6, t.Retransmits)
}

// Iperf3 measures TCP throughput from src in node from to dst in node to
// for d with iperf3 (server in to, client in from). Both processes are
// killed when it returns; the whole run is bounded by d + 20 s and ctx.
func (l *Lab) Iperf3(ctx context.Context, from Node, src netip.Addr, to Node, dst netip.Addr, port uint16, d time.Duration) (Throughput, error) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		return Throughput{}, fmt.Errorf("%w: iperf3", ErrTool)
	}
	ctx, cancel := context.WithTimeout(ctx, d+20*time.Second)
	defer cancel()
	p := strconv.Itoa(int(port))
	srv, err := l.spawn(to, nil, nil, "iperf3", "-s", "-1", "-B", dst.String(), "-p", p)
	if err != nil {
		return Throughput{}, err
	}
	defer l.reap(srv)
	secs := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	var t Throughput
	// The server needs a moment to listen: retry the client, bounded.
	// (iperf3 -J may exit 0 with an "error" member, so look at both.)
	for attempt := 0; ; attempt++ {
		c := exec.CommandContext(ctx, "ip", "netns", "exec", l.NS(from), "iperf3", "-c", dst.String(),
			"-B", src.String(), "-p", p, "-t", secs, "-J", "--connect-timeout", "3000")
		var stdout bytes.Buffer
		c.Stdout = &stdout
		c.WaitDelay = time.Second
		err = c.Run()
		if err == nil {
			t, err = parseIperf3(stdout.Bytes())
		} else {
			err = fmt.Errorf("lab: iperf3 %s→%s: %w: %s", from, to, err, iperfError(stdout.Bytes()))
		}
		if err == nil || attempt >= 20 || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return Throughput{}, err
	}
	t.From, t.To, t.Src, t.Dst = from, to, src, dst
	return t, nil
}

// reap stops a process the lab spawned and forgets it.
func (l *Lab) reap(c *exec.Cmd) {
	stopProcess(c)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, p := range l.procs {
		if p == c {
			l.procs = append(l.procs[:i], l.procs[i+1:]...)
			break
		}
	}
}

// iperf3JSON is the part of `iperf3 -J` output the lab reads.
type iperf3JSON struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			Seconds     float64 `json:"seconds"`
			Retransmits int     `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			Bytes         int64   `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// parseIperf3 reads the receiver-side figure of an iperf3 -J report.
func parseIperf3(out []byte) (Throughput, error) {
	var r iperf3JSON
	if err := json.Unmarshal(out, &r); err != nil {
		return Throughput{}, fmt.Errorf("lab: iperf3 output: %w", err)
	}
	if r.Error != "" {
		return Throughput{}, fmt.Errorf("lab: iperf3: %s", r.Error)
	}
	if r.End.SumReceived.Seconds <= 0 {
		return Throughput{}, fmt.Errorf("lab: iperf3 output has no receiver summary")
	}
	return Throughput{
		Duration:      time.Duration(r.End.SumReceived.Seconds * float64(time.Second)),
		BitsPerSecond: r.End.SumReceived.BitsPerSecond,
		Retransmits:   r.End.SumSent.Retransmits,
		BytesReceived: r.End.SumReceived.Bytes,
	}, nil
}

// iperfError extracts the error message of a failed iperf3 -J run.
func iperfError(out []byte) string {
	var r iperf3JSON
	if json.Unmarshal(out, &r) == nil && r.Error != "" {
		return r.Error
	}
	return string(bytes.TrimSpace(out))
}

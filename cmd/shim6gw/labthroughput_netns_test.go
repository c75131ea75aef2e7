package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"
)

// TestIntegrationLabThroughput runs "lab --throughput 1s --json" with the
// built binary: every row of the issue-12 table is there and measured
// something, the fast path carried passthrough traffic, and the goals'
// ratios are computed. The figures are logged, never asserted.
func TestIntegrationLabThroughput(t *testing.T) {
	skipUnlessLab(t, "iperf3", "ethtool")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const prefix = "s6labtp"
	bin := labBinary(ctx, t, prefix)
	c := exec.CommandContext(ctx, bin, "lab", "--json", "--prefix", prefix, "--throughput", "1s")
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	t.Logf("stdout: %s", stdout.String())
	if err != nil {
		t.Fatalf("shim6gw lab --throughput: %v\nstderr: %s", err, stderr.String())
	}
	var res struct {
		Rows []struct {
			throughputRow
			FastShare *float64 `json:"fast_share"`
		} `json:"throughput"`
		Ratios []throughputRatio `json:"ratios"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output is not one JSON object: %v", err)
	}
	seen := map[rowKey]bool{}
	for _, r := range res.Rows {
		k := r.key()
		if seen[k] {
			t.Errorf("row %+v twice", k)
		}
		seen[k] = true
		if r.MbitPerSec <= 0 {
			t.Errorf("row %+v: %v Mbit/s", k, r.MbitPerSec)
		}
		if (r.FastShare != nil) != (r.Mode == modeDaemon && r.Fastpath) {
			t.Errorf("row %+v: fast share %v, want one exactly for daemon rows with the fast path", k, r.FastShare)
		}
		if r.Mode == modeDaemon && r.Fastpath && r.PathKind == kindPassthrough && r.Offloads && (r.FastShare == nil || *r.FastShare <= 0) {
			t.Errorf("passthrough with the fast path: fast share %v, want > 0", r.FastShare)
		}
	}
	for _, kind := range []string{kindPassthrough, kindShimmed, kindFallback} {
		for _, off := range []bool{true, false} {
			want := []rowKey{{modeDaemon, kind, true, off}, {modeDaemon, kind, false, off}, {modeKernel, kind, false, true}, {modeKernelPerPacket, kind, false, false}}
			for _, k := range want {
				if !seen[k] {
					t.Errorf("no row %+v", k)
				}
			}
		}
	}
	if len(res.Rows) != 3*throughputRowsPerLab || len(res.Ratios) != len(throughputGoals) {
		t.Errorf("%d rows and %d ratios, want %d and %d", len(res.Rows), len(res.Ratios), 3*throughputRowsPerLab, len(throughputGoals))
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIntegrationLabCommandHA runs "lab --ha --fail gateway --json --plot"
// and checks the HA fields of the report and the drawing.
func TestIntegrationLabCommandHA(t *testing.T) {
	skipUnlessLab(t, "keepalived")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const prefix = "s6labcmdha"
	bin := labBinary(ctx, t, prefix)
	svg := filepath.Join(t.TempDir(), "ha.svg")
	c := exec.CommandContext(ctx, bin, "lab", "--ha", "--fail", "gateway", "--json", "--prefix", prefix,
		"--fail-at", "2s", "--duration", "5s", "--plot", svg)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("shim6gw lab --ha: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	var rep struct {
		Survived      bool   `json:"survived"`
		GapMS         *int64 `json:"gap_ms"`
		FailMode      string `json:"fail_mode"`
		ActiveBefore  string `json:"active_before"`
		ActiveAfter   string `json:"active_after"`
		FailedGateway string `json:"failed_gateway"`
		Events        []struct {
			Node, Source, What string
		} `json:"events"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
	}
	if !rep.Survived || rep.GapMS == nil || rep.FailMode != "gateway" || rep.ActiveBefore != "gw1a" ||
		rep.ActiveAfter != "gw1b" || rep.FailedGateway != "gw1a" {
		t.Errorf("report %s", stdout.String())
	}
	master := false
	for _, e := range rep.Events {
		master = master || e.Node == "gw1b" && e.Source == "vrrp" && e.What == "MASTER"
	}
	if !master {
		t.Errorf("no event of gw1b becoming master: %+v", rep.Events)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "--ha --fail gateway", "gw1b: MASTER", "power off gw1a"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("plot lacks %q", want)
		}
	}
	t.Logf("gap %d ms", *rep.GapMS)
}

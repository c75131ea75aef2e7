package lab

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestIntegrationSetOffloads: SetOffloads reaches both ends of every veth
// of the lab, off (TSO, GSO, GRO) and back to a new veth's defaults.
func TestIntegrationSetOffloads(t *testing.T) {
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("skipping: ethtool not installed")
	}
	l := upLab(t, Options{Prefix: "s6laboff"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	check := func(when string, want map[string]string) {
		t.Helper()
		ends := 0
		for _, k := range l.topoLinks() {
			for _, end := range [][2]string{{string(k.a), k.aName}, {string(k.b), k.bName}} {
				out, err := l.Exec(ctx, Node(end[0]), "ethtool", "-k", end[1])
				if err != nil {
					t.Fatal(err)
				}
				got := features(string(out))
				for f, v := range want {
					if got[f] != v {
						t.Errorf("%s: %s %s: %s is %q, want %q", when, end[0], end[1], f, got[f], v)
					}
				}
				ends++
			}
		}
		if ends != 2*len(links()) {
			t.Errorf("%s: checked %d veth ends, want %d", when, ends, 2*len(links()))
		}
	}
	defaults := map[string]string{"tcp-segmentation-offload": "on", "generic-segmentation-offload": "on", "generic-receive-offload": "off"}
	check("new lab", defaults)
	if err := l.SetOffloads(ctx, false); err != nil {
		t.Fatal(err)
	}
	check("offloads off", map[string]string{"tcp-segmentation-offload": "off", "generic-segmentation-offload": "off", "generic-receive-offload": "off"})
	if err := l.SetOffloads(ctx, true); err != nil {
		t.Fatal(err)
	}
	check("offloads on", defaults)
}

// features parses `ethtool -k` output ("name: on [fixed]") into name → on|off.
func features(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if ok {
			m[name], _, _ = strings.Cut(v, " ")
		}
	}
	return m
}

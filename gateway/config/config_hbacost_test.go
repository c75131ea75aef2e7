package config

import (
	"strings"
	"testing"
	"time"
)

func TestHBAGenerationEstimate(t *testing.T) {
	for _, tc := range []struct {
		hosts, sec int
		want       time.Duration
	}{
		{256, 0, 256 * 410 * time.Nanosecond},
		{256, 1, 256 * 65536 * 410 * time.Nanosecond}, // 6.9 s
		{1, 2, (1 << 32) * 410 * time.Nanosecond},     // 29 min
		{65536, 2, 65536 * (1 << 32) * 410 * time.Nanosecond},
	} {
		if got := HBAGenerationEstimate(tc.hosts, tc.sec); got != tc.want {
			t.Errorf("(%d hosts, sec %d) = %v, want %v", tc.hosts, tc.sec, got, tc.want)
		}
	}
}

// TestConfigRefusesHBAGenerationBeyondLimit: Sec 2 needs ~30 min per host
// and is refused; Sec 1 is accepted up to the host count that fits in
// HBAGenerationMax and warned about above HBAGenerationWarn.
func TestConfigRefusesHBAGenerationBeyondLimit(t *testing.T) {
	load := func(hosts, sec string) (*Config, error) {
		text := strings.Replace(goodConfig, "  hosts: 16\n", "  hosts: "+hosts+"\n  sec: "+sec+"\n", 1)
		return Load(writeConfig(t, text))
	}
	if _, err := load("1", "2"); err == nil || !strings.Contains(err.Error(), "hba.sec: 2 with 1 hosts needs about 29m21s of CGA generation") {
		t.Errorf("sec 2: %v", err)
	}
	if _, err := load("5000", "1"); err == nil || !strings.Contains(err.Error(), "hba.sec: 1 with 5000 hosts") {
		t.Errorf("sec 1, 5000 hosts: %v", err)
	}
	c, err := load("4000", "1")
	if err != nil {
		t.Fatalf("sec 1, 4000 hosts: %v", err)
	}
	if n := HBACostNote(c); n != "hba.sec 1 with 4000 hosts: about 1m47s of CGA generation at every start" {
		t.Errorf("note = %q", n)
	}
	c, err = load("256", "1")
	if err != nil || HBACostNote(c) != "" {
		t.Errorf("sec 1, 256 hosts: %v, note %q", err, HBACostNote(c))
	}
}

package gateway

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseConfig: any text either decodes into a configuration that
// passes validation or fails with *ConfigError values only; never a
// panic.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("lan: [\n"))
	f.Add([]byte("uplinks: &a [*a]\n"))
	f.Add([]byte("timers:\n  i1_timeout: 9999999999999h\n"))
	f.Add([]byte(strings.Replace(goodConfig, "hosts: 16", "hosts: 0x7fffffff", 1)))
	f.Add([]byte("---\n- 1\n- 2\n"))
	f.Add([]byte(goodConfig + "tun:\n  backend: offload\n  txqueuelen: 99999999999999999999\npolicy:\n  initiate_after_notices: -1\n"))
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(testSecret), 0o600); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b, dir, "fuzz.yaml")
		if err == nil {
			if c == nil || len(c.Uplinks) < 2 {
				t.Fatalf("accepted config with %v", c)
			}
			return
		}
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
		}
		if !strings.HasPrefix(err.Error(), "config: line ") {
			t.Fatalf("error %q lacks the line prefix", err)
		}
	})
}

// FuzzContextInfoJSON: decoding never panics, and what decodes re-encodes
// to something that decodes to the same value.
func FuzzContextInfoJSON(f *testing.F) {
	for _, c := range testContexts {
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	f.Add([]byte(`{"local_tag":"ffffffffffff","rtt_seconds":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c ContextInfo
		if err := json.Unmarshal(b, &c); err != nil {
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var back ContextInfo
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("decode of re-encoded %s: %v", out, err)
		}
		if back.LocalULID != c.LocalULID || back.PeerTag != c.PeerTag || back.State != c.State ||
			!back.LastFailover.Equal(c.LastFailover) {
			t.Fatalf("round trip changed %+v into %+v", c, back)
		}
	})
}

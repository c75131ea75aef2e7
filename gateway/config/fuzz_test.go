package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseConfig: any text either decodes into a configuration that
// passes validation or fails with *Error values only; never a
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
		c, err := Parse(b, dir, "fuzz.yaml")
		if err == nil {
			if c == nil || len(c.Uplinks) < 2 {
				t.Fatalf("accepted config with %v", c)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v (%T) is not a *Error", err, err)
		}
		if !strings.HasPrefix(err.Error(), "config: line ") {
			t.Fatalf("error %q lacks the line prefix", err)
		}
	})
}

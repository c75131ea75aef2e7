// Package configtest holds a valid configuration file for tests.
package configtest

import (
	"os"
	"path/filepath"
	"testing"
)

// Good is a valid configuration file with two uplinks; tests edit it
// with strings.Replace, so keep its lines where they are.
const Good = `lan:
  interface: lan0
uplinks:
  - name: a
    interface: upA
    prefix: 2001:db8:a::/48
    lan_prefix: 2001:db8:a:1::/64
    gateway: fe80::1
  - name: b
    interface: upB
    prefix: 2001:db8:b::/48
    lan_prefix: 2001:db8:b:1::/64
    gateway: fe80::2
    mtu: 1492
hba:
  secret_file: secret
  hosts: 16
timers:
  i1_timeout: 1s
  send_timeout: 3s
`

// Secret is the HBA site secret Write puts next to the file.
const Secret = "0123456789abcdef0123456789abcdef"

// Write writes text as shim6gw.yaml and Secret as its secret_file
// "secret" to a temporary directory and returns the file's path.
func Write(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "shim6gw.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

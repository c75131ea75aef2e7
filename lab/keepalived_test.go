package lab

import (
	"bytes"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// exampleKeepalived are the parameters deploy/keepalived/keepalived.conf
// is generated from: deploy/examples/site-gateway.yaml's interfaces and
// prefixes, keepalived's default advert interval.
var exampleKeepalived = KeepalivedParams{
	RouterID: "shim6gw-1", Priority: 110, Advert: time.Second, LAN: "lan0",
	LANVIP: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::1/64"), netip.MustParsePrefix("2001:db8:b:1::1/64")},
	Uplinks: []KeepalivedUplink{
		{Name: "a", Interface: "upA", VIP: netip.MustParsePrefix("2001:db8:a:ffff::2/64")},
		{Name: "b", Interface: "upB", VIP: netip.MustParsePrefix("2001:db8:b:ffff::2/64")},
	},
	VRIDBase: 61, Ready: "/usr/local/lib/shim6gw/shim6gw-ready", ReadyInterval: time.Second,
}

var updateKeepalived = flag.Bool("update-keepalived", false, "rewrite deploy/keepalived from the generator")

// TestKeepalivedExampleIsGenerated: the shipped example is exactly what
// the generator the lab runs makes, so the lab tests the example.
// Regenerate with go test ./lab -run TestKeepalivedExampleIsGenerated
// -update-keepalived.
func TestKeepalivedExampleIsGenerated(t *testing.T) {
	for _, f := range []struct {
		path string
		want []byte
		mode os.FileMode
	}{
		{"../deploy/keepalived/keepalived.conf", KeepalivedConfig(exampleKeepalived), 0o644},
		{"../deploy/keepalived/shim6gw-ready", []byte(ReadyScript), 0o755},
	} {
		if *updateKeepalived {
			if err := os.WriteFile(f.path, f.want, f.mode); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.want) {
			t.Errorf("%s differs from the generator; regenerate it with -update-keepalived", f.path)
		}
	}
	if fi, err := os.Stat("../deploy/keepalived/shim6gw-ready"); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("shim6gw-ready is not executable: %v", err)
	}
}

// TestKeepalivedConfig pins what makes the pair safe: VRRPv3, nopreempt
// from BACKUP, one sync group with every instance and the health script,
// adverts on the LAN only, uplink addresses untracked, link-local first.
func TestKeepalivedConfig(t *testing.T) {
	c := string(KeepalivedConfig(exampleKeepalived))
	for _, want := range []string{
		"vrrp_version 3\n",
		"script \"/usr/local/lib/shim6gw/shim6gw-ready\"\n",
		"vrrp_sync_group shim6gw {\n    group {\n        lan\n        uplink_a\n        uplink_b\n    }\n    track_script {\n        shim6gw_ready\n    }\n}\n",
		"vrrp_instance lan {\n    # nopreempt needs BACKUP: a gateway that comes back stays standby.\n    state BACKUP\n    nopreempt\n    interface lan0\n    virtual_router_id 61\n    priority 110\n    advert_int 1\n" +
			"    virtual_ipaddress {\n        fe80::1/64\n        2001:db8:a:1::1/64\n        2001:db8:b:1::1/64\n    }\n}\n",
		"    interface lan0\n    virtual_router_id 62\n",
		"        2001:db8:a:ffff::2/64 dev upA no_track\n",
		"    interface lan0\n    virtual_router_id 63\n",
		"        2001:db8:b:ffff::2/64 dev upB no_track\n",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q", want)
		}
	}
	if strings.Contains(c, "interface upA") || strings.Contains(c, "state MASTER") {
		t.Error("an instance advertises on an uplink or starts as MASTER")
	}
	p := exampleKeepalived
	p.Advert = 100 * time.Millisecond
	if c := string(KeepalivedConfig(p)); !strings.Contains(c, "advert_int 0.1\n") {
		t.Error("a 100 ms advert is not written as 0.1")
	}
}

// TestKeepalivedAcceptsConfigs runs `keepalived --config-test` on the
// example and on the lab's configs.
func TestKeepalivedAcceptsConfigs(t *testing.T) {
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("skipping: keepalived not installed")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "shim6gw-ready")
	if err := os.WriteFile(script, []byte(ReadyScript), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := New(Options{Mode: Daemon, HA: true, StartGateway: ExecGateway(nil, nil, "true")})
	if err != nil {
		t.Fatal(err)
	}
	example := exampleKeepalived
	example.Ready = script
	for name, p := range map[string]KeepalivedParams{"example": example,
		"gw1a": l.KeepalivedParams(GW1A, script), "gw1b": l.KeepalivedParams(GW1B, script)} {
		conf := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(conf, KeepalivedConfig(p), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("keepalived", "--config-test", "--use-file", conf).CombinedOutput()
		// The interfaces live in the gateways' namespaces, not here:
		// that complaint (exit 5) is the only one allowed.
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 5) {
			t.Errorf("%s: keepalived --config-test: %v\n%s", name, err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.Contains(line, "doesn't exist") && !strings.Contains(line, "Non-existent interface") {
				t.Errorf("%s: keepalived --config-test: %s", name, line)
			}
		}
	}
}

// TestReadyScript runs shim6gw-ready against a /readyz that answers 200,
// then 503, then nothing.
func TestReadyScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("skipping: no bash")
	}
	script := filepath.Join(t.TempDir(), "shim6gw-ready")
	if err := os.WriteFile(script, []byte(ReadyScript), 0o755); err != nil {
		t.Fatal(err)
	}
	var status atomic.Int32 // the handler runs on the server's goroutines
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	addr := srv.Listener.Addr().String()
	exit := func() int {
		err := exec.Command(script, addr).Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if got := exit(); got != 0 {
		t.Errorf("ready: exit %d, want 0", got)
	}
	status.Store(http.StatusServiceUnavailable)
	if got := exit(); got != 1 {
		t.Errorf("not ready: exit %d, want 1", got)
	}
	srv.Close()
	// Nothing listens there any more.
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
	}
	if got := exit(); got != 1 {
		t.Errorf("no daemon: exit %d, want 1", got)
	}
}

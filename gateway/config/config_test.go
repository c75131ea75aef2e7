package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shim6gw/shim6gw/gateway/config/configtest"
	"github.com/shim6gw/shim6gw/shim6"
)

// goodConfig is a valid file; bad cases edit it with strings.Replace so the
// line numbers in the expected messages are easy to check by eye.
const goodConfig = configtest.Good

const testSecret = configtest.Secret

var writeConfig = configtest.Write

func TestLoadConfigGood(t *testing.T) {
	p := writeConfig(t, goodConfig)
	c, err := Load(p)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	timers := shim6.DefaultTimers()
	timers.I1Timeout = time.Second
	timers.SendTimeout = 3 * time.Second
	want := &Config{
		LAN: func() LANConfig { l := DefaultLANConfig(); l.Interface = "lan0"; return l }(),
		Uplinks: []UplinkConfig{
			{Name: "a", Interface: "upA", Prefix: netip.MustParsePrefix("2001:db8:a::/48"),
				LANPrefix: netip.MustParsePrefix("2001:db8:a:1::/64"), Gateway: netip.MustParseAddr("fe80::1"), MTU: 1500},
			{Name: "b", Interface: "upB", Prefix: netip.MustParsePrefix("2001:db8:b::/48"),
				LANPrefix: netip.MustParsePrefix("2001:db8:b:1::/64"), Gateway: netip.MustParseAddr("fe80::2"), MTU: 1492},
		},
		HBA:       HBAConfig{SecretFile: "secret", Hosts: 16, Sec: 0, Secret: []byte(testSecret)},
		TUN:       TUNConfig{Name: "shim6gw0", Backend: "offload", Queues: 1, MTU: 1500, TxQueueLen: 1000},
		Admin:     AdminConfig{Listen: "127.0.0.1:9146"},
		Dataplane: DataplaneConfig{Fastpath: FastpathAuto},
		Timers:    timers,
		Policy:    shim6.Policy{InitiateAfterNotices: 1, Window: 30 * time.Second, MaxPending: 65536},
		Limits:    DefaultLimits(),
		Log:       LogConfig{Format: "text", Level: "info"},
		Rules:     RulesConfig{PriorityBase: 15000, TableBase: 15000, Protocol: 154},
		Path:      p,
	}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{}), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	for key, line := range map[string]int{"lan.interface": 2, "uplinks[1].prefix": 11, "timers.send_timeout": 20, "uplinks[1]": 9} {
		if got := c.Line(key); got != line {
			t.Errorf("Line(%q) = %d, want %d", key, got, line)
		}
	}
	if got, want := c.LANPrefixes(), []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64"), netip.MustParsePrefix("2001:db8:b:1::/64")}; !cmp.Equal(got, want, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })) {
		t.Errorf("LANPrefixes = %v, want %v", got, want)
	}
}

// TestDefaultTimersAreRFCValues: a file without a timers section runs
// the RFC timers.
func TestDefaultTimersAreRFCValues(t *testing.T) {
	c, err := Load(writeConfig(t, strings.Replace(goodConfig, "timers:\n  i1_timeout: 1s\n  send_timeout: 3s\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Timers
	// RFC 5533 §14 and RFC 5534 §4.1, §4.3, §7, spelled out once more.
	checks := []struct {
		name      string
		got, want time.Duration
	}{
		{"I1_TIMEOUT", d.I1Timeout, 4 * time.Second},
		{"I2_TIMEOUT", d.I2Timeout, 4 * time.Second},
		{"I2bis_TIMEOUT", d.I2bisTimeout, 4 * time.Second},
		{"VALIDATOR_MIN_LIFETIME", d.ValidatorMinLifetime, 30 * time.Second},
		{"NO_R1_HOLDDOWN_TIME", d.NoR1HolddownTime, time.Minute},
		{"ICMP_HOLDDOWN_TIME", d.ICMPHolddownTime, 10 * time.Minute},
		{"UPDATE_TIMEOUT", d.UpdateTimeout, 4 * time.Second},
		{"MAX_UPDATE_TIMEOUT", d.MaxUpdateTimeout, 120 * time.Second},
		{"Send Timeout", d.SendTimeout, 15 * time.Second},
		{"Initial Probe Timeout", d.InitialProbeTimeout, 500 * time.Millisecond},
		{"Max Probe Timeout", d.MaxProbeTimeout, 60 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if d.I1RetriesMax != 4 || d.I2bisRetriesMax != 2 || d.NumInitialProbes != 4 {
		t.Errorf("retries = %d/%d/%d, want 4/2/4", d.I1RetriesMax, d.I2bisRetriesMax, d.NumInitialProbes)
	}
}

func TestLoadConfigBad(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // replacement in goodConfig ("" old: append new)
		want     string
		kind     error
	}{
		{"unknown top-level key", "hba:\n", "uplinkz: 1\nhba:\n",
			`config: line 15: unknown key "uplinkz"`, ErrUnknownKey},
		{"unknown nested key", "    mtu: 1492\n", "    mtu: 1492\n    nmae: x\n",
			`config: line 15: unknown key "uplinks[1].nmae"`, ErrUnknownKey},
		{"duplicate key", "  hosts: 16\n", "  hosts: 16\n  hosts: 17\n",
			`config: line 18: duplicate key "hba.hosts"`, ErrInvalid},
		{"bad prefix", "2001:db8:a::/48", "2001:db8:a::/129",
			`config: line 6: uplinks[0].prefix: bad prefix "2001:db8:a::/129"`, ErrInvalid},
		{"ipv4 prefix", "2001:db8:a::/48", "192.0.2.0/24",
			`config: line 6: uplinks[0].prefix: 192.0.2.0/24 is not an IPv6 prefix`, ErrInvalid},
		{"host bits", "prefix: 2001:db8:a::/48", "prefix: 2001:db8:a::1/48",
			`config: line 6: uplinks[0].prefix: 2001:db8:a::1/48 has bits set after the prefix length (did you mean 2001:db8:a::/48?)`, ErrInvalid},
		{"lan prefix not /64", "2001:db8:b:1::/64", "2001:db8:b:100::/56",
			`config: line 12: uplinks[1].lan_prefix: 2001:db8:b:100::/56 is not a /64`, ErrInvalid},
		{"lan prefix outside", "lan_prefix: 2001:db8:b:1::/64", "lan_prefix: 2001:db8:c:1::/64",
			`config: line 12: uplinks[1].lan_prefix: 2001:db8:c:1::/64 is not inside uplinks[1].prefix 2001:db8:b::/48`, ErrInvalid},
		{"overlapping prefixes", "prefix: 2001:db8:b::/48", "prefix: 2001:db8::/32",
			`config: line 11: uplinks[1].prefix: 2001:db8::/32 overlaps uplinks[0].prefix 2001:db8:a::/48`, ErrInvalid},
		{"one uplink", "  - name: b\n    interface: upB\n    prefix: 2001:db8:b::/48\n    lan_prefix: 2001:db8:b:1::/64\n    gateway: fe80::2\n    mtu: 1492\n", "",
			`config: line 3: uplinks: need at least 2 uplinks, got 1`, ErrInvalid},
		{"no uplinks key", "uplinks:\n", "uplinkx:\n",
			`config: line 3: unknown key "uplinkx"`, ErrUnknownKey},
		{"missing interface", "    interface: upB\n", "",
			`config: line 9: uplinks[1]: missing key "interface"`, ErrInvalid},
		{"duplicate uplink name", "- name: b", "- name: a",
			`config: line 9: uplinks[1].name: "a" is also the name of uplinks[0]`, ErrInvalid},
		{"uplink is lan", "interface: upA", "interface: lan0",
			`config: line 5: uplinks[0].interface: "lan0" is the LAN interface`, ErrInvalid},
		{"bad gateway", "fe80::2", "ff02::1",
			`config: line 13: uplinks[1].gateway: ff02::1 is not a unicast address`, ErrInvalid},
		{"mtu too small", "mtu: 1492", "mtu: 1000",
			`config: line 14: uplinks[1].mtu: 1000 is not in 1280..65535`, ErrInvalid},
		{"unreadable secret", "secret_file: secret", "secret_file: /nonexistent/s6gw-secret",
			`config: line 16: hba.secret_file: cannot read "/nonexistent/s6gw-secret": no such file or directory`, ErrInvalid},
		{"missing secret", "  secret_file: secret\n", "",
			`config: line 15: hba: missing key "secret_file"`, ErrInvalid},
		{"bad duration", "i1_timeout: 1s", "i1_timeout: 4x",
			`config: line 19: timers.i1_timeout: bad duration "4x" (want e.g. 4s, 500ms, 1m)`, ErrInvalid},
		{"negative timer", "i1_timeout: 1s", "i1_timeout: -1s",
			`config: line 19: timers.i1_timeout: must be positive`, ErrInvalid},
		{"send timeout too long", "send_timeout: 3s", "send_timeout: 20h",
			`config: line 20: timers.send_timeout: 20h0m0s is not in 100ms..65535s`, ErrInvalid},
		{"send timeout too short", "send_timeout: 3s", "send_timeout: 50ms",
			`config: line 20: timers.send_timeout: 50ms is not in 100ms..65535s`, ErrInvalid},
		{"keepalive timeout too short", "send_timeout: 3s", "send_timeout: 3s\n  keepalive_timeout: 99ms",
			`config: line 21: timers.keepalive_timeout: 99ms is shorter than 100ms`, ErrInvalid},
		{"unknown timer", "send_timeout: 3s", "send_timeot: 3s",
			`config: line 20: unknown key "timers.send_timeot"`, ErrUnknownKey},
		{"bad integer", "hosts: 16", "hosts: many",
			`config: line 17: hba.hosts: bad integer "many"`, ErrInvalid},
		{"sec out of range", "hosts: 16", "hosts: 16\n  sec: 3",
			`config: line 18: hba.sec: 3 is not in 0..2`, ErrInvalid},
		{"bad backend", "", "tun:\n  backend: tap\n",
			`config: line 22: tun.backend: unknown backend "tap" (want offload, wireguard or water)`, ErrInvalid},
		{"txqueuelen zero", "", "tun:\n  txqueuelen: 0\n", "config: line 22: tun.txqueuelen: 0 is not in 1..1048576", ErrInvalid},
		{"txqueuelen not a number", "", "tun:\n  txqueuelen: lots\n", `config: line 22: tun.txqueuelen: bad integer "lots"`, ErrInvalid},
		{"queues need water", "", "tun:\n  queues: 4\n",
			`config: line 22: tun.queues: 4 queues need backend water`, ErrInvalid},
		{"long tun name", "", "tun:\n  name: averyveryverylongname\n",
			`config: line 22: tun.name: bad interface name "averyveryverylongname"`, ErrInvalid},
		{"bad listen", "", "admin:\n  listen: localhost\n",
			`config: line 22: admin.listen: bad listen address "localhost" (want host:port)`, ErrInvalid},
		{"zero max contexts", "", "limits:\n  max_contexts: 0\n",
			`config: line 22: limits.max_contexts: must be at least 1`, ErrInvalid},
		{"negative max contexts", "", "limits:\n  max_contexts: -5\n",
			`config: line 22: limits.max_contexts: must be at least 1`, ErrInvalid},
		{"bad max contexts", "", "limits:\n  max_contexts: lots\n",
			`config: line 22: limits.max_contexts: bad integer "lots"`, ErrInvalid},
		{"small peer key limit", "", "limits:\n  max_peer_key_bits: 512\n",
			`config: line 22: limits.max_peer_key_bits: 512 is not in 1024..16384`, ErrInvalid},
		{"zero per-locator quota", "", "limits:\n  max_contexts_per_peer_locator: 0\n",
			`config: line 22: limits.max_contexts_per_peer_locator: must be at least 1`, ErrInvalid},
		{"source budget above site budget", "", "limits:\n  signature_checks_per_second: 5\n  signature_checks_per_source_per_second: 6\n",
			`config: line 23: limits.signature_checks_per_source_per_second: 6 is more than limits.signature_checks_per_second 5`, ErrInvalid},
		{"bad fastpath", "", "dataplane:\n  fastpath: turbo\n",
			`config: line 22: dataplane.fastpath: unknown value "turbo" (want auto, ebpf or off)`, ErrInvalid},
		{"unknown limit", "", "limits:\n  max_context: 5\n",
			`config: line 22: unknown key "limits.max_context"`, ErrUnknownKey},
		{"bad log format", "", "log:\n  format: xml\n",
			`config: line 22: log.format: unknown format "xml" (want text or json)`, ErrInvalid},
		{"priority range", "", "rules:\n  priority_base: 32700\n",
			`config: line 22: rules.priority_base: 32700 is not in 1..32666`, ErrInvalid},
		{"kernel tables", "", "rules:\n  table_base: 250\n",
			`config: line 22: rules.table_base: tables 250..261 include the kernel's 253..255`, ErrInvalid},
		{"scalar expected", "  hosts: 16\n", "  hosts: [1, 2]\n",
			`config: line 17: hba.hosts: expected a single value`, ErrInvalid},
		{"bad boolean", "    mtu: 1492\n", "    mtu: 1492\n    accept_ra: maybe\n",
			`config: line 15: uplinks[1].accept_ra: bad boolean "maybe"`, ErrInvalid},
		{"uplinks not a list", "uplinks:\n", "uplinks: 2\nx:\n",
			"config: line 3: uplinks: expected a list of uplinks\nconfig: line 4: unknown key \"x\"", ErrInvalid},
		{"section not a mapping", "", "tun: offload\n",
			`config: line 21: tun: expected a mapping`, ErrInvalid},
		{"duration as a number", "i1_timeout: 1s", "i1_timeout: 4",
			`config: line 19: timers.i1_timeout: bad duration "4" (want e.g. 4s, 500ms, 1m)`, ErrInvalid},
		{"integer out of range", "hosts: 16", "hosts: 99999999999999999999",
			`config: line 17: hba.hosts: bad integer "99999999999999999999"`, ErrInvalid},
		// Only hba.hosts: the LAN pools are not checked against a book
		// whose size is unknown.
		{"hosts zero", "hosts: 16", "hosts: 0",
			`config: line 17: hba.hosts: 0 is not in 1..65536`, ErrInvalid},
		{"yaml syntax", "lan:\n", "lan: [\n",
			`config: line 2: bad YAML: did not find expected ',' or ']'`, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := goodConfig
			if tt.old == "" {
				text += tt.new
			} else {
				if !strings.Contains(text, tt.old) {
					t.Fatalf("case does not apply: %q not in config", tt.old)
				}
				text = strings.Replace(text, tt.old, tt.new, 1)
			}
			c, err := Load(writeConfig(t, text))
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(%v) = false", tt.kind)
			}
		})
	}
}

func TestLoadConfigJoinsErrorsInLineOrder(t *testing.T) {
	text := strings.Replace(goodConfig, "i1_timeout: 1s", "i1_timeout: 0s", 1)
	text = strings.Replace(text, "interface: lan0", "interfaz: lan0", 1)
	_, err := Load(writeConfig(t, text))
	want := "config: line 2: unknown key \"lan.interfaz\""
	// Decoding stops validation: the second (timer) error is not reported
	// until the file decodes.
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	text = strings.Replace(goodConfig, "i1_timeout: 1s", "i1_timeout: 0s", 1)
	text = strings.Replace(text, "mtu: 1492", "mtu: 10", 1)
	_, err = Load(writeConfig(t, text))
	want = "config: line 14: uplinks[1].mtu: 10 is not in 1280..65535\n" +
		"config: line 19: timers.i1_timeout: must be positive"
	if err == nil || err.Error() != want {
		t.Fatalf("err =\n%v\nwant\n%s", err, want)
	}
}

func TestLoadConfigEmpty(t *testing.T) {
	_, err := Load(writeConfig(t, "\n"))
	if err == nil || err.Error() != "config: line 1: empty configuration" {
		t.Fatalf("err = %v", err)
	}
	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not exist", err)
	}
}

type fakeLinks map[string]bool

func (f fakeLinks) LinkExists(name string) (bool, error) { return f[name], nil }

func TestCheckSystem(t *testing.T) {
	c, err := Load(writeConfig(t, goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSystem(c, fakeLinks{"lan0": true, "upA": true, "upB": true}); err != nil {
		t.Errorf("all present: %v", err)
	}
	err = CheckSystem(c, fakeLinks{"upA": true})
	want := "config: line 2: lan.interface: no interface \"lan0\" on this system"
	if err == nil || err.Error() != want {
		t.Errorf("err =\n%v\nwant\n%s", err, want)
	}
	if !errors.Is(err, ErrSystem) {
		t.Errorf("not ErrSystem: %v", err)
	}
	// A missing uplink is down until it appears: a note, not an error.
	if err := CheckSystem(c, fakeLinks{"lan0": true, "upA": true}); err != nil {
		t.Errorf("uplink missing: %v", err)
	}
	notes := MissingUplinks(c, fakeLinks{"lan0": true, "upA": true})
	if len(notes) != 1 || notes[0] != `line 10: uplinks[1].interface: no interface "upB" yet; uplink b is down until it appears` {
		t.Errorf("notes = %q", notes)
	}
}

func TestPlanReload(t *testing.T) {
	load := func(text string) *Config {
		t.Helper()
		c, err := Load(writeConfig(t, text))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := load(goodConfig)
	tests := []struct {
		name     string
		old, new string
		want     ReloadPlan
		err      string
	}{
		{"nothing", "", "", ReloadPlan{}, ""},
		{"provider prefix", "2001:db8:b::/48", "2001:db8:b::/56", ReloadPlan{PrefixesChanged: true}, ""},
		{"lan prefix", "2001:db8:b::/48\n    lan_prefix: 2001:db8:b:1::/64", "2001:db8:c::/48\n    lan_prefix: 2001:db8:c:1::/64",
			ReloadPlan{}, "config: line 12: uplinks[1].lan_prefix: changed, needs a restart (new HBA address book)"},
		{"policy", "", "policy:\n  initiate_after_notices: 3\n", ReloadPlan{PolicyChanged: true}, ""},
		{"timers", "i1_timeout: 1s", "i1_timeout: 2s", ReloadPlan{TimersChanged: true}, ""},
		{"log", "", "log:\n  level: debug\n", ReloadPlan{LogChanged: true}, ""},
		{"interface", "interface: upB", "interface: upC", ReloadPlan{},
			"config: line 9: uplinks[1]: changed, needs a restart"},
		{"tun", "", "tun:\n  mtu: 1400\n", ReloadPlan{}, "config: line 21: tun: changed, needs a restart"},
		{"limits", "", "limits:\n  max_contexts: 5000\n", ReloadPlan{}, "config: line 21: limits: changed, needs a restart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := goodConfig
			if tt.old == "" {
				text += tt.new
			} else {
				text = strings.Replace(text, tt.old, tt.new, 1)
			}
			got, err := base.PlanReload(load(text))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !errors.Is(err, ErrNeedsRestart) {
					t.Fatalf("err = %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("plan = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestDeployExamples loads every example configuration shipped in
// deploy/examples, with its secret file replaced by a test one.
func TestDeployExamples(t *testing.T) {
	files, err := filepath.Glob("../../deploy/examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d example configs, want at least 2", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			secret := filepath.Join(dir, "secret")
			if err := os.WriteFile(secret, []byte(testSecret), 0o600); err != nil {
				t.Fatal(err)
			}
			// Point secret_file at the test secret, keeping its line.
			lines := strings.Split(string(b), "\n")
			found := false
			for i, l := range lines {
				if k, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == "secret_file" {
					lines[i] = l[:strings.Index(l, "secret_file")] + "secret_file: " + secret
					found = true
				}
			}
			if !found {
				t.Fatal("example has no hba.secret_file")
			}
			c, err := Parse([]byte(strings.Join(lines, "\n")), dir, f)
			if err != nil {
				t.Fatalf("example does not load:\n%v", err)
			}
			if len(c.Uplinks) < 2 {
				t.Errorf("%d uplinks", len(c.Uplinks))
			}
		})
	}
}

// limits.max_contexts reaches the engine configuration; the default is
// the engine's own.
func TestLimitsConfigToEngine(t *testing.T) {
	c, err := Load(writeConfig(t, goodConfig+"limits:\n  max_contexts: 5000\n  max_contexts_per_peer_locator: 7\n"+
		"  max_contexts_per_peer_prefix: 70\n  max_peer_key_bits: 2048\n  signature_checks_per_second: 50\n"+
		"  signature_checks_per_source_per_second: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	var ec shim6.EngineConfig
	c.Limits.Apply(&ec)
	if ec.MaxContexts != 5000 || ec.MaxContextsPerPeerLocator != 7 || ec.MaxContextsPerPeerPrefix != 70 || ec.MaxPeerKeyBits != 2048 ||
		ec.MaxSignatureChecksPerSecond != 50 || ec.MaxSignatureChecksPerSourcePerSecond != 5 {
		t.Errorf("EngineConfig limits = %+v", ec)
	}
	if got := c.Line("limits.max_contexts"); got != 22 {
		t.Errorf("Line = %d, want 22", got)
	}
}

func TestEngineUplinks(t *testing.T) {
	c, err := Load(writeConfig(t, goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := []shim6.Uplink{{Name: "a", Prefix: netip.MustParsePrefix("2001:db8:a::/48")}, {Name: "b", Prefix: netip.MustParsePrefix("2001:db8:b::/48")}}
	if diff := cmp.Diff(want, c.EngineUplinks(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("uplinks (-want +got):\n%s", diff)
	}
}

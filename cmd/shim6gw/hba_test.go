package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/hba"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const (
	pA = "2001:db8:a:1::/64"
	pB = "2001:db8:b:1::/64"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestHBABadInput(t *testing.T) {
	secret := writeFile(t, "0123456789abcdef0123456789abcdef\n")
	empty := writeFile(t, "\n")
	short := writeFile(t, "0123456789abcde\n")
	missing := filepath.Join(t.TempDir(), "nope")
	ok := []string{"--prefix", pA, "--prefix", pB, "--secret-file", secret}
	with := func(extra ...string) []string { return append(append([]string{"hba"}, ok...), extra...) }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not a /64", []string{"hba", "--prefix", pA, "--prefix", "2001:db8:b::/48", "--secret-file", secret},
			"shim6gw: hba: prefix 2001:db8:b::/48 is not a /64"},
		{"host bits", []string{"hba", "--prefix", pA, "--prefix", "2001:db8:b:1::1/64", "--secret-file", secret},
			"shim6gw: hba: prefix 2001:db8:b:1::1/64 has bits set after the first 64"},
		{"ipv4", []string{"hba", "--prefix", pA, "--prefix", "192.0.2.0/24", "--secret-file", secret},
			"shim6gw: hba: prefix 192.0.2.0/24 is not IPv6"},
		{"duplicate", []string{"hba", "--prefix", pA, "--prefix", pA, "--secret-file", secret},
			"shim6gw: hba: duplicate prefix 2001:db8:a:1::/64"},
		{"one prefix", []string{"hba", "--prefix", pA, "--secret-file", secret},
			"shim6gw: hba: need at least 2 prefixes, got 1"},
		{"no prefix", []string{"hba", "--secret-file", secret},
			"shim6gw: hba: need at least 2 prefixes, got 0"},
		{"unparsable prefix", []string{"hba", "--prefix", "nonsense"},
			`shim6gw: hba: invalid value "nonsense" for flag -prefix: not a prefix`},
		{"no secret file flag", []string{"hba", "--prefix", pA, "--prefix", pB},
			"shim6gw: hba: --secret-file is required"},
		{"missing secret file", []string{"hba", "--prefix", pA, "--prefix", pB, "--secret-file", missing},
			`shim6gw: hba: cannot read secret file "` + missing + `": no such file or directory`},
		{"secret is a directory", []string{"hba", "--prefix", pA, "--prefix", pB, "--secret-file", filepath.Dir(missing)},
			`shim6gw: hba: cannot read secret file "` + filepath.Dir(missing) + `": is a directory`},
		{"empty secret file", []string{"hba", "--prefix", pA, "--prefix", pB, "--secret-file", empty},
			`shim6gw: hba: secret file "` + empty + `" is empty`},
		{"short secret file", []string{"hba", "--prefix", pA, "--prefix", pB, "--secret-file", short},
			`shim6gw: hba: secret file "` + short + `" holds 15 bytes, need at least 16`},
		{"count 0", with("--count", "0"), "shim6gw: hba: host count 0 is not in 1..1048576"},
		{"count negative", with("--count", "-1"), "shim6gw: hba: host count -1 is not in 1..1048576"},
		{"count not a number", with("--count", "many"), `shim6gw: hba: invalid value "many" for flag -count: parse error`},
		{"unknown flag", with("--bogus"), "shim6gw: hba: flag provided but not defined: -bogus"},
		{"bad format", with("--format", "xml"), `shim6gw: hba: --format must be text or json, got "xml"`},
		{"sec 3", with("--sec", "3"), "shim6gw: hba: unsupported sec: sec 3, generation supports 0..2"},
		{"sec 9", with("--sec", "9"), "shim6gw: hba: --sec 9 is not in 0..7"},
		{"positional", with("extra"), `shim6gw: hba: unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, status := runCmd(t, tc.args...)
			if status != 2 || errs != tc.want+"\n" || out != "" {
				t.Fatalf("status %d, stdout %q, stderr %q; want 2, \"\", %q", status, out, errs, tc.want+"\n")
			}
		})
	}
}

// verifyPlan re-verifies every address of a JSON plan from its pds alone.
func verifyPlan(t *testing.T, out string, wantPrefixes []string, count int, sec uint8) {
	t.Helper()
	var plan []hbaPlanEntry
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan) != count {
		t.Fatalf("%d entries, want %d", len(plan), count)
	}
	seen := map[string]bool{}
	for i, e := range plan {
		if e.Index != i || e.Sec != sec || len(e.Modifier) != 32 || e.CollisionCount > 2 || e.ULID != e.Addresses[0] {
			t.Fatalf("entry %d: %+v", i, e)
		}
		if diff := cmp.Diff(wantPrefixes, e.Prefixes); diff != "" {
			t.Fatalf("prefixes (-want +got):\n%s", diff)
		}
		pds, err := hex.DecodeString(e.PDS)
		if err != nil {
			t.Fatal(err)
		}
		p, err := hba.ParsePDS(pds)
		if err != nil {
			t.Fatal(err)
		}
		if m := p.Modifier(); hex.EncodeToString(m[:]) != e.Modifier || p.CollisionCount() != e.CollisionCount {
			t.Fatalf("entry %d: PDS fields disagree with modifier/collision_count", i)
		}
		if err := hba.VerifyCGA(netip.MustParseAddr(e.ULID), pds); err != nil {
			t.Errorf("entry %d: ULID does not verify as a CGA with its PDS: %v", i, err)
		}
		if len(e.Addresses) != len(wantPrefixes) {
			t.Fatalf("entry %d: %d addresses", i, len(e.Addresses))
		}
		for j, s := range e.Addresses {
			a := netip.MustParseAddr(s)
			if !netip.MustParsePrefix(wantPrefixes[j]).Contains(a) || a.As16()[8]>>5 != sec {
				t.Errorf("entry %d address %d %s outside %s or wrong sec", i, j, a, wantPrefixes[j])
			}
			if err := hba.VerifyHBA(a, pds); err != nil {
				t.Errorf("entry %d: VerifyHBA(%s): %v", i, a, err)
			}
			if seen[s] {
				t.Errorf("duplicate address %s", s)
			}
			seen[s] = true
		}
	}
}

func TestHBAJSON(t *testing.T) {
	prefixes := []string{pA, pB, "2001:db8:c:1::/64"}
	secret := writeFile(t, "0123456789abcdef0123456789abcdef\n")
	args := []string{"hba", "--prefix", pA, "--prefix", pB, "--prefix", prefixes[2],
		"--secret-file", secret, "--count", "40", "--format", "json"}
	out, errs, status := runCmd(t, args...)
	if status != 0 || errs != "" {
		t.Fatalf("status %d stderr %q", status, errs)
	}
	verifyPlan(t, out, prefixes, 40, 0)
	again, _, _ := runCmd(t, args...)
	if again != out {
		t.Fatal("second run printed a different plan")
	}
	// The same secret without its trailing newline is the same secret.
	args[8] = writeFile(t, "0123456789abcdef0123456789abcdef")
	if same, _, _ := runCmd(t, args...); same != out {
		t.Fatal("trailing newline changed the plan")
	}
	args[8] = writeFile(t, "0123456789abcdef0123456789abcdef\r\n")
	if same, _, _ := runCmd(t, args...); same != out {
		t.Fatal("trailing CRLF changed the plan")
	}
	args[8] = writeFile(t, "0123456789abcdef0123456789abcdef\n\n")
	if other, _, _ := runCmd(t, args...); other == out {
		t.Fatal("only one trailing newline may be trimmed")
	}
	// Sec 1: fewer hosts, each costs about 2^16 hashes.
	args[8] = secret
	out1, errs, status := runCmd(t, append(args[:len(args)-4], "--count", "3", "--format", "json", "--sec", "1")...)
	if status != 0 || errs != "" {
		t.Fatalf("sec 1: status %d stderr %q", status, errs)
	}
	verifyPlan(t, out1, prefixes, 3, 1)
}

func TestHBATextGolden(t *testing.T) {
	secret := writeFile(t, "shim6gw golden secret\n")
	out, errs, status := runCmd(t, "hba", "--prefix", pA, "--prefix", pB, "--secret-file", secret, "--count", "5")
	if status != 0 || errs != "" {
		t.Fatalf("status %d stderr %q", status, errs)
	}
	golden := filepath.Join("testdata", "hba_text.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), out); diff != "" {
		t.Fatalf("text plan (-want +got):\n%s", diff)
	}
	// The golden file's addresses are the book's.
	b, err := hba.NewBook([]byte("shim6gw golden secret"), []netip.Prefix{netip.MustParsePrefix(pA), netip.MustParsePrefix(pB)}, 5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		for j := range 2 {
			if !containsWord(out, b.Locator(i, j).String()) {
				t.Errorf("plan lacks %s", b.Locator(i, j))
			}
		}
	}
}

func containsWord(s, w string) bool {
	return slices.Contains(strings.Fields(s), w)
}

package statefile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemporary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shim6gw") // created by Write
	p := filepath.Join(dir, "leases.json")
	if b, err := Read(p); err != nil || b != nil {
		t.Fatalf("missing file: %q, %v; want nil, nil", b, err)
	}
	for _, s := range []string{"first", "second, longer"} {
		if err := Write(p, []byte(s)); err != nil {
			t.Fatal(err)
		}
		b, err := Read(p)
		if err != nil || string(b) != s {
			t.Fatalf("read %q, %v; want %q", b, err, s)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d files, want only the state file", len(ents))
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestWriteFailureKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "leases.json")
	if err := Write(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	// A directory in the way makes the rename fail.
	if err := Write(filepath.Join(p, "x"), []byte("new")); err == nil {
		t.Fatal("write under a file succeeded")
	}
	if b, _ := Read(p); string(b) != "old" {
		t.Errorf("content %q after a failed write, want old", b)
	}
}

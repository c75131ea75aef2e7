package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestLoadConfigMissingFileIsConfigError: a missing file exits 2 like every
// other configuration error, and still says why.
func TestLoadConfigMissingFileIsConfigError(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrNotExist and ErrInvalid", err)
	}
	if code := ExitCode(err); code != 2 {
		t.Errorf("ExitCode = %d, want 2", code)
	}
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestLoadConfigMissingFileIsConfigError: a missing file is ErrInvalid
// (exit 2) like every other configuration error, and still says why.
func TestLoadConfigMissingFileIsConfigError(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrNotExist and ErrInvalid", err)
	}
}

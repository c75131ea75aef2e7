// Package statefile writes small state files (DHCPv6 bindings, SLAAC
// translation mappings) so that a crash at any instant, kill -9 or power
// loss included, leaves either the old or the new content on disk, never a
// mix: the bytes go to a temporary file in the same directory, which is
// fsynced, renamed over the target, and the directory is fsynced so that
// the rename itself is durable (rename(2) is atomic within a file system).
package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// MaxSize bounds what Read accepts, so that a corrupted or hostile file
// cannot make the gateway allocate without bound at start.
const MaxSize = 64 << 20

// Write replaces path with data atomically and durably, creating its
// directory (mode 0700) if needed. The file gets mode 0600 (it names the
// site's hosts).
func Write(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("statefile: syncing %s: %w", dir, err)
	}
	return nil
}

// Read returns the content of path, or nil and no error when it does not
// exist yet (first start).
func Read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("statefile: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("statefile: %w", err)
	}
	if st.Size() > MaxSize {
		return nil, fmt.Errorf("statefile: %s: %d bytes, more than %d", path, st.Size(), MaxSize)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("statefile: %w", err)
	}
	return b, nil
}

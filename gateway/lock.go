package gateway

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLocked: another gateway holds the lock of the same TUN name in the
// same network namespace.
var ErrLocked = errors.New("gateway: another instance is running")

// netnsID names the network namespace of the calling thread ("4026531840"),
// or "" when /proc does not tell.
func netnsID() string {
	id, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		return ""
	}
	return strings.Trim(strings.TrimPrefix(id, "net:"), "[]") // "net:[4026531840]"
}

// instanceName is <tun>-<netns id>: what one gateway owns (a TUN name is
// unique per namespace, and rules, routes and sysctls are per namespace).
func instanceName(tun string) string {
	if id := netnsID(); id != "" {
		return tun + "-" + id
	}
	return tun
}

// LockPath is the lock file of the gateway whose TUN is named tun, in the
// current network namespace, kept in dir (the state file's directory).
func LockPath(dir, tun string) string {
	return filepath.Join(dir, instanceName(tun)+".lock")
}

// Lock is the exclusive lock of one running gateway: a flock(2) on a file
// that holds the owner's pid. The kernel drops it when the process dies,
// so a crash never leaves a stale lock.
type Lock struct {
	f *os.File
}

// AcquireLock takes the lock at path without waiting. If another process
// holds it, the error wraps ErrLocked and names that process's pid. The
// file is never removed: removing it would let a third process lock a new
// file while the second still holds the old one.
func AcquireLock(path string) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("gateway: lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("gateway: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s) with this TUN in this network namespace; lock %s", ErrLocked, lockOwner(path), path)
		}
		return nil, fmt.Errorf("gateway: lock %s: %w", path, err)
	}
	pid := strconv.Itoa(os.Getpid()) + "\n"
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(pid), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gateway: lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// lockOwner describes the holder of the lock from the pid it wrote.
func lockOwner(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "pid unknown"
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "pid unknown" // the holder has not written it yet
	}
	return "pid " + strconv.Itoa(pid)
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

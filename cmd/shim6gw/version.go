package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=..."; when
// it is not, the module version from the build information is used.
var version = "dev"

// buildInfo is what `shim6gw version`, the start-up log line and
// shim6gw_build_info report.
type buildInfo struct {
	Version  string // release version, or "dev"
	Revision string // VCS revision ("" when unknown), "+dirty" if modified
}

// readBuildInfo combines the -X version with debug.ReadBuildInfo.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if b.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && b.Revision != "" {
		b.Revision += "+dirty"
	}
	return b
}

// String is the one-line form: "shim6gw v1.2.3 go1.26 linux/amd64 (rev abc)".
func (b buildInfo) String() string {
	s := fmt.Sprintf("shim6gw %s %s %s/%s", b.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if b.Revision != "" {
		s += " (revision " + b.Revision + ")"
	}
	return s
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		return failf(stderr, exitUsage, "version: unexpected argument %q", args[0])
	}
	fmt.Fprintln(stdout, readBuildInfo())
	return exitOK
}

package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/shim6gw/shim6gw/gateway"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
)

const checkUsage = `usage: shim6gw check [-c FILE]

Check a configuration without changing anything: decode and validate the
file (every problem names its key and line), then check that the
LAN interface exists. Exit status 0 means run would accept it, 2 that it
would not. An uplink interface that does not exist yet is a note, not an
error: run starts with that uplink down and brings it up when it appears.

flags:
`

// runCheck implements "shim6gw check".
func runCheck(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("check", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	cfgPath := configFlag(fset)
	if code, done := parseFlags(fset, args, checkUsage, stdout, stderr); done {
		return code
	}
	cfg, code, err := loadConfig(*cfgPath)
	if err != nil {
		return failf(stderr, code, "check: %s", oneLine(err))
	}
	notes, err := plumbing.Check(cfg)
	if err != nil {
		return failf(stderr, gateway.ExitCode(err), "check: %s", oneLine(err))
	}
	for _, n := range notes {
		fmt.Fprintf(stdout, "%s: note: %s\n", *cfgPath, n)
	}
	fmt.Fprintf(stdout, "%s: ok (%d uplinks, %d hosts, tun %s)\n", *cfgPath, len(cfg.Uplinks), cfg.HBA.Hosts, cfg.TUN.Name)
	return exitOK
}

package main

import (
	"errors"
	"flag"
	"io/fs"
	"os"

	"github.com/shim6gw/shim6gw/gateway"
	"github.com/shim6gw/shim6gw/gateway/config"
)

// defaultConfigPath is where run, check and status look for the
// configuration when -c is not given.
const defaultConfigPath = "/etc/shim6gw/shim6gw.yaml"

// configFlag adds -c and --config (one value) to fset.
func configFlag(fset *flag.FlagSet) *string {
	p := new(string)
	fset.StringVar(p, "config", defaultConfigPath, "configuration file (YAML)")
	fset.StringVar(p, "c", defaultConfigPath, "shorthand for --config")
	return p
}

// errNoDefaultConfig: no -c and nothing at the default path.
var errNoDefaultConfig = errors.New("no configuration file " + defaultConfigPath + " (give one with -c FILE)")

// loadConfig loads path; a missing file at the default path is a usage
// error (status 2), any other problem is reported as config.Load does.
func loadConfig(path string) (*config.Config, int, error) {
	if path == defaultConfigPath {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, exitUsage, errNoDefaultConfig
		}
	}
	c, err := config.Load(path)
	if err != nil {
		return nil, gateway.ExitCode(err), err
	}
	return c, exitOK, nil
}

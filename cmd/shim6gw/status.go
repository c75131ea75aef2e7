package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
)

const statusUsage = `usage: shim6gw status [--admin ADDR] [--timeout D]

Print the Shim6 contexts of a running gateway, read from its admin
listener's /debug/contexts: ULID pair, state, current locator pair,
context tags, path RTT and last failover.

flags:
`

// runStatus implements "shim6gw status".
func runStatus(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("status", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	admin := fset.String("admin", config.DefaultAdminListen, "admin listener, host:port or http URL")
	timeout := fset.Duration("timeout", 5*time.Second, "give up after this long")
	if code, done := parseFlags(fset, args, statusUsage, stdout, stderr); done {
		return code
	}
	base := strings.TrimSuffix(*admin, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cs, err := metrics.FetchContexts(ctx, &http.Client{Timeout: *timeout}, base)
	if err != nil {
		return failf(stderr, exitFail, "status: %v", err)
	}
	if err := metrics.RenderStatus(stdout, cs); err != nil {
		return failf(stderr, exitFail, "status: %v", err)
	}
	return exitOK
}

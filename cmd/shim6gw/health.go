package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
)

const healthUsage = `usage: shim6gw health [--config FILE | --admin ADDR] [--timeout D]

Ask a running gateway whether it is ready (GET /readyz on its admin
listener: TUN up, an uplink usable, plumbing intact). Exit status 0 means
ready, 1 not ready or not answering within the timeout. The admin address
is admin.listen of the configuration, or --admin (default 127.0.0.1:9146);
a wildcard listen address is asked on loopback. For container health
checks (the image has no HTTP client).

flags:
`

// maxHealthTimeout bounds --timeout: a health check that hangs longer is
// worse than one that fails.
const maxHealthTimeout = time.Minute

// runHealth implements "shim6gw health".
func runHealth(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("health", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	cfgPath := fset.String("config", "", "configuration file: ask the admin.listen address it names")
	admin := fset.String("admin", "", "admin listener, host:port or http URL (default "+config.DefaultAdminListen+")")
	timeout := fset.Duration("timeout", 3*time.Second, "give up after this long (at most 1m)")
	if code, done := parseFlags(fset, args, healthUsage, stdout, stderr); done {
		return code
	}
	switch {
	case *timeout <= 0 || *timeout > maxHealthTimeout:
		return failf(stderr, exitUsage, "health: --timeout %v is not in (0, %v]", *timeout, maxHealthTimeout)
	case *cfgPath != "" && *admin != "":
		return failf(stderr, exitUsage, "health: --config and --admin exclude each other")
	}
	addr := *admin
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			// Docker reserves exit status 2 of a health check: unhealthy.
			return failf(stderr, exitFail, "health: %s", oneLine(err))
		}
		addr = cfg.Admin.Listen
	}
	if addr == "" {
		addr = config.DefaultAdminListen
	}
	url := healthURL(addr)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return failf(stderr, exitFail, "health: %v", err)
	}
	resp, err := (&http.Client{Timeout: *timeout}).Do(req)
	if err != nil {
		return failf(stderr, exitFail, "health: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return failf(stderr, exitFail, "health: %s: %s: %s", url, resp.Status, strings.ReplaceAll(strings.TrimSpace(string(body)), "\n", "; "))
	}
	fmt.Fprint(stdout, string(body))
	return exitOK
}

// healthURL turns an admin address into its /readyz URL; a listener on
// every address (":9146", "[::]:9146") is asked on loopback.
func healthURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimSuffix(addr, "/") + "/readyz"
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		if ip, perr := netip.ParseAddr(host); host == "" || perr == nil && ip.IsUnspecified() {
			if perr == nil && ip.Is6() {
				host = "::1"
			} else {
				host = "127.0.0.1"
			}
		}
		addr = net.JoinHostPort(host, port)
	}
	return "http://" + addr + "/readyz"
}

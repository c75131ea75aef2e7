package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/shim6gw/shim6gw/gateway"
	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/lan/dhcp6"
	"github.com/shim6gw/shim6gw/lan/slaac"
)

const statusUsage = `usage: shim6gw status [-c FILE | --admin ADDR] [--json] [--timeout D]

Print the state of a running gateway, read from its admin listener:
readiness and its checks, the uplinks (up or why down), and the Shim6
contexts (ULID pair, state, current locator pair, context tags, path RTT
and last failover). The listener is --admin, else admin.listen of the
configuration (-c, default /etc/shim6gw/shim6gw.yaml), else 127.0.0.1:9146.
--json prints one JSON object with ready, checks, uplinks and contexts.

flags:
`

// statusJSON is the --json output.
type statusJSON struct {
	*metrics.StatusResponse
	Contexts []metrics.ContextInfo `json:"contexts"`
	// LAN holds the DHCPv6 leases and SLAAC mappings (empty lists when
	// the gateway runs no LAN service).
	LAN gateway.LANDebug `json:"lan"`
}

// runStatus implements "shim6gw status".
func runStatus(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("status", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	admin := fset.String("admin", "", "admin listener, host:port or http URL (default: admin.listen of the configuration)")
	cfgPath := configFlag(fset)
	asJSON := fset.Bool("json", false, "print JSON")
	timeout := fset.Duration("timeout", 5*time.Second, "give up after this long")
	if code, done := parseFlags(fset, args, statusUsage, stdout, stderr); done {
		return code
	}
	base := *admin
	if base == "" {
		base = config.DefaultAdminListen
		if _, err := os.Stat(*cfgPath); err == nil || *cfgPath != defaultConfigPath {
			l, err := config.AdminListen(*cfgPath)
			if err != nil {
				return failf(stderr, exitUsage, "status: %s", oneLine(err))
			}
			base = l
		}
	}
	base = strings.TrimSuffix(base, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	client := &http.Client{Timeout: *timeout}
	st, err := metrics.FetchStatus(ctx, client, base)
	if err != nil {
		return failf(stderr, exitFail, "status: %v", err)
	}
	cs, err := metrics.FetchContexts(ctx, client, base)
	if err != nil {
		return failf(stderr, exitFail, "status: %v", err)
	}
	lan, err := gateway.FetchLANDebug(ctx, client, base)
	if err != nil {
		return failf(stderr, exitFail, "status: %v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if st == nil {
			st = &metrics.StatusResponse{}
		}
		if cs == nil {
			cs = []metrics.ContextInfo{}
		}
		if lan.DHCPv6 == nil {
			lan.DHCPv6 = []dhcp6.Lease{}
		}
		if lan.SLAAC == nil {
			lan.SLAAC = []slaac.Mapping{}
		}
		if err := enc.Encode(statusJSON{st, cs, lan}); err != nil {
			return failf(stderr, exitFail, "status: %v", err)
		}
		return exitOK
	}
	if st != nil {
		if err := metrics.RenderHealth(stdout, st); err != nil {
			return failf(stderr, exitFail, "status: %v", err)
		}
	}
	if err := metrics.RenderStatus(stdout, cs); err != nil {
		return failf(stderr, exitFail, "status: %v", err)
	}
	if err := gateway.RenderLANStatus(stdout, lan); err != nil {
		return failf(stderr, exitFail, "status: %v", err)
	}
	return exitOK
}

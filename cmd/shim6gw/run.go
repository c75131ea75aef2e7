package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/shim6gw/shim6gw/gateway"
	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
	"github.com/shim6gw/shim6gw/internal/pcap"
	"github.com/shim6gw/shim6gw/tunnel"
)

const runUsage = `usage: shim6gw run [-c FILE] [--state-file PATH] [--capture FILE] [--log-format json|text]

Run the gateway: open the TUN device, install the policy routing, start
the uplink monitor, the admin listener and the Shim6 control loop, and
serve until SIGINT or SIGTERM, which remove everything the gateway added.
SIGHUP reloads the configuration. Exit status 2 means the configuration
(or the system it names) was rejected and nothing was changed.

The state file remembers the sysctls the gateway changed, so that a start
after a crash restores them. Its default is derived from the TUN name and
the network namespace (/run/shim6gw/<tun>-<netns id>.sysctl.json), so two
gateways on one machine never share it.

flags:
`

// runRun implements "shim6gw run".
func runRun(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("run", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	cfgPath := configFlag(fset)
	capture := fset.String("capture", "", "write every Shim6 control message sent or received to this pcap file")
	logFormat := fset.String("log-format", "", "log format, text or json (default: log.format of the configuration)")
	stateFile := fset.String("state-file", "", "sysctl state file (default /run/shim6gw/<tun>-<netns id>.sysctl.json)")
	if code, done := parseFlags(fset, args, runUsage, stdout, stderr); done {
		return code
	}
	format := *logFormat
	// fatal reports the error that ends the run: one JSON log line with
	// --log-format json (or log.format json), else the usual stderr line.
	fatal := func(code int, err error) int {
		if format != "json" {
			return failf(stderr, code, "run: %s", oneLine(err))
		}
		slog.New(slog.NewJSONHandler(stderr, nil)).Error("shim6gw: run: fatal", "err", oneLine(err), "exit_status", code)
		return code
	}
	cfg, code, err := loadConfig(*cfgPath)
	if err != nil {
		return fatal(code, err)
	}
	if format == "" {
		format = cfg.Log.Format
	}
	log, level, err := gateway.NewLogger(stderr, format, cfg.Log.Level)
	if err != nil {
		format = "text"
		return fatal(exitUsage, err)
	}
	var capt *pcap.Capture
	if *capture != "" {
		if capt, err = pcap.OpenCapture(*capture); err != nil {
			return fatal(exitFail, err)
		}
		defer capt.Close()
	}
	ops, err := plumbing.NewNetlinkOps(nil)
	if err != nil {
		return fatal(exitFail, err)
	}
	defer ops.Close()
	icmpSrc := globalAddr(cfg.LAN.Interface)
	if !icmpSrc.IsValid() {
		log.Warn("no global ipv6 address on the lan interface: packet too big messages disabled", "interface", cfg.LAN.Interface)
	}
	bi := readBuildInfo()
	ctrl := gateway.NewController(gateway.ControllerOptions{Capture: capt, ICMPSource: icmpSrc})
	err = gateway.RunDaemon(context.Background(), gateway.DaemonOptions{
		ConfigPath: *cfgPath, Config: cfg, Ops: ops, Version: bi.Version, Revision: bi.Revision, StateFile: *stateFile,
		Log: log, LogLevel: level, Hooks: ctrl.Hooks(openTUN),
	})
	if cerr := capt.Err(); cerr != nil {
		log.Warn("capture stopped", "err", cerr)
	}
	if err != nil {
		return fatal(gateway.ExitCode(err), err)
	}
	return exitOK
}

// openTUN opens the TUN device with the configured backend: offload (the
// default: GSO/GRO offloads, vectored I/O), wireguard (wireguard-go's tun,
// offloads, one queue) or water (plain, one Device per queue).
func openTUN(c config.TUNConfig) ([]tunnel.Device, error) {
	switch c.Backend {
	case "water":
		ws, err := tunnel.OpenWater(c.Name, c.Queues > 1, max(c.Queues, 1))
		if err != nil {
			return nil, err
		}
		devs := make([]tunnel.Device, len(ws))
		for i, w := range ws {
			devs[i] = w
		}
		return devs, nil
	case "wireguard":
		w, err := tunnel.OpenWireGuard(c.Name, c.MTU)
		if err != nil {
			return nil, err
		}
		return []tunnel.Device{w}, nil
	case "offload", "":
		o, err := tunnel.OpenOffload(c.Name, c.MTU)
		if err != nil {
			return nil, err
		}
		return []tunnel.Device{o}, nil
	}
	return nil, fmt.Errorf("unknown tun backend %q", c.Backend)
}

// globalAddr returns a global unicast IPv6 address of the interface, the
// source of the gateway's ICMPv6 Packet Too Big messages to LAN hosts;
// invalid if it has none.
func globalAddr(ifname string) netip.Addr {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			if ip := p.Addr(); ip.Is6() && !ip.Is4In6() && ip.IsGlobalUnicast() {
				return ip
			}
		}
	}
	return netip.Addr{}
}

// parseFlags parses args, printing usage and flags for -h. done reports
// that the command should return code now.
func parseFlags(fset *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (code int, done bool) {
	err := fset.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		fset.SetOutput(stdout)
		fset.PrintDefaults()
		return exitOK, true
	case err != nil:
		return failf(stderr, exitUsage, "%s: %v", fset.Name(), err), true
	case fset.NArg() > 0:
		return failf(stderr, exitUsage, "%s: unexpected argument %q", fset.Name(), fset.Arg(0)), true
	}
	return 0, false
}

// oneLine joins the lines of a (possibly joined) error, so that a command
// reports it on the one stderr line main.go promises.
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

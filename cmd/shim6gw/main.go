// Command shim6gw is the shim6 gateway. Each subcommand lives in its own
// file and registers in the commands table below.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed
	exitUsage = 2 // bad command line or input; nothing was done
)

// command is one subcommand. run gets the arguments after the subcommand
// name and returns the exit status; it reports errors itself, as exactly
// one line on stderr prefixed "shim6gw: ".
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands lists the subcommands in the order help shows them.
var commands = []command{
	{"run", "run the gateway (TUN, policy routing, Shim6 control loop, admin listener)", runRun},
	{"check", "check a configuration file and the interfaces it names", runCheck},
	{"status", "print the Shim6 contexts of a running gateway", runStatus},
	{"health", "exit 0 if a running gateway is ready (/readyz), 1 if not (container health checks)", runHealth},
	{"hba", "print the site's HBA address plan (ULID and locators per host)", runHBA},
	{"lab", "build the two-site namespace lab, fail a provider and report (needs root)", runLab},
	{"version", "print the version and VCS revision", runVersion},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches args[0] to its subcommand and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "shim6gw: missing command (run 'shim6gw help')")
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	case "--version", "-version":
		return runVersion(args[1:], stdout, stderr)
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "shim6gw: unknown command %q (run 'shim6gw help')\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: shim6gw <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'shim6gw <command> -h' for a command's flags.")
}

// failf prints the one error line of a command and returns status.
func failf(stderr io.Writer, status int, format string, args ...any) int {
	fmt.Fprintf(stderr, "shim6gw: "+format+"\n", args...)
	return status
}

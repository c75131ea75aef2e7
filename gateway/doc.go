// Package gateway is the shim6gw daemon: RunDaemon checks the system,
// installs the plumbing (package plumbing), opens the TUN, starts the
// uplink monitor, the admin server (package metrics) and the control
// loop, and serves signals; SIGHUP reloads the configuration (package
// config).
//
// Controller (control.go, control_loop.go) is the control loop: it owns
// the protocol engine (package shim6) on one goroutine and feeds it the
// diverted control messages, the data plane's notices, uplink events and
// reloads. Dataplane (dataplane.go) is the tunnel pipelines' per-packet
// Processor over rewrite. Both serve /metrics and /debug/contexts from
// published snapshots.
package gateway

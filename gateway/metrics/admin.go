package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/plumbing"
)

// ReadyCheck is one named readiness condition; nil error means it passes.
type ReadyCheck struct {
	Name  string
	Check func() error
}

// AdminOptions configures the admin HTTP server.
type AdminOptions struct {
	Listen   string // host:port (default config.DefaultAdminListen)
	Metrics  *Metrics
	Contexts ContextLister
	Uplinks  UplinkStateSource
	// TUNUp reports whether the TUN device is up (nil: never).
	TUNUp func() bool
	// Ready are the extra /readyz conditions, e.g. "plumbing" (netlink
	// configuration applied) and "locators" (a usable locator pair).
	Ready []ReadyCheck
	// Handlers are further GET routes by path (e.g. /debug/leases).
	Handlers map[string]http.Handler
	Log      *slog.Logger
}

// Admin serves /metrics, /healthz, /readyz and /debug/contexts.
type Admin struct {
	opts AdminOptions
	mux  *http.ServeMux
}

// NewAdmin returns the admin server; Serve starts it.
func NewAdmin(opts AdminOptions) *Admin {
	if opts.Listen == "" {
		opts.Listen = config.DefaultAdminListen
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.Log = opts.Log.With("component", "admin")
	a := &Admin{opts: opts, mux: http.NewServeMux()}
	if opts.Metrics != nil {
		a.mux.Handle("GET /metrics", opts.Metrics.Handler())
	}
	a.mux.HandleFunc("GET /healthz", a.healthz)
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.HandleFunc("GET /debug/contexts", a.contexts)
	a.mux.HandleFunc("GET /debug/status", a.status)
	for path, h := range opts.Handlers {
		a.mux.Handle("GET "+path, h)
	}
	return a
}

// Handler returns the admin routes (for tests and embedding).
func (a *Admin) Handler() http.Handler { return a.mux }

// Serve serves on ln until ctx ends, then shuts down within 5 s. It
// returns nil after a clean shutdown.
func (a *Admin) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a.mux, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(a.opts.Log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.opts.Log.Info("admin listener up", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: admin server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// checkResult is one line of a /healthz or /readyz body.
type checkResult struct {
	name string
	err  error
}

// liveness is the /healthz condition: the TUN is up and at least one
// uplink is usable.
func (a *Admin) liveness() []checkResult {
	var out []checkResult
	if a.opts.TUNUp != nil && a.opts.TUNUp() {
		out = append(out, checkResult{"tun", nil})
	} else {
		out = append(out, checkResult{"tun", errors.New("down")})
	}
	var states []plumbing.UplinkStatus
	if a.opts.Uplinks != nil {
		states = a.opts.Uplinks.UplinkStates()
	}
	var up, down []string
	for _, s := range states {
		if s.Up {
			up = append(up, s.Name)
		} else {
			down = append(down, fmt.Sprintf("%s: %s", s.Name, s.Reason))
		}
	}
	switch {
	case len(states) == 0:
		out = append(out, checkResult{"uplinks", errors.New("none configured")})
	case len(up) == 0:
		out = append(out, checkResult{"uplinks", fmt.Errorf("none up (%s)", strings.Join(down, ", "))})
	default:
		out = append(out, checkResult{"uplinks", nil})
	}
	return out
}

// writeChecks answers 200 when every check passed, else 503; the body
// has one line per check: "ok NAME" or "FAIL NAME: why".
func writeChecks(w http.ResponseWriter, results []checkResult) {
	status := http.StatusOK
	var b strings.Builder
	for _, r := range results {
		if r.err != nil {
			status = http.StatusServiceUnavailable
			fmt.Fprintf(&b, "FAIL %s: %v\n", r.name, r.err)
		} else {
			fmt.Fprintf(&b, "ok %s\n", r.name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func (a *Admin) healthz(w http.ResponseWriter, _ *http.Request) { writeChecks(w, a.liveness()) }

func (a *Admin) readiness() []checkResult {
	results := a.liveness()
	for _, c := range a.opts.Ready {
		results = append(results, checkResult{c.Name, c.Check()})
	}
	return results
}

func (a *Admin) readyz(w http.ResponseWriter, _ *http.Request) { writeChecks(w, a.readiness()) }

func (a *Admin) status(w http.ResponseWriter, _ *http.Request) {
	resp := StatusResponse{Ready: true, Checks: []CheckInfo{}, Uplinks: []UplinkInfo{}}
	for _, r := range a.readiness() {
		c := CheckInfo{Name: r.name, OK: r.err == nil}
		if r.err != nil {
			resp.Ready, c.Error = false, r.err.Error()
		}
		resp.Checks = append(resp.Checks, c)
	}
	if a.opts.Uplinks != nil {
		for _, u := range a.opts.Uplinks.UplinkStates() {
			ui := UplinkInfo{Name: u.Name, Interface: u.Interface, Up: u.Up, Reason: u.Reason}
			if !u.Since.IsZero() {
				ui.Since = &u.Since
			}
			resp.Uplinks = append(resp.Uplinks, ui)
		}
	}
	writeJSON(w, a.opts.Log, resp)
}

// writeJSON answers 200 with v, indented.
func writeJSON(w http.ResponseWriter, log *slog.Logger, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		log.Warn("write admin response", "err", err)
	}
}

func (a *Admin) contexts(w http.ResponseWriter, _ *http.Request) {
	resp := ContextsResponse{Contexts: []ContextInfo{}}
	if a.opts.Contexts != nil {
		resp.Contexts = append(resp.Contexts, a.opts.Contexts.Contexts()...)
	}
	sortContexts(resp.Contexts)
	writeJSON(w, a.opts.Log, resp)
}

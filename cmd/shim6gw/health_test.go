package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func TestHealthFollowsReadyz(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/readyz":
			http.NotFound(w, r)
		case status == http.StatusOK:
			w.Write([]byte("ok tun\nok plumbing\n"))
		default:
			w.WriteHeader(status)
			w.Write([]byte("ok tun\nFAIL plumbing: gateway: plumbing missing: rule 15000\n"))
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	out, errs, code := runCmd(t, "health", "--admin", addr)
	if code != 0 || out != "ok tun\nok plumbing\n" || errs != "" {
		t.Errorf("ready: %d %q %q", code, out, errs)
	}
	// The address from the configuration's admin.listen.
	cfg := writeCheckConfig(t, checkConfig+"admin:\n  listen: "+addr+"\n")
	if _, errs, code := runCmd(t, "health", "--config", cfg); code != 0 {
		t.Errorf("--config: %d %q", code, errs)
	}
	status = http.StatusServiceUnavailable
	out, errs, code = runCmd(t, "health", "--admin", addr)
	if code != 1 || out != "" || !strings.HasPrefix(errs, "shim6gw: health: "+srv.URL+"/readyz: 503 Service Unavailable: ok tun; FAIL plumbing") ||
		strings.Count(errs, "\n") != 1 {
		t.Errorf("not ready: %d %q %q", code, out, errs)
	}
	srv.Close()
	if _, errs, code := runCmd(t, "health", "--admin", addr, "--timeout", "200ms"); code != 1 {
		t.Errorf("nobody listening: %d %q", code, errs)
	}
	if _, errs, code := runCmd(t, "health", "--config", filepath.Join(t.TempDir(), "none.yaml")); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing config: %d %q", code, errs)
	}
}

func TestHealthTimeoutBounded(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	_, errs, code := runCmd(t, "health", "--admin", srv.URL, "--timeout", "100ms")
	if code != 1 || !strings.Contains(errs, "deadline exceeded") && !strings.Contains(errs, "Timeout") {
		t.Errorf("hung gateway: %d %q", code, errs)
	}
}

func TestHealthUsage(t *testing.T) {
	for _, args := range [][]string{{"health", "--admin", "a:1", "--config", "c"}, {"health", "--timeout", "0s"},
		{"health", "--timeout", "2m"}, {"health", "extra"}} {
		if _, errs, code := runCmd(t, args...); code != 2 || !strings.HasPrefix(errs, "shim6gw: health: ") {
			t.Errorf("%q: %d %q", args, code, errs)
		}
	}
}

func TestHealthURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9146":      "http://127.0.0.1:9146/readyz",
		":9146":               "http://127.0.0.1:9146/readyz",
		"0.0.0.0:9146":        "http://127.0.0.1:9146/readyz",
		"[::]:9146":           "http://[::1]:9146/readyz",
		"[2001:db8::1]:9146":  "http://[2001:db8::1]:9146/readyz",
		"gw.example:9146":     "http://gw.example:9146/readyz",
		"http://10.0.0.1:80/": "http://10.0.0.1:80/readyz",
	} {
		if got := healthURL(in); got != want {
			t.Errorf("healthURL(%q) = %q, want %q", in, got, want)
		}
	}
}

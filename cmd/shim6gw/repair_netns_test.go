package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// nsHTTPGet fetches url from inside the named namespace: the connection
// is dialed on a thread switched into it (a socket stays in the namespace
// it was created in).
func nsHTTPGet(t *testing.T, ns, url string) string {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		res := make(chan result, 1)
		go func() {
			// A thread that cannot switch back stays locked and dies
			// with the goroutine.
			runtime.LockOSThread()
			orig, err := netns.Get()
			if err != nil {
				res <- result{nil, err}
				return
			}
			defer orig.Close()
			if err := netns.Set(h); err != nil {
				res <- result{nil, err}
				return
			}
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			res <- result{c, err}
		}()
		r := <-res
		return r.c, r.err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	client.CloseIdleConnections()
	return string(b)
}

// TestRunRepairsFlushedRules: what systemd-networkd does to foreign rules,
// done to a running `shim6gw run`: the rules are back within 1 s, the
// repairs are counted in /metrics, and the fast-path programs stay
// attached through the same links (the repair neither detaches nor
// re-attaches them).
func TestRunRepairsFlushedRules(t *testing.T) {
	forEachFastpath(t, testRunRepairsFlushedRules)
}

func testRunRepairsFlushedRules(t *testing.T, fp string) {
	const ns = "s6ops-flush"
	cfg := gatewayNS(t, ns, fp)
	_, log, done := startGateway(t, ns, "--config", cfg, "--state-file", t.TempDir()+"/sysctl.json")
	waitReady(t, ns, cfg, log, done)
	fast := checkTCX(t, ns, fp, "before the flush")

	ip(t, "-n", ns, "-6", "rule", "flush", "protocol", "154")
	flushed := time.Now()
	for strings.Count(ip(t, "-n", ns, "-6", "rule"), "proto 154") != 7 {
		if time.Since(flushed) > time.Second {
			t.Fatalf("rules not restored within 1s:\n%s\n%s", ip(t, "-n", ns, "-6", "rule"), log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("rules restored %v after the flush", time.Since(flushed))
	// The pass counts after the kernel took the rules back: poll a moment.
	for _, want := range []string{`shim6gw_plumbing_repairs_total{kind="rule"} 7`, "shim6gw_plumbing_intact 1"} {
		for deadline := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
			if strings.Contains(nsHTTPGet(t, ns, "http://127.0.0.1:9146/metrics"), "\n"+want+"\n") {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("metrics lack %q", want)
				break
			}
		}
	}
	if !strings.Contains(log.String(), `msg="re-installed a rule someone removed"`) {
		t.Errorf("no repair logged:\n%s", log.String())
	}
	if after := checkTCX(t, ns, fp, "after the repair"); after.String() != fast.String() {
		t.Errorf("fast-path attachments changed by the repair:\nbefore\n%s\nafter\n%s", fast, after)
	}
}

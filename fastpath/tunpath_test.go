package fastpath

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/tunnel"
)

// tunProc is the TUN data plane the fast path is compared with: the
// rewriter on every packet, GSO super-packets kept whole when it leaves
// them untouched (the gateway's Dataplane, without its notice queue).
type tunProc struct {
	rw   *rewrite.Rewriter
	base time.Time
}

func (p *tunProc) KeepWhole(pkt []byte, _ tunnel.GSOInfo) bool {
	return p.rw.Untouched(rewrite.Auto, pkt, int64(time.Since(p.base)))
}

func (p *tunProc) Process(b *tunnel.Batch) {
	now := int64(time.Since(p.base))
	for i := range b.Packets {
		pk := &b.Packets[i]
		res := p.rw.Process(rewrite.Auto, b.Buf(i), pk.Start, pk.End, now)
		pk.Start, pk.End = res.Start, res.End
		pk.Verdict = tunnel.Drop
		if res.Verdict == rewrite.Forward || res.Verdict == rewrite.Reply {
			pk.Verdict = tunnel.Forward
		}
	}
}

// startTUN runs each gateway's table on the TUN path, as the daemon
// does: an offload-backend TUN fps, rules that send everything arriving
// on l0 and u0 into it, and a pipeline with tunProc. The returned
// function stops it and removes the rules.
func (n *topo) startTUN(t testing.TB) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, g := range n.gws {
		dev := inNS(t, g.ns, func() (*tunnel.Offload, error) { return tunnel.OpenOffload("fps", 1500) })
		ipn(t, g.ns, "link", "set", "fps", "up")
		ipn(t, g.ns, "-6", "route", "add", "default", "dev", "fps", "table", "100")
		ipn(t, g.ns, "-6", "rule", "add", "iif", "l0", "lookup", "100", "pref", "100")
		ipn(t, g.ns, "-6", "rule", "add", "iif", "u0", "lookup", "100", "pref", "101")
		tab, err := rewrite.NewTable(g.cfg)
		if err != nil {
			t.Fatal(err)
		}
		rw := rewrite.NewRewriter(rewrite.RewriterConfig{})
		rw.Publish(tab)
		p, err := tunnel.NewPipeline(dev, tunnel.Config{Processor: &tunProc{rw: rw, base: time.Now()}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				t.Errorf("tun pipeline: %v", err)
			}
		}()
	}
	return func() {
		for _, g := range n.gws {
			ipn(t, g.ns, "-6", "rule", "del", "pref", "100")
			ipn(t, g.ns, "-6", "rule", "del", "pref", "101")
			ipn(t, g.ns, "-6", "route", "flush", "table", "100")
		}
		cancel()
		wg.Wait()
	}
}

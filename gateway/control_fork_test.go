package gateway

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/internal/ip6"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
	"github.com/shim6gw/shim6gw/tunnel"
	"github.com/shim6gw/shim6gw/tunnel/tuntest"
)

// forkPeer plays a remote Shim6 host against a control loop whose
// injected packets land on dev.Outbound.
type forkPeer struct {
	t          *testing.T
	l          *controlLoop
	dev        *tuntest.Device
	ulid, host netip.Addr
	now        time.Time
}

func newForkPeer(t *testing.T) *forkPeer {
	t.Helper()
	c := NewController(ControllerOptions{Seed: [32]byte{5}})
	l, err := newControlLoop(c, siteConfig(t, 1), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	dev := tuntest.New(tuntest.Config{Buffer: 64})
	p, err := tunnel.NewPipeline(dev, tunnel.Config{BufSize: tunnel.Offset + 4096})
	if err != nil {
		t.Fatal(err)
	}
	l.pipes = []*tunnel.Pipeline{p}
	return &forkPeer{t: t, l: l, dev: dev, ulid: netip.MustParseAddr("2001:db8:c:1::2"), host: l.site.hosts[0].ULID, now: time.Now()}
}

// sent returns the control messages the loop injected so far.
func (p *forkPeer) sent() []shim6.Message {
	var out []shim6.Message
	for {
		select {
		case pkt := <-p.dev.Outbound:
			if len(pkt) < ip6.HeaderLen || pkt[6] != shim6.ProtocolNumber {
				p.t.Fatalf("injected packet is not a bare shim6 message: % x", pkt[:min(len(pkt), 48)])
			}
			m, err := shim6.ParseMessage(pkt[ip6.HeaderLen:])
			if err != nil {
				p.t.Fatal(err)
			}
			out = append(out, m)
		default:
			return out
		}
	}
}

func (p *forkPeer) one(want shim6.Type) shim6.Message {
	p.t.Helper()
	ms := p.sent()
	if len(ms) != 1 || ms[0].Type() != want {
		p.t.Fatalf("got %d messages (%v), want one %v", len(ms), ms, want)
	}
	return ms[0]
}

func (p *forkPeer) deliver(msg []byte) {
	p.t.Helper()
	if err := shim6.FinishMessage(msg); err != nil {
		p.t.Fatal(err)
	}
	p.l.received(p.now, shim6.AppendIPv6Control(nil, p.ulid, p.host, msg))
}

// establish runs the peer-initiated exchange for one context (RFC 5533
// §7.9–7.13), with the FII option when fii ≠ 0 (§5.15.7).
func (p *forkPeer) establish(tag shim6.ContextTag, fii uint32) {
	p.t.Helper()
	i1 := shim6.AppendI1(nil, tag, 0xaaaa)
	if fii != 0 {
		i1 = shim6.AppendFII(i1, fii)
	}
	p.deliver(i1)
	r1 := shim6.R1(p.one(shim6.TypeR1))
	o, _, ok := shim6.Message(r1).Option(shim6.OptResponderValidator)
	if !ok {
		p.t.Fatal("R1 without validator")
	}
	v, _ := o.ResponderValidator()
	i2 := shim6.AppendResponderValidator(shim6.AppendI2(nil, tag, 0xbbbb, r1.ResponderNonce()), v)
	if fii != 0 {
		i2 = shim6.AppendFII(i2, fii)
	}
	p.deliver(i2)
	p.one(shim6.TypeR2)
}

// TestForkedContextInTable: a context the peer forks (FII ≠ 0, RFC 5533
// §4.2) is published inbound-only, so payload on its tag is stripped
// instead of dropped as unknown_tag, its stamps reach the engine, and the
// engine runs REAP for it (a Keepalive on the fork, RFC 5534 §5.1).
func TestForkedContextInTable(t *testing.T) {
	p := newForkPeer(t)
	const peerTag, peerForkTag = 0x1000, 0x1007
	p.establish(peerTag, 0)
	p.establish(peerForkTag, 7)
	l := p.l
	if !l.tableDirty {
		t.Fatal("establishing contexts left the table clean")
	}
	l.publishTable()

	def, fork := l.entries[ctxKey{p.host, p.ulid, 0}], l.entries[ctxKey{p.host, p.ulid, 7}]
	if def.PeerTag != peerTag || fork.PeerTag != peerForkTag || def.LocalTag == fork.LocalTag {
		t.Fatalf("engine entries: default %+v fork %+v", def, fork)
	}
	var inbound []shim6.ContextTag
	for _, cc := range l.tableConfig().Contexts {
		if cc.InboundOnly {
			inbound = append(inbound, cc.LocalTag)
		}
	}
	if len(inbound) != 1 || inbound[0] != fork.LocalTag {
		t.Errorf("inbound-only contexts %v, want [%#x]", inbound, uint64(fork.LocalTag))
	}
	tab := l.c.rw.Table()
	if c := tab.LookupPair(p.host, p.ulid); c == nil || c.InboundOnly() || c.Config().PeerTag != peerTag {
		t.Fatalf("pair lookup %+v, want the FII 0 context", c)
	}
	fc := tab.LookupTag(fork.LocalTag)
	if fc == nil || !fc.InboundOnly() || fc.Config().PeerTag != peerForkTag || tab.Len() != 2 {
		t.Fatalf("forked context in the table: %+v (len %d)", fc, tab.Len())
	}

	// Payload on the fork's tag: stripped, no unknown-tag notice.
	udp := []byte{0, 7, 0, 9, 0, 12, 0, 0, 'f', 'o', 'r', 'k'}
	pkt := make([]byte, 64, 128)
	shim6.PutIPv6Header(pkt, p.ulid, p.host, shim6.ProtocolNumber, shim6.PayloadHeaderLen+len(udp))
	shim6.PutPayloadHeader(pkt[ip6.HeaderLen:], 17, fork.LocalTag)
	copy(pkt[ip6.HeaderLen+shim6.PayloadHeaderLen:], udp)
	pkt = pkt[:ip6.HeaderLen+shim6.PayloadHeaderLen+len(udp)]
	buf := make([]byte, 32+len(pkt))
	copy(buf[32:], pkt)
	res := l.c.rw.Process(rewrite.Inbound, buf, 32, len(buf), l.c.clock.nanos())
	got := buf[res.Start:res.End]
	if res.Path != rewrite.PathInboundShim || res.Notice.Kind != rewrite.NoNotice || len(got) != ip6.HeaderLen+len(udp) ||
		got[6] != 17 || string(got[ip6.HeaderLen:]) != string(udp) {
		t.Fatalf("forked payload: path %v reason %v notice %v, packet % x", res.Path, res.Reason, res.Notice.Kind, got)
	}
	if fc.Stamps().ReceivedPackets.Load() != 1 || l.stamps[fork.LocalTag] != fc.Stamps() {
		t.Fatalf("fork stamps not shared with the loop")
	}

	// The loop hands the stamps to the engine; with payload received
	// and none sent, REAP sends a Keepalive on the fork's pair of tags.
	p.sent()
	l.observe(p.now)
	if l.seen[fork.LocalTag][1] == 0 {
		t.Fatal("observe did not pick up the fork's received stamp")
	}
	var keepalive bool
	for i := 1; i <= 40 && !keepalive; i++ {
		l.apply(l.eng.Tick(p.now.Add(time.Duration(i) * 100 * time.Millisecond)))
		for _, m := range p.sent() {
			if m.Type() == shim6.TypeKeepalive {
				if tag := shim6.Keepalive(m).ReceiverTag(); tag != peerForkTag {
					t.Fatalf("keepalive for CT(peer) %#x, want the fork's %#x", uint64(tag), peerForkTag)
				}
				keepalive = true
			}
		}
	}
	if !keepalive {
		t.Error("no keepalive for the forked context within 4 s")
	}
}

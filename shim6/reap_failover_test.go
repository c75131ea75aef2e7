package shim6

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Failover under load as the gateway sees it: the data plane stamps
// traffic and the control loop polls the stamps (so the engine learns of
// a sent packet up to one poll interval late), and the hosts run TCP,
// which stalls during the outage and retransmits with exponential backoff.

// labLikeTimers are lab.LabTimers in engine form, with the given
// Send/Keepalive Timeout.
func labLikeTimers(send time.Duration) Timers {
	return Timers{
		I1Timeout: 500 * time.Millisecond, I2Timeout: 500 * time.Millisecond,
		I2bisTimeout: 500 * time.Millisecond, UpdateTimeout: 500 * time.Millisecond,
		MaxUpdateTimeout: 4 * time.Second, SendTimeout: send, KeepaliveTimeout: send,
		InitialProbeTimeout: 200 * time.Millisecond, MaxProbeTimeout: 2 * time.Second,
		NoR1HolddownTime: 5 * time.Second, ICMPHolddownTime: 10 * time.Second, IdleTimeout: time.Minute,
	}
}

// sendDataPolled is sendData with a gateway-style data plane: the packet
// leaves on the fast table's pair and only its stamp moves; the engine
// hears of it at the next poll.
func (nd *simNode) sendDataPolled(local, peer netip.Addr) bool {
	n := nd.net
	tag, ok := nd.byPair[[2]netip.Addr{local, peer}]
	if !ok {
		nd.apply(nd.e.HandleTraffic(n.now, local, peer))
		return false
	}
	u := nd.fast[tag]
	src, dst := u.LocalLocator, u.PeerLocator
	var ptag ContextTag
	if src != local || dst != peer {
		ptag = u.PeerTag
	}
	nd.sent[tag] = n.now
	n.dataSent++
	delivered := n.transmit(src, dst, func() {
		n.dataDelivered++
		n.nodeFor(dst).recvDataPolled(src, dst, ptag, local, peer)
	}, 0, nd.name, nil)
	if !delivered {
		n.dataLost++
	}
	return delivered
}

// recvDataPolled is recvData with stamps only.
func (nd *simNode) recvDataPolled(src, dst netip.Addr, ptag ContextTag, ulidSrc, ulidDst netip.Addr) {
	if ptag != 0 {
		u, ok := nd.fast[ptag]
		if !ok || !contains(u.PeerLocators, src) || !contains(u.LocalLocators, dst) {
			nd.unknown++
			nd.apply(nd.e.HandleUnknownTag(nd.net.now, src, dst, ptag))
			return
		}
		nd.recv[ptag] = nd.net.now
		return
	}
	if tag, ok := nd.byPair[[2]netip.Addr{dst, src}]; ok {
		nd.recv[tag] = nd.net.now
	}
}

// pollStamps feeds the engine the stamps that moved, every interval until
// stop, as the gateway's control loop does.
func (nd *simNode) pollStamps(every time.Duration, stop time.Time) {
	seen := map[ContextTag][2]time.Time{}
	var step func()
	step = func() {
		if nd.net.now.After(stop) {
			return
		}
		for tag := range nd.fast {
			v := [2]time.Time{nd.sent[tag], nd.recv[tag]}
			if v == seen[tag] {
				continue
			}
			seen[tag] = v
			nd.apply(nd.e.ObserveTraffic(nd.net.now, tag, v[0], v[1]))
		}
		nd.net.after(every, step)
	}
	nd.net.after(every, step)
}

// tcpFlow is one direction of a paced TCP stream: a segment every pace
// while segments arrive; after a loss, retransmissions at RTO 200 ms
// doubling (RFC 6298 §5.5) until one arrives.
type tcpFlow struct {
	from, to        *simNode
	src, dst        netip.Addr
	pace            time.Duration
	stop            time.Time
	lostAt          time.Time // first segment lost of the current outage
	rto             time.Duration
	retransmissions []time.Duration // since the loss, for the test log
}

func (f *tcpFlow) start() {
	n := f.from.net
	var step func()
	step = func() {
		if n.now.After(f.stop) {
			return
		}
		ok := f.from.sendDataPolled(f.src, f.dst)
		switch {
		case ok && f.lostAt.IsZero():
			n.after(f.pace, step)
		case ok:
			// The retransmission got through: back to pacing.
			f.retransmissions = append(f.retransmissions, n.now.Sub(f.lostAt))
			f.lostAt, f.rto = time.Time{}, 0
			n.after(f.pace, step)
		default:
			if f.lostAt.IsZero() {
				f.lostAt, f.rto = n.now, 200*time.Millisecond
			} else {
				f.retransmissions = append(f.retransmissions, n.now.Sub(f.lostAt))
				f.rto = min(2*f.rto, 60*time.Second)
			}
			n.after(f.rto, step)
		}
	}
	n.after(0, step)
}

// failoverRun builds two sites with Send Timeout send, a TCP stream each
// way between host 0 of each, blackholes site A's first provider, runs for
// after, and returns the nodes and flows.
// If inject is set, it runs once, at virtual time inject.at, before the
// flows' own events of that instant.
func failoverRun(t *testing.T, seed uint64, send, poll, after time.Duration, inject *injection) (*simNet, *simNode, *simNode, []*tcpFlow, time.Duration) {
	t.Helper()
	net, a, b, sa, sb, _ := twoSites(t, seed, 1, labLikeTimers(send))
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establish(t, net, a, b, ua, ub)
	stop := net.now.Add(after + 10*time.Second)
	a.pollStamps(poll, stop)
	b.pollStamps(poll, stop)
	flows := []*tcpFlow{
		{from: a, to: b, src: ua, dst: ub, pace: 10 * time.Millisecond, stop: stop},
		{from: b, to: a, src: ub, dst: ua, pace: 10 * time.Millisecond, stop: stop},
	}
	for _, f := range flows {
		f.start()
	}
	if inject != nil {
		net.at(simEpoch.Add(inject.at), func() { inject.fn(a, b) })
	}
	net.runFor(5 * time.Second)
	net.rules = blackhole("2001:db8:a1::/48")
	cut := net.now.Sub(simEpoch)
	net.runFor(after)
	return net, a, b, flows, cut
}

// injection is an extra action at a virtual time of a failoverRun.
type injection struct {
	at time.Duration // since simEpoch
	fn func(a, b *simNode)
}

// eventLog lists a node's events with their times, for failure messages.
func eventLog(nd *simNode) string {
	var b strings.Builder
	for i, ev := range nd.events {
		fmt.Fprintf(&b, "\n  %s %v %v %s", nd.evAt[i], ev.Kind, ev.Duration, ev.Reason)
	}
	return b.String()
}

// After a blackhole failover with the TCP streams resuming on the new
// pair, neither side explores again: stale stamps of segments sent on the
// old pair before the failover must not restart the Send timer the
// failover's Probe stopped (RFC 5534 §6.8, §6.9), and keepalives keep the
// Send timers quiet until TCP resumes.
func TestReapFailoverNoSecondExploration(t *testing.T) {
	for _, tc := range []struct {
		send, poll time.Duration
	}{
		{3 * time.Second, 300 * time.Millisecond},
		{time.Second, 100 * time.Millisecond},
		{500 * time.Millisecond, 50 * time.Millisecond},
	} {
		for seed := uint64(1); seed <= 12; seed++ {
			t.Run(fmt.Sprintf("send%v/seed%d", tc.send, seed), func(t *testing.T) {
				net, a, b, flows, cut := failoverRun(t, 500+seed, tc.send, tc.poll, 20*time.Second, nil)
				for _, nd := range []*simNode{a, b} {
					if n := len(nd.eventsOf(EventFailover)); n != 1 {
						t.Errorf("%s: %d failovers, want 1 (cut at %v):%s", nd.name, n, cut, eventLog(nd))
					}
					if n := len(nd.eventsOf(EventExplorationStarted)); n != 1 {
						t.Errorf("%s: %d explorations, want 1 (cut at %v):%s", nd.name, n, cut, eventLog(nd))
					}
				}
				for _, f := range flows {
					if !f.lostAt.IsZero() {
						t.Errorf("%s→%s: stream still stalled since %v", f.from.name, f.to.name, f.lostAt.Sub(simEpoch))
					}
				}
				if net.dataDelivered == 0 {
					t.Error("nothing delivered")
				}
			})
		}
	}
}

// The race a lab run once showed (a second exploration one Send Timeout
// after a blackhole failover): a host sends a segment on the old pair just
// before the Probe that ends its gateway's exploration arrives, and the
// gateway polls that stamp only after the Probe. The segment is lost; the
// Send timer it started was stopped or restarted by the Probe (RFC 5534
// §6.8, §6.9), so the stale stamp must not start it again.
func TestReapStaleSentStampAfterFailover(t *testing.T) {
	const send, poll = 3 * time.Second, 300 * time.Millisecond
	// probeAt is when the first Probe with state sta reaches node to.
	probeAt := func(net *simNet, to string, sta Sta) time.Duration {
		for _, l := range net.log {
			if l.typ == TypeProbe && l.to == to && !l.dropped {
				if m, err := ParseMessage(l.msg); err == nil && Probe(m).Sta() == sta {
					return l.at + net.delay
				}
			}
		}
		return -1
	}
	// A dry run finds the instants; the runs are deterministic.
	dry, _, _, _, _ := failoverRun(t, 700, send, poll, 15*time.Second, nil)
	for _, to := range []string{"A", "B"} {
		for _, sta := range []Sta{StaInboundOk, StaOperational} {
			at := probeAt(dry, to, sta)
			if at < 0 {
				continue
			}
			for _, early := range []time.Duration{time.Millisecond, 5 * time.Millisecond} {
				t.Run(fmt.Sprintf("%s/%v/%v", to, sta, early), func(t *testing.T) {
					inj := &injection{at: at - early, fn: func(a, b *simNode) {
						nd, peer := a, b
						if to == "B" {
							nd, peer = b, a
						}
						nd.sendDataPolled(nd.e.cfg.Hosts[0].ULID, peer.e.cfg.Hosts[0].ULID)
					}}
					_, a, b, _, cut := failoverRun(t, 700, send, poll, 15*time.Second, inj)
					for _, nd := range []*simNode{a, b} {
						if n := len(nd.eventsOf(EventExplorationStarted)); n != 1 {
							t.Errorf("%s: %d explorations, want 1 (cut at %v, extra segment at %v):%s", nd.name, n, cut, inj.at, eventLog(nd))
						}
					}
				})
			}
		}
	}
}

// When only A detects a blackhole (B's Send Timeout is long), A's first
// Probe goes on the pair sharing no locator with the failed one, so one
// round trip finds a working pair whichever provider failed.
func TestReapFirstProbeOnDisjointPair(t *testing.T) {
	for _, tc := range []struct {
		name, hole string
	}{
		{"A's first provider", "2001:db8:a1::/48"},
		{"B's first provider", "2001:db8:b1::/48"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net, a, b, sa, sb, _ := asymSites(t, 41, labLikeTimers(500*time.Millisecond), labLikeTimers(15*time.Second))
			ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
			establish(t, net, a, b, ua, ub)
			net.flow(a, ua, b, ub, 10*time.Millisecond, net.now.Add(10*time.Second))
			net.runFor(2 * time.Second)
			net.rules = blackhole(tc.hole)
			net.log = nil
			net.runFor(3 * time.Second)
			var first *logEntry
			for i, l := range net.log {
				if l.typ == TypeProbe && l.from == "A" {
					first = &net.log[i]
					break
				}
			}
			if first == nil {
				t.Fatal("A sent no probe")
			}
			if !onPrefix(first.src, "2001:db8:a2::/48") || !onPrefix(first.dst, "2001:db8:b2::/48") || first.dropped {
				t.Errorf("first probe %v>%v (lost %v), want the disjoint pair a2>b2", first.src, first.dst, first.dropped)
			}
			fo := a.eventsOf(EventFailover)
			if len(fo) != 1 {
				t.Fatalf("A: %d failovers:%s", len(fo), eventLog(a))
			}
			// One round trip (2 × 10 ms), no second probe round.
			if fo[0].Duration > 2*net.delay {
				t.Errorf("exploration took %v, want one round trip", fo[0].Duration)
			}
		})
	}
}

// A sent stamp the data plane reports after a Keepalive stopped the Send
// timer, but for a packet sent before it, must not start the timer again:
// in event order the Keepalive came last (RFC 5534 §6.7). Only a packet
// sent after the Keepalive starts it.
func TestReapStaleSentStampAfterKeepalive(t *testing.T) {
	sa, sb, v := verifiedSites(1)
	net, a, b := simPair(t, 43, sa, sb, v, Timers{}, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	establish(t, net, a, b, ua, ub)
	c := a.e.byPair[pairKey{ua, ub, 0}]
	ms := func(n int) time.Time { return net.now.Add(time.Duration(n) * time.Millisecond) }
	a.e.ObserveTraffic(ms(20), c.localTag, ms(10), ms(1))
	if c.sendStart == 0 {
		t.Fatal("payload sent after payload received did not start the Send timer")
	}
	a.e.HandleControl(ms(30), c.pp, c.lp, AppendKeepalive(nil, c.localTag))
	if c.sendStart != 0 {
		t.Fatal("the Keepalive did not stop the Send timer")
	}
	a.e.ObserveTraffic(ms(40), c.localTag, ms(25), ms(1))
	if c.sendStart != 0 {
		t.Errorf("a packet sent at 25 ms, before the Keepalive at 30 ms, restarted the Send timer")
	}
	a.e.ObserveTraffic(ms(60), c.localTag, ms(50), ms(1))
	if c.sendStart != nt(ms(50)) {
		t.Errorf("Send timer start %v after a packet sent at 50 ms, want it running from then", c.sendStart)
	}
}

package gateway

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/shim6gw/shim6gw/internal/ip6"

	"github.com/shim6gw/shim6gw/gateway/config"
	"github.com/shim6gw/shim6gw/gateway/metrics"
	"github.com/shim6gw/shim6gw/lan/slaac"
	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
	"github.com/shim6gw/shim6gw/tunnel"
)

// clock converts between wall-clock times (the engine's) and the data
// plane's monotonic nanoseconds (rewrite stamps). Zero nanoseconds means
// "never", so the base lies one second before the clock was made.
type clock struct{ base time.Time }

func newClock() clock { return clock{base: time.Now().Add(-time.Second)} }

// nanos is the data plane's "now": monotonic nanoseconds since base.
func (c clock) nanos() int64 { return int64(time.Since(c.base)) }

// at converts a stamp back to a time; 0 (never) is the zero time.
func (c clock) at(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return c.base.Add(time.Duration(ns))
}

// Dataplane is the tunnel.Processor of the gateway (docs/architecture.md §3, §6): it
// runs every packet of a batch through the Rewriter, in place, and turns
// the verdicts into the pipeline's. Control messages are diverted to the
// control loop by the pipeline's DivertQueue; the Rewriter's notices go
// into a bounded channel without blocking. It is safe for several
// pipelines (TUN queues) at once and allocates nothing per packet.
//
// Offsets: the pipeline reads at tunnel.Offset (32) and writes from
// tunnel.WriteHeadroom (16), so a packet may start 8 bytes earlier after
// the payload header is inserted (rewrite moves Start by −8) or 8 bytes
// later after it is stripped; both stay ≥ 16, which covers the 10-byte
// virtio header wireguard-go writes in front of a packet.
type Dataplane struct {
	rw      *rewrite.Rewriter
	clock   clock
	notices chan rewrite.Notice

	// bytes counts packet bytes by direction and path kind (rewrite
	// counts packets only).
	bytes [rewrite.NumDirections][rewrite.NumPathKinds]atomic.Uint64
	// uplinkPackets and uplinkBytes count what left (outbound, by source
	// locator) or arrived (inbound, by destination locator) through each
	// uplink, in configuration order.
	uplinkPackets, uplinkBytes [config.MaxUplinks][rewrite.NumDirections]atomic.Uint64
	uplinkNames                atomic.Pointer[[]string]

	// NoticeDrops counts notices lost because the control loop was
	// behind; ICMPDiverted counts ICMPv6 errors about our control
	// messages handed to the control loop.
	NoticeDrops, ICMPDiverted atomic.Uint64

	// slaac, when set, translates SLAAC hosts to book ULIDs: outbound
	// before the rewriter, inbound after it.
	slaac *slaac.Translator
}

// SetSLAAC installs the SLAAC translator (before the pipelines start).
func (d *Dataplane) SetSLAAC(tr *slaac.Translator) { d.slaac = tr }

// NewDataplane returns a Dataplane over rw whose notices channel holds up
// to queue entries (0 means 1024).
func NewDataplane(rw *rewrite.Rewriter, queue int) *Dataplane {
	return newDataplane(rw, queue, newClock())
}

func newDataplane(rw *rewrite.Rewriter, queue int, c clock) *Dataplane {
	if queue <= 0 {
		queue = 1024
	}
	return &Dataplane{rw: rw, clock: c, notices: make(chan rewrite.Notice, queue)}
}

// Notices is the channel the control loop reads the Rewriter's notices
// from.
func (d *Dataplane) Notices() <-chan rewrite.Notice { return d.notices }

// Rewriter returns the Rewriter the data plane runs.
func (d *Dataplane) Rewriter() *rewrite.Rewriter { return d.rw }

// KeepWhole implements tunnel.GSOFilter: a GSO super-packet the rewriter
// would forward unchanged (no context to shim, no fallback, no SYN to
// clamp) goes through whole, so passthrough traffic keeps the kernel's
// segmentation offload; the others are split before Process. Packet
// counters then count such a super-packet once.
func (d *Dataplane) KeepWhole(pkt []byte, _ tunnel.GSOInfo) bool {
	if d.slaac != nil && d.slaac.Touches(pkt) {
		return false
	}
	return d.rw.Untouched(rewrite.Auto, pkt, d.clock.nanos())
}

// Process implements tunnel.Processor.
func (d *Dataplane) Process(b *tunnel.Batch) {
	now := d.clock.nanos() // one reading per batch (rewrite.Process)
	t := d.rw.Table()
	var bytes [rewrite.NumDirections][rewrite.NumPathKinds]uint64
	var upPkts, upBytes [config.MaxUplinks][rewrite.NumDirections]uint64
	for i := range b.Packets {
		p := &b.Packets[i]
		buf := b.Buf(i)
		if d.slaac != nil && d.slaac.Outbound(buf, p.Start, p.End, now) == slaac.Drop {
			p.Verdict = tunnel.Drop
			continue
		}
		dir := t.DirectionOf(buf[p.Start:p.End])
		if dir == rewrite.Inbound && isShim6ParamProblem(buf[p.Start:p.End]) {
			// The peer does not know Next Header 140: the engine learns
			// NO-SUPPORT from it (RFC 5533 §7.8); the LAN host never
			// sent the quoted I1.
			p.Verdict = tunnel.Divert
			d.ICMPDiverted.Add(1)
			bytes[dir][rewrite.PathControl] += uint64(p.End - p.Start)
			continue
		}
		up, wire := -1, p.End-p.Start
		if dir == rewrite.Inbound {
			// The uplink it came by: its destination locator, before the
			// payload header is stripped and the ULID restored.
			up = uplinkOf(t, buf[p.Start:p.End], ip6.OffDst)
		}
		res := d.rw.Process(dir, buf, p.Start, p.End, now)
		p.Start, p.End = res.Start, res.End
		if dir == rewrite.Outbound {
			up, wire = uplinkOf(t, buf[p.Start:p.End], ip6.OffSrc), p.End-p.Start
		}
		// Bytes as on the uplink: inbound as received, outbound as sent.
		if up >= 0 && up < config.MaxUplinks && res.Verdict == rewrite.Forward {
			upPkts[up][dir]++
			upBytes[up][dir] += uint64(wire)
		}
		// Towards the LAN: inbound packets, and the Packet Too Big the
		// rewriter answers a host with (addressed to its ULID).
		toLAN := dir == rewrite.Inbound && res.Verdict == rewrite.Forward || res.Verdict == rewrite.Reply
		if d.slaac != nil && toLAN && d.slaac.Inbound(buf, p.Start, p.End, now) == slaac.Drop {
			p.Verdict = tunnel.Drop
			continue
		}
		switch res.Verdict {
		case rewrite.Forward, rewrite.Reply:
			p.Verdict = tunnel.Forward
		case rewrite.Divert:
			p.Verdict = tunnel.Divert
		default:
			p.Verdict = tunnel.Drop
		}
		if res.Verdict != rewrite.Drop {
			bytes[dir][res.Path] += uint64(res.End - res.Start)
		}
		if res.Notice.Kind != rewrite.NoNotice {
			select {
			case d.notices <- res.Notice:
			default:
				d.NoticeDrops.Add(1)
			}
		}
	}
	for dir := range bytes {
		for k, n := range bytes[dir] {
			if n != 0 {
				d.bytes[dir][k].Add(n)
			}
		}
	}
	for u := range upPkts {
		for dir, n := range upPkts[u] {
			if n != 0 {
				d.uplinkPackets[u][dir].Add(n)
				d.uplinkBytes[u][dir].Add(upBytes[u][dir])
			}
		}
	}
}

// uplinkOf returns the uplink whose prefix holds the address at off of
// pkt, or -1.
func uplinkOf(t *rewrite.Table, pkt []byte, off int) int {
	if len(pkt) < ip6.HeaderLen {
		return -1
	}
	return t.UplinkOf(netip.AddrFrom16([16]byte(pkt[off : off+16])))
}

// setUplinkNames names the uplinks, in configuration order, for
// DataplaneStats.
func (d *Dataplane) setUplinkNames(names []string) { d.uplinkNames.Store(&names) }

// ICMPv6 Parameter Problem, unrecognized Next Header (RFC 4443 §3.4).
const (
	icmpParamProblem     = 4
	icmpUnrecognizedNext = 1
)

// isShim6ParamProblem reports whether pkt is an ICMPv6 Parameter Problem
// "unrecognized Next Header" (directly after the fixed header) that quotes
// a Shim6 control message (Next Header 140, P = 0): a peer without Shim6
// answering our I1.
func isShim6ParamProblem(pkt []byte) bool {
	const q = ip6.HeaderLen + 8 // the quoted packet
	if len(pkt) < q+ip6.HeaderLen+3 || pkt[6] != ip6.ProtoICMPv6 {
		return false
	}
	icmp := pkt[ip6.HeaderLen:]
	return icmp[0] == icmpParamProblem && icmp[1] == icmpUnrecognizedNext &&
		pkt[q]>>4 == 6 && pkt[q+6] == shim6.ProtocolNumber && pkt[q+ip6.HeaderLen+2]&0x80 == 0
}

// DataplaneStats implements DataplaneStatsSource: the Rewriter's packet
// and drop counters and the byte counters.
func (d *Dataplane) DataplaneStats() metrics.DataplaneStats {
	ds := metrics.DataplaneStats{Packets: map[metrics.PathKey]uint64{}, Bytes: map[metrics.PathKey]uint64{}, Drops: map[metrics.DropKey]uint64{}}
	st := d.rw.Stats()
	for dir := range rewrite.NumDirections {
		dl := dir.String()
		for k := range rewrite.NumPathKinds {
			key := metrics.PathKey{Direction: dl, Path: k.String()}
			if n := st.Packets[dir][k].Load(); n != 0 {
				ds.Packets[key] += n
			}
			if n := d.bytes[dir][k].Load(); n != 0 {
				ds.Bytes[key] += n
			}
		}
		for r := rewrite.DropMalformed; r < rewrite.NumDropReasons; r++ {
			if n := st.Drops[dir][r].Load(); n != 0 {
				ds.Drops[metrics.DropKey{Direction: dl, Reason: r.String()}] += n
			}
		}
	}
	if np := d.uplinkNames.Load(); np != nil {
		ds.UplinkPackets, ds.UplinkBytes = map[metrics.UplinkKey]uint64{}, map[metrics.UplinkKey]uint64{}
		for u, name := range *np {
			if u >= config.MaxUplinks {
				break
			}
			for dir := range rewrite.NumDirections {
				k := metrics.UplinkKey{Uplink: name, Direction: dir.String()}
				ds.UplinkPackets[k] = d.uplinkPackets[u][dir].Load()
				ds.UplinkBytes[k] = d.uplinkBytes[u][dir].Load()
			}
		}
	}
	ds.NoticeDrops = d.NoticeDrops.Load()
	// The ICMPv6 errors diverted above never reach the Rewriter.
	if n := d.ICMPDiverted.Load(); n != 0 {
		ds.Packets[metrics.PathKey{Direction: rewrite.Inbound.String(), Path: rewrite.PathControl.String()}] += n
	}
	return ds
}

package shim6

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// An I1 reaching a context in I1-SENT, I2-SENT or I2BIS-SENT is answered
// with R2 (crossing I1s, RFC 5533 §7.4, §7.9) only when it comes from
// ULID(peer) or a locator in Ls(peer): its ULID Pair option is not
// authenticated, and the R2 carries CT(local), which would let an
// off-path host forge Keepalives and hide a broken path from REAP. Anyone
// else gets the stateless R1 (§7.9).

// offPathRig is engine A with a context toward site B's host in a given
// state, driven by raw messages from B.
type offPathRig struct {
	t                   *testing.T
	e                   *Engine
	local, peer, peerL2 netip.Addr // A's ULID, B's ULID and B's second locator
	localTag            ContextTag
	i1                  I1 // our last I1
}

func newOffPathRig(t *testing.T, state State) *offPathRig {
	sa, sb, v := verifiedSites(1)
	e, err := NewEngine(simConfig(sa, v, 7, Timers{}))
	if err != nil {
		t.Fatal(err)
	}
	r := &offPathRig{t: t, e: e, local: sa.hosts[0].ULID, peer: sb.hosts[0].ULID, peerL2: sb.hosts[0].Locators[1]}
	a := e.Initiate(simEpoch, r.local, r.peer)
	m, _ := ParseMessage(a.Packets[0].Payload)
	r.i1 = I1(append(Message(nil), m...))
	r.localTag = r.i1.InitiatorTag()
	if state == StateI1Sent {
		return r.check(state)
	}
	// R1 → I2-SENT.
	r.from(r.peer, mustFinish(t, AppendResponderValidator(AppendR1(nil, r.i1.InitiatorNonce(), 77), []byte("validator-16-oct"))))
	if state == StateI2Sent {
		return r.check(state)
	}
	// R2 with B's locator list → ESTABLISHED, then R1bis → I2BIS-SENT.
	c := e.byTag[r.localTag]
	b := AppendR2(nil, 0x5151, c.inonce)
	b = AppendLocatorList(b, 3, []uint8{VerifyHBA, VerifyHBA}, sb.hosts[0].Locators)
	b = AppendCGAPDS(b, []byte(fakePDS(r.peer)))
	r.from(r.peer, mustFinish(t, b))
	r.check(StateEstablished)
	r.from(r.peer, mustFinish(t, AppendResponderValidator(AppendR1bis(nil, 0x5151, 88), []byte("validator-16-oct"))))
	return r.check(StateI2bisSent)
}

func (r *offPathRig) check(want State) *offPathRig {
	r.t.Helper()
	if ci, ok := r.e.Context(r.local, r.peer); !ok || ci.State != want {
		r.t.Fatalf("context state %v, want %v", ci.State, want)
	}
	return r
}

func (r *offPathRig) from(src netip.Addr, msg []byte) []OutPacket {
	return toCopies(r.e.HandleControl(simEpoch, src, r.local, msg))
}

// crossingI1 is the peer's I1 for the pair, with the ULID Pair option.
func (r *offPathRig) crossingI1() []byte {
	b := AppendI1(nil, 0x6161, 0xc0ffee)
	return mustFinish(r.t, AppendULIDPair(b, r.peer, r.local))
}

func TestI1InSetupAnsweredR2OnlyOnPath(t *testing.T) {
	offPath := netip.MustParseAddr("2001:db8:66:1::6")
	for _, state := range []State{StateI1Sent, StateI2Sent, StateI2bisSent} {
		t.Run(state.String(), func(t *testing.T) {
			r := newOffPathRig(t, state)
			var tagBytes [8]byte
			binary.BigEndian.PutUint64(tagBytes[:], uint64(r.localTag))

			// Off-path source: a stateless R1 to it, nothing else.
			out := r.from(offPath, r.crossingI1())
			if len(out) != 1 || out[0].Dst != offPath || out[0].Src != r.local {
				t.Fatalf("off-path I1: %d packets %+v", len(out), out)
			}
			m, err := ParseMessage(out[0].Payload)
			if err != nil || m.Type() != TypeR1 || R1(m).InitiatorNonce() != 0xc0ffee {
				t.Fatalf("off-path I1 answered with %v (%v), want R1 echoing the nonce", m.Type(), err)
			}
			if bytes.Contains(out[0].Payload, tagBytes[2:]) {
				t.Errorf("the R1 to an off-path host carries CT(local) %#x: % x", r.localTag, out[0].Payload)
			}
			if o, _, ok := m.Option(OptResponderValidator); !ok || len(o) == 0 {
				t.Error("R1 without a Responder Validator")
			}
			r.check(state)

			// ULID(peer), and in I2BIS-SENT also a locator of Ls(peer):
			// R2 with CT(local) and the I1's nonce.
			srcs := []netip.Addr{r.peer}
			if state == StateI2bisSent {
				srcs = append(srcs, r.peerL2)
			}
			for _, src := range srcs {
				out = r.from(src, r.crossingI1())
				if len(out) != 1 || out[0].Dst != src {
					t.Fatalf("I1 from %v: %d packets", src, len(out))
				}
				m, _ = ParseMessage(out[0].Payload)
				if m.Type() != TypeR2 {
					t.Fatalf("I1 from %v answered with %v, want R2", src, m.Type())
				}
				// Octets: P = 0 and Type 4, CT(local) at 6–11 (R bit 0),
				// the I1's Initiator Nonce at 12–15 (RFC 5533 §5.7).
				p := out[0].Payload
				if p[offType] != byte(TypeR2) || !bytes.Equal(p[6:12], tagBytes[2:]) || !bytes.Equal(p[12:16], []byte{0, 0xc0, 0xff, 0xee}) {
					t.Errorf("R2 octets % x, want type 4, tag %#x, nonce 0xc0ffee", p[:16], r.localTag)
				}
				r.check(state)
			}
		})
	}
}

package shim6

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
	"net/netip"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/hba"
)

// The CGA cost bound (engine_verify.go): keys above MaxPeerKeyBits or
// with a large exponent are refused with Error 2 before any RSA work, a
// message is verified at most once, signature checks take a token from a
// per-/64 and a site-wide budget, and verified lists are cached.

// countingVerifier counts the calls into the real verifier.
type countingVerifier struct {
	hba.Verifier
	calls int
}

func (c *countingVerifier) VerifyLocators(ulid netip.Addr, pds, sig []byte, gen uint32, locs []netip.Addr, methods []uint8) error {
	c.calls++
	return c.Verifier.VerifyLocators(ulid, pds, sig, gen, locs, methods)
}

// cgaPeer is a remote host with a CGA ULID under 2001:db8:<net>:1::/64 and
// a second CGA locator, both signed (RFC 5533 §5.15.5).
type cgaPeer struct {
	priv    *rsa.PrivateKey // nil: signatures are bogus
	pds     []byte
	locs    []netip.Addr
	methods []uint8
}

func newCGAPeer(t testing.TB, net string, priv *rsa.PrivateKey, pub *rsa.PublicKey) cgaPeer {
	t.Helper()
	ulid, pds, err := hba.GenerateCGA(rand.Reader, pub, netip.MustParsePrefix("2001:db8:"+net+":1::/64"), 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cgaPeer{priv: priv, pds: pds, locs: []netip.Addr{ulid, netip.MustParseAddr("2001:db8:" + net + ":2::9")},
		methods: []uint8{VerifyCGA, VerifyCGA}}
}

// slowKey is a public key with a modulus of exactly bits bits and
// exponent e: as costly to check as a real one, generated at once.
func slowKey(bits, e int) *rsa.PublicKey {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Add(n, big.NewInt(0x1234567))
	return &rsa.PublicKey{N: n, E: e}
}

var testCGAKey = func() func(testing.TB) *rsa.PrivateKey {
	var k *rsa.PrivateKey
	return func(t testing.TB) *rsa.PrivateKey {
		if k == nil {
			var err error
			if k, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
				t.Fatal(err)
			}
		}
		return k
	}
}()

// sig signs gen and the locators, or returns a bogus signature of the
// key's size (16 octets for keys too long to fit one message with it).
func (c cgaPeer) sig(t testing.TB, gen uint32, pub *rsa.PublicKey) []byte {
	if c.priv == nil {
		s := make([]byte, (pub.N.BitLen()+7)/8)
		if len(s) > 600 {
			s = s[:16]
		}
		s[1] = 1
		return s
	}
	s, err := hba.Sign(c.priv, hba.ShimCGATypeTag, hba.ShimSignedMessage(gen, c.locs, c.methods))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// appendCGA adds the Locator List, PDS and signature options.
func (c cgaPeer) appendCGA(b []byte, gen uint32, sig []byte) []byte {
	b = AppendLocatorList(b, gen, c.methods, c.locs)
	b = AppendCGAPDS(b, c.pds)
	return AppendCGASignature(b, sig)
}

// cgaI2 runs I1 → R1 from c's ULID and returns the I2 carrying c's list.
func cgaI2(p *rawPeer, c cgaPeer, sig []byte) []byte {
	p.ulid = c.locs[0]
	rnonce, v := p.i1r1(0)
	b := AppendResponderValidator(AppendI2(nil, p.tag, 0xbbbb, rnonce), v)
	return mustFinish(p.t, c.appendCGA(b, 7, sig))
}

func cgaEngine(t *testing.T, v Verifier) *rawPeer {
	sb := newSite("b", 1)
	e, err := NewEngine(simConfig(sb, v, 42, Timers{}))
	if err != nil {
		t.Fatal(err)
	}
	return &rawPeer{t: t, e: e, now: simEpoch, local: sb.hosts[0].ULID, tag: 0x1234}
}

// cpuPerMessage sends msg n times from src and returns the mean wall time
// per message (the engine is single-threaded, so this is its CPU).
func cpuPerMessage(p *rawPeer, src netip.Addr, msg []byte, n int) time.Duration {
	start := time.Now()
	for range n {
		p.e.HandleControl(p.now, src, p.local, msg)
	}
	return time.Since(start) / time.Duration(n)
}

// maxCPUPerMessage is the bound on one hostile message.
const maxCPUPerMessage = 2 * time.Millisecond

func TestCGAHostileI2Bounded(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pub       *rsa.PublicKey
		why       DropReason
		errorCode bool // answered with Error 2
		maxCalls  int  // Verifier calls over the whole flood
	}{
		// The largest key accepted: verified until the source's budget is spent.
		{"4096-bit key, bogus signature", slowKey(4096, 65537), DropVerifyBudget, false, DefaultSignatureChecksPerSourcePerSecond},
		{"5000-bit key", slowKey(5000, 65537), DropPeerKeyTooLarge, true, 0},
		{"10400-bit key, e = 2^31-1", slowKey(10400, 1<<31-1), DropPeerKeyTooLarge, true, 0},
		{"2048-bit key, e = 2^31-1", slowKey(2048, 1<<31-1), DropPeerKeyTooLarge, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cv := &countingVerifier{}
			p := cgaEngine(t, cv)
			attacker := newCGAPeer(t, "c1", nil, tc.pub)
			i2 := cgaI2(p, attacker, attacker.sig(t, 7, tc.pub))
			// The first message: refused (Error 2 at the first CGA
			// locator's method octet) or verified once and refused.
			out := p.send(p.ulid, i2)
			if tc.errorCode {
				em := ErrorMessage(p.only(out, TypeError))
				if em.Code() != CodeVerificationFailed || int(em.Pointer()) != methodPointer(t, i2, 0) {
					t.Errorf("Error code %v pointer %d, want 2 at locator 0's method", em.Code(), em.Pointer())
				}
			}
			const n = 300
			per := cpuPerMessage(p, p.ulid, i2, n)
			t.Logf("%s: %v per message over %d", tc.name, per, n)
			if per > maxCPUPerMessage {
				t.Errorf("%v per hostile I2, want ≤ %v", per, maxCPUPerMessage)
			}
			if cv.calls > tc.maxCalls {
				t.Errorf("verifier ran %d times for %d messages, want ≤ %d", cv.calls, n+1, tc.maxCalls)
			}
			if got := p.e.Stats().Drops[tc.why]; got < n+1-uint64(tc.maxCalls) {
				t.Errorf("%v drops %d, want ≥ %d", tc.why, got, n+1-tc.maxCalls)
			}
			if p.e.Len() != 0 {
				t.Errorf("%d contexts after a refused flood", p.e.Len())
			}
			// An honest peer on another /64 still gets its context.
			honest := newCGAPeer(t, "c3", testCGAKey(t), &testCGAKey(t).PublicKey)
			p.tag = 0x5678
			hi2 := cgaI2(p, honest, honest.sig(t, 7, &testCGAKey(t).PublicKey))
			p.only(p.send(p.ulid, hi2), TypeR2)
			if ci, ok := p.e.Context(p.local, honest.locs[0]); !ok || ci.State != StateEstablished || len(ci.PeerLocators) != 2 {
				t.Errorf("honest CGA peer: %+v, %v", ci, ok)
			}
		})
	}
}

// A refused list costs one verification, not one more per locator to place
// the Error Pointer; the Pointer still names the failing locator.
func TestCGAVerifiedOncePerMessage(t *testing.T) {
	cv := &countingVerifier{}
	p := cgaEngine(t, cv)
	k := testCGAKey(t)
	c := newCGAPeer(t, "c1", k, &k.PublicKey)
	// The third locator is listed as HBA: the PDS has no Multi-Prefix
	// extension, so that locator is at fault.
	c.locs = append(c.locs, netip.MustParseAddr("2001:db8:c1:3::9"))
	c.methods = append(c.methods, VerifyHBA)
	i2 := cgaI2(p, c, c.sig(t, 7, &k.PublicKey))
	em := ErrorMessage(p.only(p.send(p.ulid, i2), TypeError))
	if cv.calls != 1 {
		t.Errorf("verifier ran %d times for one message, want 1", cv.calls)
	}
	if em.Code() != CodeVerificationFailed || !pointsAtMethod(t, em.Packet(), int(em.Pointer()), 2) {
		t.Errorf("Error code %v pointer %d, want 2 at locator 2's method", em.Code(), em.Pointer())
	}
}

// Honest retransmissions of a verified I2 and Update Request cost no
// verification; a changed list is verified again.
func TestCGAVerifiedListCached(t *testing.T) {
	cv := &countingVerifier{}
	p := cgaEngine(t, cv)
	k := testCGAKey(t)
	c := newCGAPeer(t, "c1", k, &k.PublicKey)
	i2 := cgaI2(p, c, c.sig(t, 7, &k.PublicKey))
	tag := R2(p.only(p.send(p.ulid, i2), TypeR2)).ResponderTag()
	for range 50 {
		p.only(p.send(p.ulid, i2), TypeR2)
	}
	ur := mustFinish(t, c.appendCGA(AppendUpdateRequest(nil, tag, 99), 7, c.sig(t, 7, &k.PublicKey)))
	for range 50 {
		p.only(p.send(p.ulid, ur), TypeUpdateAck)
	}
	if cv.calls != 1 {
		t.Errorf("verifier ran %d times for 101 identical lists, want 1", cv.calls)
	}
	ur = mustFinish(t, c.appendCGA(AppendUpdateRequest(nil, tag, 100), 8, c.sig(t, 8, &k.PublicKey)))
	p.only(p.send(p.ulid, ur), TypeUpdateAck)
	if cv.calls != 2 {
		t.Errorf("a new generation: %d verifier calls, want 2", cv.calls)
	}
}

// Update Requests on the attacker's own context: bogus signatures are
// checked only within the budget, a PDS with an oversized key is refused
// before any RSA work, and the CPU per message stays bounded.
func TestCGAHostileUpdateRequestBounded(t *testing.T) {
	cv := &countingVerifier{}
	p := cgaEngine(t, cv)
	k := testCGAKey(t)
	c := newCGAPeer(t, "c1", k, &k.PublicKey)
	tag := R2(p.only(p.send(p.ulid, cgaI2(p, c, c.sig(t, 7, &k.PublicKey))), TypeR2)).ResponderTag()
	cv.calls = 0
	bogus := make([]byte, 128)
	bogus[1] = 1
	big := c
	big.pds = newCGAPeer(t, "c1", nil, slowKey(10400, 1<<31-1)).pds
	for _, tc := range []struct {
		name string
		c    cgaPeer
		why  DropReason
	}{
		{"bogus signature", c, DropVerifyBudget},
		{"10400-bit key, e = 2^31-1", big, DropPeerKeyTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := p.e.Stats().Drops[tc.why]
			ur := mustFinish(t, tc.c.appendCGA(AppendUpdateRequest(nil, tag, 5), 9, bogus))
			const n = 300
			per := cpuPerMessage(p, p.ulid, ur, n)
			t.Logf("%v per message over %d", per, n)
			if per > maxCPUPerMessage {
				t.Errorf("%v per hostile Update Request, want ≤ %v", per, maxCPUPerMessage)
			}
			if got := p.e.Stats().Drops[tc.why] - before; got < n-DefaultSignatureChecksPerSourcePerSecond {
				t.Errorf("%v drops %d of %d", tc.why, got, n)
			}
		})
	}
	if cv.calls > DefaultSignatureChecksPerSourcePerSecond {
		t.Errorf("verifier ran %d times, want ≤ the per-source budget %d", cv.calls, DefaultSignatureChecksPerSourcePerSecond)
	}
	// The budget refills: a second later the honest list verifies again.
	p.now = p.now.Add(time.Second)
	ur := mustFinish(t, c.appendCGA(AppendUpdateRequest(nil, tag, 6), 10, c.sig(t, 10, &k.PublicKey)))
	p.only(p.send(p.ulid, ur), TypeUpdateAck)
}

// The site-wide budget holds against many sources at once.
func TestCGASiteWideBudget(t *testing.T) {
	cv := &countingVerifier{}
	p := cgaEngine(t, cv)
	pub := slowKey(1024, 65537)
	for i := range 3 * DefaultSignatureChecksPerSecond {
		a := newCGAPeer(t, fmt.Sprintf("%x", 0x1000+i), nil, pub)
		p.tag = ContextTag(0x1000 + i)
		p.send(a.locs[0], cgaI2(p, a, a.sig(t, 7, pub)))
	}
	if cv.calls != DefaultSignatureChecksPerSecond {
		t.Errorf("verifier ran %d times in one instant over %d sources, want the site budget %d",
			cv.calls, 3*DefaultSignatureChecksPerSecond, DefaultSignatureChecksPerSecond)
	}
}

// methodPointer is the Error Pointer (from the IPv6 header) at locator
// i's verification method octet in msg.
func methodPointer(t *testing.T, msg []byte, i int) int {
	t.Helper()
	m, err := ParseMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	o, off, ok := m.Option(OptLocatorList)
	if !ok {
		t.Fatal("no locator list")
	}
	ll, _ := o.LocatorList()
	return IPv6HeaderLen + off + OptionHeaderLen + ll.MethodOffset(i)
}

// A CGA list whose PDS holds no usable RSA key fails without RSA work,
// so it takes no token: cheap garbage cannot drain the budget honest
// CGA peers need.
func TestCGANoRSAKeyTakesNoToken(t *testing.T) {
	cv := &countingVerifier{}
	p := cgaEngine(t, cv)
	k := testCGAKey(t)
	c := newCGAPeer(t, "c1", k, &k.PublicKey)
	c.pds = []byte("not a cga parameter data structure")
	i2 := cgaI2(p, c, c.sig(t, 7, &k.PublicKey))
	for range 50 {
		p.send(p.ulid, i2)
	}
	if cv.calls != 50 || p.e.Stats().Drops[DropVerifyBudget] != 0 {
		t.Errorf("%d verifier calls, %d verify_budget drops; want 50, 0", cv.calls, p.e.Stats().Drops[DropVerifyBudget])
	}
}

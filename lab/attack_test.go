package lab

// End-to-end load and attack test (issue 10 item 12): while a TCP stream
// runs in each direction between h1 and h2, the core floods site 1's
// gateway with malformed Shim6 packets and runs the three control-plane
// attacks, and ISP A of site 1 fails in the middle. Gaps and CPU are
// logged for docs/benchmarks.md, never asserted (no timed assertions).

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/shim6"
)

// attackNet holds the attackers' addresses: the core owns them (on lo),
// and every ISP routes them to the core.
const attackNet = "2001:db8:e"

// attacker is a raw Next-Header-140 socket in the core's namespace bound
// to one source address. Use it only inside inNS(core).
type attacker struct {
	fd   int
	addr netip.Addr
	sent int
}

func newAttacker(addr netip.Addr) (*attacker, error) {
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, shim6.ProtocolNumber)
	if err != nil {
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet6{Addr: addr.As16()}); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	tv := syscall.NsecToTimeval(int64(2 * time.Second))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return &attacker{fd: fd, addr: addr}, nil
}

func (a *attacker) close() { syscall.Close(a.fd) }

func (a *attacker) send(dst netip.Addr, msg []byte) bool {
	a.sent++
	if a.sent%100 == 0 {
		// Let the veths keep up: the messages must reach the engine.
		time.Sleep(5 * time.Millisecond)
	}
	return syscall.Sendto(a.fd, msg, 0, &syscall.SockaddrInet6{Addr: dst.As16()}) == nil
}

// await returns the next control message of type want addressed to a,
// skipping others (up to 4096: the minted contexts probe the minter),
// within the socket timeout.
func (a *attacker) await(want shim6.Type) (shim6.Message, error) {
	buf := make([]byte, 2048)
	for range 4096 {
		n, _, err := syscall.Recvfrom(a.fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("waiting for %v at %v: %w", want, a.addr, err)
		}
		if m, err := shim6.ParseMessage(buf[:n]); err == nil && m.Type() == want {
			return append(shim6.Message(nil), m...), nil
		}
	}
	return nil, fmt.Errorf("no %v at %v", want, a.addr)
}

// drain counts the messages of type t that reached a until the socket
// stays quiet for its timeout (at most 500 messages).
func (a *attacker) drain(t shim6.Type) int {
	buf := make([]byte, 2048)
	n := 0
	for range 500 {
		k, _, err := syscall.Recvfrom(a.fd, buf, 0)
		if err != nil {
			return n
		}
		if m, err := shim6.ParseMessage(buf[:k]); err == nil && m.Type() == t {
			n++
		}
	}
	return n
}

func validator(m shim6.Message) []byte {
	o, _, _ := m.Option(shim6.OptResponderValidator)
	v, _ := o.ResponderValidator()
	return v
}

func finish(b []byte) []byte {
	if err := shim6.FinishMessage(b); err != nil {
		panic(err)
	}
	return b
}

// costlyKey is an RSA public key with a modulus of exactly bits bits and
// exponent e: as costly to check as a real one, made at once.
func costlyKey(bits, e int) *rsa.PublicKey {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	return &rsa.PublicKey{N: n.Add(n, big.NewInt(0x1234567)), E: e}
}

// cgaAttacker is an attacker whose address is a CGA of a costly key.
type cgaAttacker struct {
	addr netip.Addr
	pds  []byte
	sig  []byte // bogus, the key's size (16 octets when that would not fit)
}

func newCGAAttacker(t *testing.T, n int, pub *rsa.PublicKey) cgaAttacker {
	addr, pds, err := hba.GenerateCGA(rand.Reader, pub, netip.MustParsePrefix(fmt.Sprintf("%s:%x::/64", attackNet, n)), 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, (pub.N.BitLen()+7)/8)
	if len(sig) > 512 {
		sig = sig[:16]
	}
	sig[1] = 1
	return cgaAttacker{addr: addr, pds: pds, sig: sig}
}

// attackPlan holds the hostile messages, prepared before the flood: the
// R1 and R1bis they echo stay valid for the validator lifetime (30 s).
type attackPlan struct {
	cgaI2 map[netip.Addr][]byte // attacker → its I2 (one each)
	i2bis [][]byte              // from mint, one per FII
	mint  netip.Addr
}

// prepare runs one I1 → R1 per CGA attacker with dst and gets one R1bis for the
// minter (retrying: the R1bis rate limit may drop the first answers).
func (e *e2e) prepare(cgas []cgaAttacker, mint, dst netip.Addr, perAttack int) (attackPlan, error) {
	plan := attackPlan{cgaI2: map[netip.Addr][]byte{}, mint: mint}
	err := inNS(e.NS(Core), func() error {
		for i, c := range cgas {
			a, err := newAttacker(c.addr)
			if err != nil {
				return err
			}
			defer a.close()
			tag := shim6.ContextTag(0x100 + i)
			a.send(dst, finish(shim6.AppendI1(nil, tag, 0xaaaa)))
			r1m, err := a.await(shim6.TypeR1)
			if err != nil {
				return err
			}
			r1 := shim6.R1(r1m)
			b := shim6.AppendResponderValidator(shim6.AppendI2(nil, tag, 0xbbbb, r1.ResponderNonce()), validator(r1m))
			locs := []netip.Addr{c.addr, netip.MustParseAddr(fmt.Sprintf("%s:ffff::%x", attackNet, i+1))}
			b = shim6.AppendLocatorList(b, 7, []uint8{shim6.VerifyCGA, shim6.VerifyCGA}, locs)
			b = shim6.AppendCGAPDS(b, c.pds)
			plan.cgaI2[c.addr] = finish(shim6.AppendCGASignature(b, c.sig))
		}
		a, err := newAttacker(mint)
		if err != nil {
			return err
		}
		defer a.close()
		const ptag = 0x4242
		payload := make([]byte, 16)
		shim6.PutPayloadHeader(payload, 59, ptag)
		var rbm shim6.Message
		for try := 0; rbm == nil && try < 5; try++ {
			a.send(dst, payload)
			rbm, err = a.await(shim6.TypeR1bis)
		}
		if err != nil {
			return err
		}
		rb := shim6.R1bis(rbm)
		for i := range perAttack {
			b := shim6.AppendI2bis(nil, shim6.ContextTag(0x1000+i), uint32(i), rb.ResponderNonce(), ptag)
			b = shim6.AppendResponderValidator(b, validator(rbm))
			plan.i2bis = append(plan.i2bis, finish(shim6.AppendFII(b, uint32(i+1))))
		}
		return nil
	})
	return plan, err
}

// attackReport is what fire did.
type attackReport struct {
	cgaI2, mintI2bis, offPathI1 int // messages sent
	offPathR2                   int // R2s that reached the off-path host (must be 0)
	err                         error
}

// fire sends the plan's messages to dst (one of h1's locators), each CGA
// I2 perAttack times, and perAttack off-path I1s naming the pair h2 → h1
// in their ULID Pair option, from the core.
func (e *e2e) fire(plan attackPlan, offPath, dst, h1, h2 netip.Addr, perAttack int) (r attackReport) {
	r.err = inNS(e.NS(Core), func() error {
		for addr, i2 := range plan.cgaI2 {
			a, err := newAttacker(addr)
			if err != nil {
				return err
			}
			defer a.close()
			for range perAttack {
				if a.send(dst, i2) {
					r.cgaI2++
				}
			}
		}
		a, err := newAttacker(plan.mint)
		if err != nil {
			return err
		}
		defer a.close()
		for _, m := range plan.i2bis {
			if a.send(dst, m) {
				r.mintI2bis++
			}
		}
		o, err := newAttacker(offPath)
		if err != nil {
			return err
		}
		defer o.close()
		for i := range perAttack {
			i1 := finish(shim6.AppendULIDPair(shim6.AppendI1(nil, shim6.ContextTag(0x2000+i), uint32(i)), h2, h1))
			if o.send(dst, i1) {
				r.offPathI1++
			}
		}
		r.offPathR2 = o.drain(shim6.TypeR2)
		return nil
	})
	return r
}

// topUpI2bis resends the plan's I2bis to dst, 100 at a time with a pause
// the control loop can keep up with, until done reports true.
func (e *e2e) topUpI2bis(plan attackPlan, dst netip.Addr, done func() bool) error {
	for i := 0; i < len(plan.i2bis) && !done(); i += 100 {
		err := inNS(e.NS(Core), func() error {
			a, err := newAttacker(plan.mint)
			if err != nil {
				return err
			}
			defer a.close()
			for _, m := range plan.i2bis[i:min(i+100, len(plan.i2bis))] {
				a.send(dst, m)
				time.Sleep(500 * time.Microsecond)
			}
			return nil
		})
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // the next snapshot publishes the counters
	}
	return nil
}

// procStat returns the CPU time and resident memory of process pid.
func procStat(t *testing.T, pid int) (cpu time.Duration, rss int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, pages * int64(os.Getpagesize())
}

// TestIntegrationE2EAttack: malformed packets, the three control-plane
// attacks and a provider failure at once. The gateway keeps running, the
// sessions survive, memory stays bounded, and every kind of hostile input
// is counted under its drop reason.
func TestIntegrationE2EAttack(t *testing.T) {
	for _, fp := range []string{"ebpf", "off"} {
		for _, mode := range []FailMode{FailLink, FailBlackhole} {
			t.Run(string(mode)+"/fastpath="+fp, func(t *testing.T) { attackDuringFailure(t, mode, fp) })
		}
	}
}

func attackDuringFailure(t *testing.T, mode FailMode, fastpath string) {
	e := upE2EFastpath(t, fastpath)
	h1, h2 := e.b1[0], e.b2[0]
	// Attackers: CGAs of a 5000-bit key (refused by size), of a 4096-bit
	// key with e = 2^31−1 (refused by exponent) and of a 4096-bit key with
	// bogus signatures (checked within the budget); an I2bis minter; an
	// off-path host.
	cgas := []cgaAttacker{
		newCGAAttacker(t, 1, costlyKey(5000, 65537)),
		newCGAAttacker(t, 2, costlyKey(4096, 1<<31-1)),
		newCGAAttacker(t, 3, costlyKey(4096, 65537)),
	}
	mint := netip.MustParseAddr(attackNet + ":4::1")
	offPath := netip.MustParseAddr(attackNet + ":5::1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range append([]netip.Addr{mint, offPath}, cgas[0].addr, cgas[1].addr, cgas[2].addr) {
		if _, err := e.Exec(ctx, Core, "ip", "-6", "addr", "add", a.String()+"/128", "dev", "lo", "nodad"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Exec(ctx, Core, "ip", "link", "set", "lo", "up"); err != nil {
		t.Fatal(err)
	}

	s1 := e.stream(StreamConfig{Name: "h1->h2", From: H1, Src: h1, To: H2, Dst: h2, Port: 5661})
	s2 := e.stream(StreamConfig{Name: "h2->h1", From: H2, Src: h2, To: H1, Dst: h1, Port: 5662})
	e.waitContexts("before the attack", GW1, [][2]netip.Addr{{h1, h2}}, established)
	waitMore(t, s1, 0)
	waitMore(t, s2, 0)
	pid := e.gatewayPID(GW1)
	cpu0, rss0 := procStat(t, pid)
	drops := func(reason string) float64 {
		return e.metric(GW1, "shim6gw_control_dropped_messages_total", `reason="`+reason+`"`)
	}
	before := map[string]float64{}
	reasons := []string{"malformed", "peer_key_too_large", "verify_budget", "source_quota", "rate_limited"}
	for _, r := range reasons {
		before[r] = drops(r)
	}

	const perAttack = 2000
	plan, err := e.prepare(cgas, mint, h1, perAttack)
	if err != nil {
		t.Fatalf("attack setup: %v", err)
	}
	start := time.Now()
	attacks := make(chan attackReport, 1)
	go func() { attacks <- e.fire(plan, offPath, h1, h1, h2, perAttack) }()
	// ISP A of site 1 fails while the flood and the attacks run.
	failed := make(chan time.Time, 1)
	go func() {
		time.Sleep(2 * time.Second)
		fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer fcancel()
		if err := e.Fail(fctx, ISPA1, mode); err != nil {
			t.Errorf("fail ISP A1: %v", err)
		}
		failed <- time.Now()
	}()
	// Malformed packets at both of h1's locators (the P_A one is cut off
	// once ISP A fails) and a LAN address outside the book.
	const nMalformed = 100_000
	sent := e.flood([]netip.Addr{h1, e.HostAddrs(H1)[1], Site1.A.HostAddr()}, nMalformed)
	floodTime := time.Since(start)
	rep := <-attacks
	failAt := <-failed
	if rep.err != nil {
		t.Fatalf("attack: %v", rep.err)
	}
	t.Logf("injected %d malformed packets in %v (%.0f packets/s), %d CGA-heavy I2, %d I2bis, %d off-path I1",
		sent, floodTime.Round(time.Millisecond), float64(sent)/floodTime.Seconds(), rep.cgaI2, rep.mintI2bis, rep.offPathI1)
	// The sessions survive the failure and the attack.
	n1, n2 := s1.Tracker.Bytes(), s2.Tracker.Bytes()
	waitMore(t, s1, n1)
	waitMore(t, s2, n2)
	e.waitContexts("after the failure", GW1, [][2]netip.Addr{{h1, h2}}, onUplink(Site1.B.LAN))
	now := time.Now()
	t.Logf("gap after ISP A failed (%s): h1->h2 %v, h2->h1 %v", mode,
		s1.Tracker.MaxGapAfter(failAt, now).Len().Round(time.Millisecond), s2.Tracker.MaxGapAfter(failAt, now).Len().Round(time.Millisecond))
	checkAlive(t, s1, s2)

	if got := e.gatewayPID(GW1); got != pid {
		t.Fatalf("gw1 daemon pid %d, was %d: it restarted", got, pid)
	}
	if _, err := e.AdminGet(ctx, GW1, "/healthz"); err != nil {
		t.Errorf("gw1 not healthy after the attack: %v", err)
	}
	// The flood may overflow the control loop's queue (counted), and
	// ISP A's failure cuts h1's ULID off, so that fewer I2bis than the
	// quota may have reached the engine: with ISP A back, a fresh R1bis
	// and the I2bis again, paced, until the quota refuses one (bounded).
	if err := e.Restore(ctx, ISPA1); err != nil {
		t.Fatalf("restore ISP A1: %v", err)
	}
	plan, err = e.prepare(nil, mint, h1, perAttack)
	if err != nil {
		t.Fatalf("I2bis top-up setup: %v", err)
	}
	if err := e.topUpI2bis(plan, h1, func() bool { return drops("source_quota") > before["source_quota"] }); err != nil {
		t.Fatalf("I2bis top-up: %v", err)
	}
	cpu1, rss1 := procStat(t, pid)
	t.Logf("gw1 CPU %v over %v (%.0f %% of one core), RSS %d → %d MiB",
		(cpu1 - cpu0).Round(time.Millisecond), time.Since(start).Round(time.Millisecond),
		100*(cpu1-cpu0).Seconds()/time.Since(start).Seconds(), rss0>>20, rss1>>20)
	// 2000 I2bis must not leave 2000 contexts: at most the per-locator
	// quota plus the streams' own.
	if rss1-rss0 > 64<<20 {
		t.Errorf("gw1 RSS grew by %d MiB under attack", (rss1-rss0)>>20)
	}
	if fastpath != "off" && e.metric(GW1, "shim6gw_fastpath_packets_total", `path="fast"`) == 0 {
		t.Error("the fast path forwarded nothing: the streams took the TUN path")
	}
	cs, err := e.Contexts(ctx, GW1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gw1 holds %d contexts after %d I2bis", len(cs), rep.mintI2bis)
	if len(cs) > shim6.DefaultMaxContextsPerPeerLocator+4 {
		t.Errorf("gw1 holds %d contexts after the I2bis flood, want ≤ %d", len(cs), shim6.DefaultMaxContextsPerPeerLocator+4)
	}
	if rep.offPathR2 != 0 {
		t.Errorf("the off-path host received %d R2s (CT(local) leaked)", rep.offPathR2)
	}
	// Every kind of hostile input is counted under its reason. Counters
	// are published with the next snapshot: poll, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range reasons[:4] {
		for drops(r) == before[r] && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if drops(r) == before[r] {
			t.Errorf("no %s drops counted", r)
		}
	}
	t.Logf("gw1 drop counters after the attack:\n%s", e.nonZero(GW1, "dropped", `type="i2bis"`))
}

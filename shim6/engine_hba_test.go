package shim6

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/shim6gw/shim6gw/hba"
)

// hbaVerifier is the verifier the gateway plugs in.
type hbaVerifier = hba.Verifier

// hbaSite makes a site whose hosts are real HBA-only sets over the LAN /64
// of each uplink.
func hbaSite(t testing.TB, x string, n int, seed uint64) site {
	s := newSite(x, 0)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	prefixes := []netip.Prefix{
		netip.MustParsePrefix(fmt.Sprintf("2001:db8:%s1:1::/64", x)),
		netip.MustParsePrefix(fmt.Sprintf("2001:db8:%s2:1::/64", x)),
	}
	for range n {
		set, err := hba.GenerateHBA(r, prefixes, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.hosts = append(s.hosts, LocalHost{ULID: set.Addresses[0], Locators: set.Addresses, PDS: set.PDS(0)})
	}
	return s
}

func TestSimRealHBA(t *testing.T) {
	sa, sb := hbaSite(t, "a", 1, 1), hbaSite(t, "b", 1, 2)
	net, a, b := simPair(t, 50, sa, sb, hbaVerifier{}, Timers{}, Timers{})
	ua, ub := sa.hosts[0].ULID, sb.hosts[0].ULID
	a.apply(a.e.Initiate(net.now, ua, ub))
	net.runFor(time.Second)
	wantTypes(t, net, "A>B I1", "B>A R1", "A>B I2", "B>A R2")
	checkPair(t, a, b, ua, ub)
	cb, _ := b.e.Context(ub, ua)
	if len(cb.PeerLocators) != 2 || cb.PeerLocators[1] != sa.hosts[0].Locators[1] {
		t.Fatalf("B's verified Ls(peer) = %v", cb.PeerLocators)
	}
	// Failover onto the HBA-verified second locators.
	net.flow(a, ua, b, ub, 100*time.Millisecond, net.now.Add(time.Minute))
	net.runFor(5 * time.Second)
	net.rules = blackhole("2001:db8:a1::/48")
	a.apply(a.e.UplinkDown(net.now, "upa1"))
	net.runFor(5 * time.Second)
	ca, _ := a.e.Context(ua, ub)
	cb, _ = b.e.Context(ub, ua)
	if ca.LocalLocator != sa.hosts[0].Locators[1] || cb.PeerLocator != sa.hosts[0].Locators[1] {
		t.Errorf("after failover A sends from %v, B to %v; want %v", ca.LocalLocator, cb.PeerLocator, sa.hosts[0].Locators[1])
	}
}

func TestSimRealHBAForgedLocator(t *testing.T) {
	sa, sb := hbaSite(t, "a", 1, 3), hbaSite(t, "b", 1, 4)
	forged := sa.hosts[0]
	// Same prefix as the genuine second locator, another interface ID: not
	// in the HBA set.
	f := forged.Locators[1].As16()
	f[15] ^= 1
	forged.Locators = []netip.Addr{forged.Locators[0], netip.AddrFrom16(f)}
	net := newSimNet(t, 51)
	cfgA := simConfig(sa, hbaVerifier{}, 1, Timers{})
	cfgA.Hosts = []LocalHost{forged}
	a := net.addNode("A", cfgA)
	b := net.addNode("B", simConfig(sb, hbaVerifier{}, 2, Timers{}))
	a.apply(a.e.Initiate(net.now, forged.ULID, sb.hosts[0].ULID))
	net.runFor(2 * time.Second)
	wantTypes(t, net, "A>B I1", "B>A R1", "A>B I2", "B>A Error")
	if b.e.Len() != 0 {
		t.Error("B created a context for a forged HBA locator")
	}
	em, _ := ParseMessage(net.log[3].msg)
	if ErrorMessage(em).Code() != CodeVerificationFailed {
		t.Errorf("error code %v", ErrorMessage(em).Code())
	}
	// The Pointer names the forged locator's verification method octet.
	q := ErrorMessage(em).Packet()
	if ptr := int(ErrorMessage(em).Pointer()); ptr >= len(q) || q[ptr] != VerifyHBA || !pointsAtMethod(t, q, ptr, 1) {
		t.Errorf("pointer %d does not point at locator 1's method", ptr)
	}
}

// BenchmarkHandshakeHBA is BenchmarkHandshake with real HBA verification
// of both locator lists (Sec 0, two locators each).
func BenchmarkHandshakeHBA(b *testing.B) {
	benchHandshakes(b, hbaSite(b, "a", 1, 1), hbaSite(b, "b", 1, 2), hbaVerifier{})
}

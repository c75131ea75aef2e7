package fastpath

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/shim6gw/shim6gw/rewrite"
	"github.com/shim6gw/shim6gw/shim6"
)

// manyContexts is siteConfig with n more contexts on their ULID pairs,
// as an I2bis flood leaves them.
func manyContexts(n int) rewrite.Config {
	cfg := siteConfig(false, false)
	for i := range n {
		a := netip.MustParseAddr("2001:db8:c:1::").As16()
		a[12], a[13], a[14], a[15] = 0xee, byte(i>>16), byte(i>>8), byte(i)
		peer := netip.AddrFrom16(a)
		tag := shim6.ContextTag(0x10000 + i)
		cfg.Contexts = append(cfg.Contexts, rewrite.ContextConfig{
			LocalULID: hostULID, PeerULID: peer, LocalTag: tag, PeerTag: tag,
			LocalLocator: hostULID, PeerLocator: peer, Stamps: new(rewrite.Stamps),
		})
	}
	return cfg
}

// BenchmarkApplyOneMore is the publish of an I2bis flood: the table grows
// by one context per Apply.
func BenchmarkApplyOneMore(b *testing.B) {
	p := loadTestRun(b)
	const n = 1024
	full := manyContexts(n)
	tabs := make([]*rewrite.Table, 2)
	cfgs := make([]rewrite.Config, 2)
	for i := range 2 {
		cfgs[i] = full
		cfgs[i].Contexts = full.Contexts[:len(full.Contexts)-1+i]
		t, err := rewrite.NewTable(cfgs[i])
		if err != nil {
			b.Fatal(err)
		}
		tabs[i] = t
	}
	b.ResetTimer()
	for i := range b.N {
		if err := p.Maps().Apply(cfgs[i%2], tabs[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewTable is the TUN path's share of the same publish.
func BenchmarkNewTable(b *testing.B) {
	cfg := manyContexts(1024)
	for range b.N {
		if _, err := rewrite.NewTable(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestApplyRandomTablesMirrorExactly publishes random tables in a row
// (contexts added, removed, failed over, a ULID pair moving to another
// tag, forks, stamps kept or renewed, sites and fallback changing) and
// checks after each that the kernel maps hold exactly what a mirror built
// from scratch would, with one stamp slot per rewrite.Stamps.
func TestApplyRandomTablesMirrorExactly(t *testing.T) {
	p := loadTestRun(t)
	rng := rand.New(rand.NewPCG(7, 11))
	addr := func(prefix string, i int) netip.Addr {
		a := netip.MustParseAddr(prefix).As16()
		a[15] = byte(i + 1)
		return netip.AddrFrom16(a)
	}
	stamps := map[uint64]*rewrite.Stamps{}
	slotOf := map[*rewrite.Stamps]uint32{}
	for round := range 300 {
		cfg := siteConfig(false, false)
		cfg.Contexts = nil
		if rng.IntN(4) == 0 {
			cfg.SitePrefixes = cfg.SitePrefixes[:1]
		}
		if rng.IntN(3) == 0 {
			cfg.Fallback = append(cfg.Fallback, rewrite.FallbackEntry{ULID: addr("2001:db8:a:1::100", rng.IntN(3)), Locator: addr("2001:db8:b:1::100", rng.IntN(3))})
		}
		pairs := map[[2]netip.Addr]bool{}
		for tag := range uint64(12) {
			if rng.IntN(3) == 0 {
				continue
			}
			local, peer := addr("2001:db8:a:1::", rng.IntN(3)), addr("2001:db8:c:1::", rng.IntN(4))
			cc := rewrite.ContextConfig{
				LocalULID: local, PeerULID: peer, LocalTag: shim6.ContextTag(tag + 1), PeerTag: shim6.ContextTag(rng.IntN(3) + 1),
				LocalLocator: local, PeerLocator: peer,
				InboundOnly: rng.IntN(5) == 0,
			}
			if !cc.InboundOnly {
				if pairs[[2]netip.Addr{local, peer}] {
					continue
				}
				pairs[[2]netip.Addr{local, peer}] = true
			}
			if rng.IntN(2) == 0 {
				cc.LocalLocator = addr("2001:db8:b:1::", rng.IntN(3))
				cc.LocalLocators = []netip.Addr{local, cc.LocalLocator}
			}
			if rng.IntN(2) == 0 {
				cc.PeerLocators = []netip.Addr{peer, addr("2001:db8:d:1::", rng.IntN(3))}
				cc.PeerLocator = cc.PeerLocators[rng.IntN(2)]
			}
			if st := stamps[tag]; st != nil && rng.IntN(4) != 0 {
				cc.Stamps = st
			} else if st := stamps[uint64(rng.IntN(12))]; st != nil && rng.IntN(8) == 0 {
				cc.Stamps = st // shared with another context
			}
			cfg.Contexts = append(cfg.Contexts, cc)
		}
		tab, err := rewrite.NewTable(cfg)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := p.Maps().Apply(cfg, tab); err != nil {
			t.Fatalf("round %d: apply: %v", round, err)
		}
		clear(stamps)
		distinct := map[*rewrite.Stamps]bool{}
		wantTag := map[uint64]fastpathInCtx{}
		wantPair := map[fastpathPairKey]fastpathOutCtx{}
		wantLocs := map[locKey]bool{}
		for _, cc := range cfg.Contexts {
			c := tab.LookupTag(cc.LocalTag)
			tag := uint64(cc.LocalTag)
			stamps[tag-1] = c.Stamps()
			distinct[c.Stamps()] = true
			wantTag[tag] = fastpathInCtx{LocalUlid: cc.LocalULID.As16(), PeerUlid: cc.PeerULID.As16()}
			for _, k := range addLocs(addLocs(nil, tag, 0, c.Config().LocalLocator, c.Config().LocalLocators), tag, 1, c.Config().PeerLocator, c.Config().PeerLocators) {
				wantLocs[k] = true
			}
			if !cc.InboundOnly {
				var ph [8]byte
				shim6.PutPayloadHeader(ph[:], 0, cc.PeerTag)
				oc := fastpathOutCtx{LocalLoc: cc.LocalLocator.As16(), PeerLoc: cc.PeerLocator.As16(), PeerTag: [6]uint8(ph[2:]), Mtu: uint32(c.MTU())}
				if c.Shimmed() {
					oc.Shimmed = 1
				}
				wantPair[fastpathPairKey{Local: cc.LocalULID.As16(), Peer: cc.PeerULID.As16()}] = oc
			}
		}
		// Slots: one per Stamps, the same in both maps, kept while the
		// Stamps live.
		slotTaken := map[uint32]*rewrite.Stamps{}
		var k uint64
		var in fastpathInCtx
		gotTag := map[uint64]fastpathInCtx{}
		for it := p.objs.ByTag.Iterate(); it.Next(&k, &in); {
			st := tab.LookupTag(shim6.ContextTag(k))
			if st == nil {
				t.Fatalf("round %d: kernel has tag %#x the table lacks", round, k)
			}
			if o, ok := slotTaken[in.Slot]; ok && o != st.Stamps() {
				t.Fatalf("round %d: slot %d shared by two stamps", round, in.Slot)
			}
			slotTaken[in.Slot] = st.Stamps()
			if s, ok := slotOf[st.Stamps()]; ok && s != in.Slot {
				t.Fatalf("round %d: tag %#x moved from slot %d to %d with the same stamps", round, k, s, in.Slot)
			}
			slotOf[st.Stamps()] = in.Slot
			in.Slot = 0
			gotTag[k] = in
		}
		var pk fastpathPairKey
		var out fastpathOutCtx
		gotPair := map[fastpathPairKey]fastpathOutCtx{}
		for it := p.objs.ByPair.Iterate(); it.Next(&pk, &out); {
			c := tab.LookupPair(netip.AddrFrom16(pk.Local), netip.AddrFrom16(pk.Peer))
			if c == nil || slotOf[c.Stamps()] != out.Slot {
				t.Fatalf("round %d: pair %v has slot %d, not its context's", round, pk, out.Slot)
			}
			out.Slot = 0
			gotPair[pk] = out
		}
		var lk locKey
		var one uint8
		gotLocs := map[locKey]bool{}
		for it := p.objs.Locators.Iterate(); it.Next(&lk, &one); {
			gotLocs[lk] = true
		}
		if !maps.Equal(gotTag, wantTag) || !maps.Equal(gotPair, wantPair) || !maps.Equal(gotLocs, wantLocs) {
			t.Fatalf("round %d: kernel maps differ from the table:\ntags %v\nwant %v\npairs %v\nwant %v\nlocators %d, want %d",
				round, gotTag, wantTag, gotPair, wantPair, len(gotLocs), len(wantLocs))
		}
		if len(p.maps.slots) != len(distinct) || len(p.maps.free)+len(p.maps.slots) != int(p.maps.next) {
			t.Fatalf("round %d: %d slots held, %d free, %d used so far; want %d held", round, len(p.maps.slots), len(p.maps.free), p.maps.next, len(distinct))
		}
		var fbk [16]byte
		nfb := 0
		for it := p.objs.FallbackLocs.Iterate(); it.Next(&fbk, &one); {
			nfb++
		}
		fbWant := map[netip.Addr]bool{}
		for _, e := range cfg.Fallback {
			fbWant[e.Locator] = true
		}
		if nfb != len(fbWant) {
			t.Fatalf("round %d: %d fallback locators in the kernel, want %d", round, nfb, len(fbWant))
		}
		var lpm fastpathLpmKey
		nsites := 0
		for it := p.objs.Sites.Iterate(); it.Next(&lpm, &one); {
			nsites++
		}
		if nsites != len(cfg.SitePrefixes) {
			t.Fatalf("round %d: %d site prefixes in the kernel, want %d", round, nsites, len(cfg.SitePrefixes))
		}
	}
}

// BenchmarkHarvest is one observe round's fold of the stamps of 1024
// contexts.
func BenchmarkHarvest(b *testing.B) {
	p := loadTestRun(b)
	cfg := manyContexts(1024)
	t, err := rewrite.NewTable(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Maps().Apply(cfg, t); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		p.Maps().Harvest(int64(i))
	}
}

// TestMapsSizedByMaxContexts loads the program for 1024 and for the
// default number of contexts: the context maps and stamp slots follow,
// and the test logs what the kernel charges for them (docs/operations.md,
// "Memory").
func TestMapsSizedByMaxContexts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fastpath: loading eBPF needs root")
	}
	for _, n := range []int{1024, MaxContexts} {
		p, err := Load(Options{MaxContexts: n, testRun: true})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for name, want := range map[string]int{"by_tag": n, "by_pair": n, "locators": 8 * n, "stamps": 4 * n} {
			m := map[string]*ebpf.Map{"by_tag": p.objs.ByTag, "by_pair": p.objs.ByPair, "locators": p.objs.Locators, "stamps": p.objs.Stamps}[name]
			if int(m.MaxEntries()) != want {
				t.Errorf("%d contexts: %s holds %d, want %d", n, name, m.MaxEntries(), want)
			}
		}
		for _, m := range []*ebpf.Map{p.objs.ByTag, p.objs.ByPair, p.objs.Locators, p.objs.Stamps, p.objs.FallbackLocs, p.objs.Sites} {
			total += memlock(t, m)
		}
		if p.maps.maxSlots != uint32(n) {
			t.Errorf("%d contexts: %d stamp slots", n, p.maps.maxSlots)
		}
		t.Logf("%d contexts: the maps take %d MiB of kernel memory", n, total>>20)
		p.Close()
	}
}

// memlock is the kernel memory charged for m (fdinfo's memlock).
func memlock(t *testing.T, m *ebpf.Map) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", m.FD()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "memlock:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

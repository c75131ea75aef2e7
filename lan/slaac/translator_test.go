package slaac

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// send sends one outbound packet from host and returns the verdict and
// the source it left with.
func (f *fixture) send(host [16]byte) (Verdict, [16]byte) {
	buf, s, e := place(buildPacket(addr16(host), peer, protoUDP, udpDgram(4)))
	v := f.tr.Outbound(buf, s, e, f.now)
	return v, [16]byte(buf[s+8 : s+24])
}

func TestMappingsOnePerAddressStableAcrossRestart(t *testing.T) {
	f := newFixture(t, nil)
	_, a := f.send(hostStable.As16())
	_, b := f.send(hostTemp.As16())
	if a == b {
		t.Fatal("stable and temporary address share an entry")
	}
	if a != f.ulid(4).As16() || b != f.ulid(5).As16() {
		t.Errorf("entries %v %v, want the pool's first two", addr16(a), addr16(b))
	}
	f.now += int64(time.Minute)
	if _, again := f.send(hostStable.As16()); again != a {
		t.Error("same host, other entry")
	}
	f.tr.Save() // what Run does a second after a new mapping
	f.restart()
	for host, want := range map[[16]byte][16]byte{hostStable.As16(): a, hostTemp.As16(): b} {
		if _, got := f.send(host); got != want {
			t.Errorf("after restart %v maps to %v, want %v", addr16(host), addr16(got), addr16(want))
		}
	}
	ms := f.tr.Mappings()
	if len(ms) != 2 || ms[0].Host != hostStable || ms[0].ULID != f.ulid(4) || ms[0].Entry != 4 {
		t.Errorf("mappings %+v", ms)
	}
}

func TestIdleExpiryReturnsEntryAndRemembersHost(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Entries = 2 })
	_, a := f.send(hostStable.As16())
	f.send(hostTemp.As16())
	f.now += int64(3 * time.Hour)
	f.send(hostTemp.As16()) // the temporary address stays busy
	f.now += int64(2 * time.Hour)
	if n := f.tr.Expire(f.now); n != 1 {
		t.Fatalf("%d mappings expired, want the idle stable one", n)
	}
	if st := f.tr.Stats(); st.Mappings != 1 || st.Expired != 1 {
		t.Errorf("stats %+v", st)
	}
	// Inbound to the expired entry is dropped, the host coming back gets
	// its entry again.
	buf, s, e := place(buildPacket(peer, addr16(a), protoTCP, tcpSeg(1)))
	if v := f.tr.Inbound(buf, s, e, f.now); v != Drop {
		t.Errorf("inbound to expired mapping: %v", v)
	}
	if _, again := f.send(hostStable.As16()); again != a {
		t.Errorf("returning host got %v, want its old entry %v", addr16(again), addr16(a))
	}
}

func TestPoolExhaustionAndRateLimitRefuse(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Entries, c.NewMappingsBurst, c.NewMappingsPerSecond = 3, 2, 1 })
	host := hostStable.As16()
	verdicts := make([]Verdict, 0, 4)
	for i := range 4 {
		host[15] = byte(i + 1)
		v, _ := f.send(host)
		verdicts = append(verdicts, v)
	}
	if verdicts[0] != Translated || verdicts[1] != Translated || verdicts[2] != Drop || verdicts[3] != Drop {
		t.Fatalf("verdicts %v: want burst 2 then rate-limited", verdicts)
	}
	f.now += int64(5 * time.Second)
	host[15] = 10
	if v, _ := f.send(host); v != Translated {
		t.Fatalf("after refill: %v", v)
	}
	host[15] = 11
	if v, _ := f.send(host); v != Drop {
		t.Fatalf("pool of 3 gave a fourth entry")
	}
	st := f.tr.Stats()
	if st.Refused[RefusedRateLimited] != 2 || st.Refused[RefusedPoolExhausted] != 1 || st.DroppedOut != 3 || st.Mappings != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestRunSavesSoonAfterNewMappingAndOnStop(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.tr.Run(ctx, time.Hour); close(done) }()
	f.send(hostStable.As16())
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(f.cfg.StateFile)
		if strings.Contains(string(b), hostStable.String()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state file not written after a new mapping: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestCorruptStateFileMovedAside(t *testing.T) {
	f := newFixture(t, nil)
	if err := os.WriteFile(f.cfg.StateFile, []byte("[[["), 0o600); err != nil {
		t.Fatal(err)
	}
	f.restart()
	if _, err := os.Stat(f.cfg.StateFile + ".bad"); err != nil {
		t.Error(err)
	}
}

func TestConfigValidateNamesKeys(t *testing.T) {
	c := DefaultConfig()
	c.Prefix = sitePrefixes[0]
	c.FirstEntry, c.IdleTimeout = 9, time.Second
	err := c.Validate("lan.slaac_prefix", "lan.slaac", 8, sitePrefixes[0])
	for _, k := range []string{"lan.slaac_prefix", "lan.slaac.first_entry", "lan.slaac.idle_timeout"} {
		if err == nil || !strings.Contains(err.Error(), k+":") {
			t.Errorf("error %v does not name %s", err, k)
		}
	}
}

// TestInPoolIsThePoolsULIDs: the ULIDs of pool entries 4..7, mapped or
// not, and nothing else (the kernel fast path keeps them off).
func TestInPoolIsThePoolsULIDs(t *testing.T) {
	f := newFixture(t, nil)
	for e := range 8 {
		if got := f.tr.InPool(f.ulid(e)); got != (e >= 4) {
			t.Errorf("entry %d: InPool %v", e, got)
		}
	}
	if f.tr.InPool(hostStable) || f.tr.InPool(peer) {
		t.Error("a host or peer address counted as a pool ULID")
	}
}

package rewrite_test

import (
	"fmt"
	"net/netip"

	"github.com/shim6gw/shim6gw/rewrite"
)

// Example shows the data path: the control plane publishes a table, a
// worker rewrites a packet read with 32 bytes of headroom.
func Example() {
	tab, err := rewrite.NewTable(rewrite.Config{
		SitePrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a:1::/64")},
		Uplinks:      []rewrite.Uplink{{Prefix: netip.MustParsePrefix("2001:db8:b::/48"), MTU: 1500}},
		Contexts: []rewrite.ContextConfig{{
			LocalULID: netip.MustParseAddr("2001:db8:a:1::10"), PeerULID: netip.MustParseAddr("2001:db8:c:1::20"),
			LocalTag: 0x0123456789ab, PeerTag: 0x2a5b3c4d5e6f,
			LocalLocator: netip.MustParseAddr("2001:db8:b:1::10"), PeerLocator: netip.MustParseAddr("2001:db8:d:1::20"),
		}},
	})
	if err != nil {
		panic(err)
	}
	r := rewrite.NewRewriter(rewrite.RewriterConfig{})
	r.Publish(tab)

	// An empty UDP datagram from the host, read at offset 32.
	buf := make([]byte, 32+48)
	pkt := buf[32:]
	pkt[0], pkt[5], pkt[6] = 0x60, 8, 17
	copy(pkt[8:24], netip.MustParseAddr("2001:db8:a:1::10").AsSlice())
	copy(pkt[24:40], netip.MustParseAddr("2001:db8:c:1::20").AsSlice())

	res := r.Process(rewrite.Auto, buf, 32, len(buf), 0)
	out := buf[res.Start:res.End]
	fmt.Println(res.Verdict, res.Path, res.Start, len(out))
	fmt.Printf("next header %d, payload header % x\n", out[6], out[40:48])
	// Output:
	// forward outbound_shim 24 56
	// next header 140, payload header 11 00 aa 5b 3c 4d 5e 6f
}

package gateway

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// forwardFilters lists what in this network namespace would inspect the
// packets the kernel fast path forwards: nftables base chains of the ip6,
// inet and netdev families at prerouting, forward, postrouting or
// ingress that hold a rule or drop by policy, and legacy ip6tables
// tables. The program redirects at TC ingress, before those hooks, so it
// would bypass them; dataplane.fastpath auto then keeps the TUN path.
func forwardFilters() ([]string, error) {
	var found []string
	// thread-self: the namespace of this (locked) thread, not the process's.
	if b, err := os.ReadFile("/proc/thread-self/net/ip6_tables_names"); err == nil {
		for _, name := range strings.Fields(string(b)) {
			found = append(found, "ip6tables (legacy) table "+name)
		}
	}
	c, err := nftables.New()
	if err != nil {
		return found, fmt.Errorf("nftables: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return found, fmt.Errorf("nftables: %w", err)
	}
	for _, ch := range chains {
		if ch.Hooknum == nil || !bypassedHook(ch.Table.Family, *ch.Hooknum) {
			continue
		}
		drops := ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop
		if !drops {
			rules, err := c.GetRules(ch.Table, ch)
			if err != nil {
				return found, fmt.Errorf("nftables: %w", err)
			}
			if len(rules) == 0 {
				continue
			}
		}
		found = append(found, fmt.Sprintf("nftables chain %s %s %s", familyName(ch.Table.Family), ch.Table.Name, ch.Name))
	}
	return found, nil
}

// bypassedHook reports whether a base chain of family at hook sees
// forwarded IPv6 packets the fast path redirects past it.
func bypassedHook(f nftables.TableFamily, h nftables.ChainHook) bool {
	routed := h == unix.NF_INET_PRE_ROUTING || h == unix.NF_INET_FORWARD || h == unix.NF_INET_POST_ROUTING
	switch f {
	case nftables.TableFamilyIPv6:
		return routed
	case nftables.TableFamilyINet:
		return routed || h == nfInetIngress
	case nftables.TableFamilyNetdev:
		return h == unix.NF_NETDEV_INGRESS
	}
	return false
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprint(f)
}

// nfInetIngress is NF_INET_INGRESS (Linux 5.10), which x/sys/unix lacks.
const nfInetIngress = 5

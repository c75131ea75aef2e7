// Package lab builds the two-site network-namespace testbed behind
// `shim6gw lab` and the end-to-end tests (issue 6): two multihomed sites,
// four provider routers that do ingress filtering, an Internet core and a
// legacy site, plus failure injection, TCP streams with a receive-gap
// tracker and an iperf3 throughput helper.
//
// Topology. Every name is a network namespace <prefix>-<node> (default
// prefix "s6lab"); "a ──x────y── b" is a veth pair with interface x in a
// and y in b (interface names are local to each namespace):
//
//	          site 1                 providers                  Internet
//	h1 ──eth0────lan0── gw1 ──upA────cust── ispa1 ──core────ispa1──┐
//	                        └─upB────cust── ispb1 ──core────ispb1──┤
//	                                                               core ──legacy────eth0── legacy
//	h2 ──eth0────lan0── gw2 ──upA────cust── ispa2 ──core────ispa2──┤    (legacy site: one host,
//	                        └─upB────cust── ispb2 ──core────ispb2──┘     no gateway, no shim6)
//	          site 2
//
// Addressing plan (RFC 3849 documentation space):
//
//	site 1  P_A = 2001:db8:a1::/48 (ISP A)   P_B = 2001:db8:b1::/48 (ISP B)
//	site 2  P_A = 2001:db8:a2::/48 (ISP A)   P_B = 2001:db8:b2::/48 (ISP B)
//	legacy        2001:db8:c::/48
//
//	LAN /64        <P_X>:1::/64      gw lan0 <P_X>:1::1, host default <P_X>:1::100
//	uplink /64     <P_X>:ffff::/64   ISP cust <P_X>:ffff::1, gw up<X> <P_X>:ffff::2
//	ISP–core /64   2001:db8:ff00:<n>::/64 with n = a1, b1, a2, b2 (the ISP
//	               it serves); core ::1, ISP ::2
//	legacy LAN     2001:db8:c:1::/64  core ::1, legacy host ::100
//
// The uplink link net sits inside the customer's own prefix (as in
// deploy/examples/lab-gateway.yaml), so the gateway's own packets pass the
// ISP's ingress filter too.
//
// Routing: the core routes each /48 to its ISP router; each ISP routes its
// customer /48 to the customer's gateway and everything else to the core,
// and drops (and counts, nft counter "ingress_drops" in table inet
// <prefix>) every packet forwarded in from the customer interface whose
// source is not in the customer's /48 — BCP 38 ingress filtering, the reason
// a shim6 gateway must send with the locator that matches the uplink.
// Hosts get a default route to their gateway's lan0 address under P_A.
//
// Gateway modes:
//
//   - KernelForwarding (the baseline): the gateway forwards in the kernel
//     with source-based policy routing (from P_A → ISP A, from P_B → ISP B,
//     LAN routes first via "lookup main suppress_prefixlength 0").
//   - Daemon: the lab configures the gateway's interfaces and addresses
//     only, writes a YAML configuration per gateway (lab timers, see
//     LabTimers) and calls Options.StartGateway, which runs the real daemon
//     inside the namespace; the daemon installs rules and routes itself.
//
// Failures: FailLink sets the ISP's customer-facing veth down, so the
// gateway sees carrier loss on its uplink; FailBlackhole adds nftables
// drop rules on the ISP's customer interface in both directions (input,
// output and forward), carrier stays up (netem is not available on these
// kernels); Restore undoes either.
//
// Shell commands (ip, nft, sysctl, iperf3, dumpcap) run through os/exec:
// the lab is a testbed, the iproute2/nft command lines are what an operator
// would type to reproduce it by hand, and `ip -batch` keeps it to a few
// execs per namespace. Sockets for the TCP streams are opened in-process on
// a thread locked into the namespace (a socket stays in the namespace it
// was created in), so measurements need no helper binary.
//
// HA (Options.HA, `shim6gw lab --ha`): site 1 has two gateways, gw1a and
// gw1b, behind keepalived, bridged on the LAN and on both providers'
// customer links (see ha.go); FailGateway powers off the active one.
// LAN hosts (Options.LANHosts; `shim6gw lab` in daemon mode without
// --ha): site 1's LAN is a bridge in h1 (h1's eth0, which keeps h1's
// static address) with ports to gw1's lan0 and to two more hosts. h1d runs
// Debian's ISC dhclient -6 (DUID-LL, an address-only -sf script) and leases
// a ULID of entries 4..7 from gw1's DHCPv6 server; h1s has accept_ra=1 and
// autoconf and builds its address in SLAACPrefix (<P_A>:5::/64) from gw1's
// RAs, which gw1 translates to a ULID of entries 8..15. Both take their
// default route from the RAs. h1 keeps entry 0. See lanhosts.go.
//
// RunScenario records the bytes received over time and, with
// Options.Events, the lab's actions and the processes' notable log lines,
// which package labplot draws.
//
// Lifecycle: New, Up, Down. Down kills every process the lab started and
// deletes every namespace (which removes veths, routes and nft tables with
// it). CleanupLeftovers removes the namespaces (and processes in them) that
// a killed run left behind; Up calls it first.
package lab

// Package plumbing installs and removes the kernel state that steers the
// site's traffic through the gateway's TUN (Plumber over NetlinkOps),
// re-installs what another program removes (PlumbWatcher), and watches the
// uplinks (Monitor): an uplink is up while its interface is
// administratively up, has carrier, holds a usable global address and,
// if asked, has a default route.
//
// Policy routing (docs/architecture.md §3), with P = rules.priority_base,
// T = rules.table_base and uplinks numbered i = 0, 1, …:
//
//	P+0     iif <tun> lookup T+1                 (destination on the LAN)
//	P+10+i  iif <tun> from <uplink i prefix> lookup T+2+i
//	P+50    iif <tun> lookup main                (source outside every
//	        site prefix: plain forwarding)
//	P+60    iif <lan> lookup T
//	P+70+i  iif <uplink i> lookup T
//
//	table T:     default dev <tun>
//	table T+1:   <LAN /64 of each uplink> dev <lan>
//	table T+2+i: default via <gateway i> dev <uplink i>  (or dev only)
//	             unreachable default metric 2^32-1
//
// The LAN table comes first so that a packet for a LAN host never leaves
// by an uplink because its source is in P_X (a LAN host talking to another
// host's locator), and the uplink rules select the exit by source, which is
// what the providers' ingress filters demand (docs/architecture.md §3). A
// lookup in table T+2+i while uplink i is down ends at its unreachable
// route instead of falling through to main and another provider.
//
// Packets for the gateway's own addresses (NDP, admin) hit the local table at
// priority 0 and never reach these rules. Every rule and route carries the
// route protocol rules.protocol (default 154, "shim6gw"), and every rule sits
// in [P, P+100), so a start after a crash finds and removes what the crashed
// run left (Plumber.CleanupStale).
package plumbing

package lab

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// KeepalivedUplink is one uplink's virtual address in a keepalived pair.
type KeepalivedUplink struct {
	Name      string       // instance name suffix ("a" → uplink_a)
	Interface string       // where the address lives
	VIP       netip.Prefix // the address the provider routes the site to, with its link's length
}

// KeepalivedParams describe one gateway of a shim6gw pair for
// KeepalivedConfig. Both gateways of a pair differ only in RouterID and
// Priority.
type KeepalivedParams struct {
	RouterID string
	// Priority decides which gateway wins when both start at once; with
	// nopreempt a running master keeps the addresses whatever its peer's.
	Priority int
	// Advert is the VRRPv3 advertisement interval, 10ms..40.95s in
	// centiseconds (RFC 5798 §5.2.7); keepalived's default is 1s.
	Advert time.Duration
	LAN    string         // the LAN interface: every instance advertises there
	LANVIP []netip.Prefix // the hosts' default router addresses
	// Uplinks get one instance each, in the same sync group.
	Uplinks []KeepalivedUplink
	// VRIDBase is the LAN instance's virtual router ID; uplink i uses
	// VRIDBase+1+i. They must be unique on the LAN.
	VRIDBase int
	// Ready is the vrrp_script command: exit 0 when the local shim6gw is
	// ready (/readyz 200).
	Ready string
	// ReadyInterval is how often Ready runs (whole seconds, at least 1).
	ReadyInterval time.Duration
}

// KeepalivedConfig renders keepalived.conf for one gateway of a pair:
// VRRPv3 over IPv6, one instance per segment (the LAN and each uplink) in
// one sync group so that all addresses move together, every instance
// advertising on the LAN, health tracking through Ready, nopreempt. This
// is what deploy/keepalived/keepalived.conf is generated from; the lab
// runs it with short timers.
func KeepalivedConfig(p KeepalivedParams) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	adv := strconv.FormatFloat(p.Advert.Seconds(), 'f', -1, 64)
	ival := max(1, int(p.ReadyInterval/time.Second))
	w("# keepalived for one gateway of a shim6gw pair (docs/operations.md,")
	w("# section 8). The other gateway runs the same file with its own router_id")
	w("# and a lower priority. Both run `shim6gw run` with the same configuration")
	w("# (same HBA secret and hosts), hot: the one that holds the addresses gets")
	w("# the traffic and rebuilds contexts on demand (R1bis/I2bis).")
	w("")
	w("global_defs {")
	w("    router_id %s", p.RouterID)
	w("    # VRRPv3 (RFC 5798): the only version for IPv6, with centisecond adverts.")
	w("    vrrp_version 3")
	w("    script_user root")
	w("    enable_script_security")
	w("}")
	w("")
	w("# Fault (release every address) while shim6gw is not ready: it exits")
	w("# 0 only when /readyz answers 200 (TUN up, plumbing applied, a usable")
	w("# locator pair).")
	w("vrrp_script shim6gw_ready {")
	w("    script %q", p.Ready)
	w("    interval %d", ival)
	w("    timeout %d", ival)
	w("    fall 2")
	w("    rise 2")
	w("}")
	w("")
	w("# All addresses move together: a gateway that holds the LAN address but")
	w("# not the uplinks' (or the reverse) would black-hole the site.")
	w("vrrp_sync_group shim6gw {")
	w("    group {")
	w("        lan")
	for _, u := range p.Uplinks {
		w("        uplink_%s", u.Name)
	}
	w("    }")
	w("    track_script {")
	w("        shim6gw_ready")
	w("    }")
	w("}")
	instance := func(name string, vrid int, vips []string, comment ...string) {
		w("")
		for _, c := range comment {
			w("# %s", c)
		}
		w("vrrp_instance %s {", name)
		w("    # nopreempt needs BACKUP: a gateway that comes back stays standby.")
		w("    state BACKUP")
		w("    nopreempt")
		w("    interface %s", p.LAN)
		w("    virtual_router_id %d", vrid)
		w("    priority %d", p.Priority)
		w("    advert_int %s", adv)
		w("    virtual_ipaddress {")
		for _, v := range vips {
			w("        %s", v)
		}
		w("    }")
		w("}")
	}
	// RFC 5798 §5.2.9: the first address of an IPv6 virtual router is its
	// link-local one; the hosts may use it as their default router too.
	lan := []string{routerLinkLocal.String() + "/64"}
	for _, v := range p.LANVIP {
		lan = append(lan, v.String())
	}
	instance("lan", p.VRIDBase, lan, "The hosts' default router.")
	for i, u := range p.Uplinks {
		instance("uplink_"+u.Name, p.VRIDBase+1+i, []string{u.VIP.String() + " dev " + u.Interface + " no_track"},
			"The address provider "+u.Name+" routes the site's prefix to. Its adverts go",
			"on the LAN and its uplink is not tracked (no_track): a provider link that",
			"loses carrier must not fault the group on both gateways, nor make the",
			"standby master; shim6 moves the contexts to the other provider. (keepalived",
			"warns that the first IPv6 address is not link-local: this instance only",
			"carries the uplink's address.)")
	}
	return []byte(b.String())
}

// routerLinkLocal is the LAN instance's link-local virtual address.
var routerLinkLocal = netip.MustParseAddr("fe80::1")

// ReadyScript is the vrrp_script deploy/keepalived/shim6gw-ready ships: it
// asks /readyz without an HTTP client (bash's /dev/tcp), exit 0 on 200.
const ReadyScript = `#!/bin/bash
# shim6gw-ready [HOST:PORT]: exit 0 when the local shim6gw's /readyz answers
# 200, 1 otherwise; keepalived's vrrp_script. Needs no HTTP client. The
# admin address defaults to the daemon's (admin.listen: 127.0.0.1:9146).
addr=${1:-127.0.0.1:9146}
exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}" 2>/dev/null || exit 1
printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n' "$addr" >&3
read -r -t 1 _ code _ <&3 || exit 1
[ "$code" = 200 ]
`

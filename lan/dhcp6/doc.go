// Package dhcp6 is the gateway's DHCPv6 server (RFC 8415) for the HBA
// address book: each client IA_NA, named by DUID and IAID, is bound to one
// book entry and gets that entry's ULID, the entry's address under the
// first uplink's LAN /64. The wire format is github.com/insomniacslk/dhcp.
//
// Bindings are stable: a client keeps its entry across renewals, across
// restarts (the lease file, written atomically with package statefile
// before every Reply that changes a binding) and after its binding
// expired, as long as nobody else needed the entry. No entry is ever held
// by two clients.
//
// Pool policy, for a LAN with strangers on it: a client the server does
// not know takes a token from a bucket (new_bindings_per_second, burst
// new_bindings_burst) before it gets an entry, so a host that floods
// Solicits with random DUIDs gains entries at that rate only. An entry is
// taken from, in order: the address the client asks for if it is free, an
// entry never used, the entry whose binding expired longest ago (an offer
// expires a minute after its Advertise, a binding at the end of its valid
// lifetime, a released one at once). When none is left the client gets
// NoAddrsAvail, logged once per client and counted.
package dhcp6

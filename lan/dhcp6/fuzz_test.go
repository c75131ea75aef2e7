package dhcp6_test

import (
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/shim6gw/shim6gw/lan/dhcp6"
)

// FuzzHandle: no input panics the server, and bindings never share an
// entry.
func FuzzHandle(f *testing.F) {
	c := newClient(1)
	c.sid = (&dhcpv6.DUIDLL{HWType: 1, LinkLayerAddr: serverMAC})
	for _, typ := range []dhcpv6.MessageType{dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew,
		dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline, dhcpv6.MessageTypeConfirm, dhcpv6.MessageTypeInformationRequest} {
		f.Add(c.msg(typ, typ != dhcpv6.MessageTypeSolicit && typ != dhcpv6.MessageTypeRebind && typ != dhcpv6.MessageTypeConfirm).ToBytes())
	}
	f.Add(c.msg(dhcpv6.MessageTypeSolicit, false, dhcpv6.WithRapidCommit).ToBytes())
	fx := newFixture(f, 4, func(c *dhcp6.Config) { c.RapidCommit = true })
	f.Fuzz(func(t *testing.T, in []byte) {
		out := fx.srv.Handle(in)
		if out != nil {
			if _, err := dhcpv6.MessageFromBytes(out); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
		}
		seen := map[string]bool{}
		for _, l := range fx.srv.Leases() {
			if l.DUID == "" {
				continue
			}
			if seen[l.Address.String()] {
				t.Fatalf("address %v bound twice", l.Address)
			}
			seen[l.Address.String()] = true
		}
	})
}

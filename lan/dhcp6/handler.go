package dhcp6

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// mode is what a message does to the IA_NAs it carries.
type mode uint8

const (
	modeAdvertise mode = iota // Solicit: offer, hold for offerHold
	modeCommit                // Request, Solicit with Rapid Commit: bind
	modeRenew                 // Renew: extend a binding
	modeRebind                // Rebind: extend a binding, any server
)

// exchange is the state of answering one message.
type exchange struct {
	req     *dhcpv6.Message
	resp    *dhcpv6.Message
	duid    string
	now     time.Time
	changed bool // the lease file must be written before replying
}

// Handle answers one DHCPv6 message from a client on the link: the bytes
// of the UDP payload in, the bytes of the reply out, or nil when the
// message gets no answer (dropped and counted, or no answer due).
func (s *Server) Handle(req []byte) []byte {
	msg, err := dhcpv6.FromBytes(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		return s.dropLocked(DropMalformed)
	}
	if msg.IsRelay() {
		return s.dropLocked(DropRelay)
	}
	m := msg.(*dhcpv6.Message)
	x := &exchange{req: m, now: s.now()}
	if r, ok := s.checkLocked(m); !ok {
		return s.dropLocked(r)
	}
	if cid := m.Options.ClientID(); cid != nil {
		x.duid = string(cid.ToBytes())
	}
	switch m.MessageType {
	case dhcpv6.MessageTypeSolicit:
		s.solicitLocked(x)
	case dhcpv6.MessageTypeRequest:
		x.reply(s, dhcpv6.MessageTypeReply)
		s.iasLocked(x, modeCommit)
	case dhcpv6.MessageTypeRenew:
		x.reply(s, dhcpv6.MessageTypeReply)
		s.iasLocked(x, modeRenew)
	case dhcpv6.MessageTypeRebind:
		x.reply(s, dhcpv6.MessageTypeReply)
		s.iasLocked(x, modeRebind)
	case dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		x.reply(s, dhcpv6.MessageTypeReply)
		s.releaseLocked(x, m.MessageType == dhcpv6.MessageTypeDecline)
	case dhcpv6.MessageTypeConfirm:
		if !s.confirmLocked(x) {
			return s.dropLocked(DropNoAddresses)
		}
	case dhcpv6.MessageTypeInformationRequest:
		x.reply(s, dhcpv6.MessageTypeReply)
	}
	if x.changed {
		s.saveLocked(x.now)
	}
	s.stats.Replies++
	return x.resp.ToBytes()
}

func (s *Server) dropLocked(r DropReason) []byte {
	s.stats.Dropped[r]++
	return nil
}

// checkLocked applies the validation rules of RFC 8415 §16 for the
// message types a server accepts.
func (s *Server) checkLocked(m *dhcpv6.Message) (DropReason, bool) {
	var needCID, sidMust, sidMustNot bool
	switch m.MessageType {
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeConfirm, dhcpv6.MessageTypeRebind:
		needCID, sidMustNot = true, true
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		needCID, sidMust = true, true
	case dhcpv6.MessageTypeInformationRequest:
		if len(m.Options.Get(dhcpv6.OptionIANA)) > 0 || len(m.Options.Get(dhcpv6.OptionIATA)) > 0 || len(m.Options.Get(dhcpv6.OptionIAPD)) > 0 {
			return DropIAInInfoRequest, false
		}
	default:
		return DropNotFromClient, false
	}
	if cid := m.Options.ClientID(); cid == nil && needCID || cid != nil && len(cid.ToBytes()) > maxDUIDLen {
		return DropClientID, false
	}
	sid := m.Options.ServerID()
	switch {
	case sid == nil && sidMust, sid != nil && sidMustNot:
		return DropServerID, false
	case sid != nil && !bytes.Equal(sid.ToBytes(), s.duid.ToBytes()):
		return DropServerID, false
	}
	return 0, true
}

// reply starts the answer: the transaction ID, our Server ID, the
// client's Client ID and the configured DNS options (RFC 8415 §18.3).
func (x *exchange) reply(s *Server, t dhcpv6.MessageType) {
	x.resp = &dhcpv6.Message{MessageType: t, TransactionID: x.req.TransactionID}
	x.resp.AddOption(dhcpv6.OptServerID(s.duid))
	if cid := x.req.Options.ClientID(); cid != nil {
		x.resp.AddOption(dhcpv6.OptClientID(cid))
	}
	if len(s.dns) > 0 {
		x.resp.AddOption(dhcpv6.OptDNS(s.dns...))
	}
	if len(s.cfg.DomainSearch) > 0 {
		dhcpv6.WithDomainSearchList(s.cfg.DomainSearch...)(x.resp)
	}
}

func (s *Server) solicitLocked(x *exchange) {
	if s.cfg.RapidCommit && x.req.GetOneOption(dhcpv6.OptionRapidCommit) != nil {
		x.reply(s, dhcpv6.MessageTypeReply)
		dhcpv6.WithRapidCommit(x.resp)
		s.iasLocked(x, modeCommit)
		return
	}
	x.reply(s, dhcpv6.MessageTypeAdvertise)
	x.resp.AddOption(dhcpv6.OptPreference(uint8(s.cfg.Preference)))
	if got, asked := s.iasLocked(x, modeAdvertise); asked > 0 && got == 0 {
		// RFC 8415 §18.3.9: no address for any IA.
		x.resp.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "no addresses available"})
	}
}

// iasLocked answers every IA_NA of the request (up to maxIAs) and returns
// how many got an address and how many were asked.
func (s *Server) iasLocked(x *exchange, md mode) (got, asked int) {
	for _, ia := range x.req.Options.IANA() {
		if asked == maxIAs {
			break
		}
		asked++
		if s.iaLocked(x, ia, md) {
			got++
		}
	}
	return got, asked
}

// hintOf returns the pool entry of the first address in ia that is a ULID
// of the book, or -1.
func (s *Server) hintOf(ia *dhcpv6.OptIANA) int {
	for _, a := range ia.Options.Addresses() {
		if addr, ok := netipFrom(a.IPv6Addr); ok {
			if e, pi, ok := s.book.Lookup(addr); ok && pi == 0 && s.tab.inPool(e) {
				return e
			}
		}
	}
	return -1
}

// iaLocked answers one IA_NA and reports whether it got an address.
func (s *Server) iaLocked(x *exchange, ia *dhcpv6.OptIANA, md mode) bool {
	k := clientKey{duid: x.duid, iaid: ia.IaId}
	out := &dhcpv6.OptIANA{IaId: ia.IaId, T1: s.t1, T2: s.t2}
	defer x.resp.AddOption(out)
	b := s.tab.owned(k)
	hint := s.hintOf(ia)
	switch {
	case b != nil:
	case md == modeRenew || md == modeRebind:
		// Lost state (a lease file from before the binding): keep the
		// client's address when it is still free, else NoBinding
		// (RFC 8415 §18.3.4, §18.3.5).
		if hint < 0 || !s.tab.takeable(hint, k, x.now) {
			s.refuseLocked(x, out, ia, RefusedNoBinding)
			return false
		}
		fallthrough
	default:
		e := s.tab.pick(k, hint, x.now)
		if e < 0 {
			s.refuseLocked(x, out, ia, RefusedPoolExhausted)
			return false
		}
		if !s.newBindings.Take(x.now) {
			s.refuseLocked(x, out, ia, RefusedRateLimited)
			return false
		}
		b = s.tab.bind(k, e, stateOffered, x.now.Add(offerHold))
		delete(s.logged, x.duid)
		if md != modeAdvertise {
			x.changed = true
		}
	}
	if md == modeAdvertise {
		if b.state == stateOffered {
			b.expires = x.now.Add(offerHold)
		}
	} else {
		if b.state != stateBound {
			s.log.Info("binding", "entry", b.entry, "address", s.addr(b.entry), "duid", hex.EncodeToString([]byte(k.duid)), "iaid", hex.EncodeToString(k.iaid[:]))
			x.changed = true
		}
		b.state = stateBound
		b.expires = x.now.Add(s.cfg.ValidLifetime)
		if b.expires.Sub(b.saved) > saveSlack {
			x.changed = true
		}
	}
	mine := s.addr(b.entry)
	out.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.IP(mine.AsSlice()), PreferredLifetime: s.cfg.PreferredLifetime, ValidLifetime: s.cfg.ValidLifetime})
	if md != modeAdvertise {
		s.zeroOthers(out, ia, mine)
	}
	return true
}

// zeroOthers returns the addresses of ia other than mine (all of them
// when mine is invalid) with lifetimes 0, so the client stops using them
// (RFC 8415 §18.3.2, §18.3.4).
func (s *Server) zeroOthers(out, ia *dhcpv6.OptIANA, mine netip.Addr) {
	for i, a := range ia.Options.Addresses() {
		if i == maxIAs {
			return
		}
		if got, ok := netipFrom(a.IPv6Addr); !ok || got != mine {
			out.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.IPv6Addr})
		}
	}
}

// refuseLocked answers an IA without an address.
func (s *Server) refuseLocked(x *exchange, out, ia *dhcpv6.OptIANA, r Refusal) {
	s.stats.Refused[r]++
	code := iana.StatusNoAddrsAvail
	if r == RefusedNoBinding {
		code = iana.StatusNoBinding
		if x.req.MessageType == dhcpv6.MessageTypeRebind {
			s.zeroOthers(out, ia, netip.Addr{})
		}
	}
	out.Options.Add(&dhcpv6.OptStatusCode{StatusCode: code, StatusMessage: r.String()})
	if r == RefusedPoolExhausted && !s.logged[x.duid] && len(s.logged) < maxLogged {
		s.logged[x.duid] = true
		s.log.Warn("pool exhausted, client refused", "duid", hex.EncodeToString([]byte(x.duid)), "pool_size", s.stats.PoolSize)
	}
}

// releaseLocked handles Release and Decline (RFC 8415 §18.3.7, §18.3.8):
// a released entry becomes reclaimable at once but stays remembered for
// the client; a declined one leaves the pool for DeclineHold.
func (s *Server) releaseLocked(x *exchange, decline bool) {
	for i, ia := range x.req.Options.IANA() {
		if i == maxIAs {
			break
		}
		k := clientKey{duid: x.duid, iaid: ia.IaId}
		b := s.tab.owned(k)
		if b == nil || !hasAddr(ia, s.addr(b.entry)) {
			s.stats.Refused[RefusedNoBinding]++
			out := &dhcpv6.OptIANA{IaId: ia.IaId}
			out.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding, StatusMessage: "no binding"})
			x.resp.AddOption(out)
			continue
		}
		x.changed = true
		if decline {
			s.log.Warn("address declined, entry held out of the pool", "entry", b.entry, "address", s.addr(b.entry), "hold", s.cfg.DeclineHold)
			s.tab.decline(b, x.now.Add(s.cfg.DeclineHold))
			continue
		}
		s.log.Info("released", "entry", b.entry, "address", s.addr(b.entry))
		b.state, b.expires = stateBound, x.now
	}
	x.resp.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess})
}

// confirmLocked answers Confirm (RFC 8415 §18.3.3): Success when every
// address is on the LAN /64, NotOnLink otherwise; false when there is no
// address (no answer).
func (s *Server) confirmLocked(x *exchange) bool {
	n, onLink := 0, true
	for _, ia := range x.req.Options.IANA() {
		for _, a := range ia.Options.Addresses() {
			n++
			addr, ok := netipFrom(a.IPv6Addr)
			onLink = onLink && ok && s.onLink.Contains(addr)
		}
	}
	if n == 0 {
		return false
	}
	x.reply(s, dhcpv6.MessageTypeReply)
	code := iana.StatusSuccess
	if !onLink {
		code = iana.StatusNotOnLink
	}
	x.resp.AddOption(&dhcpv6.OptStatusCode{StatusCode: code})
	return true
}

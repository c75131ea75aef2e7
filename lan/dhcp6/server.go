package dhcp6

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/shim6gw/shim6gw/hba"
	"github.com/shim6gw/shim6gw/lan/bucket"
	"github.com/shim6gw/shim6gw/lan/statefile"
)

// DropReason says why a received message got no answer.
type DropReason uint8

// Drop reasons, a closed set (metric label values).
const (
	DropMalformed       DropReason = iota // does not parse (dhcpv6.FromBytes)
	DropRelay                             // Relay-forward: this server serves one link, no relays
	DropNotFromClient                     // a server or unknown message type
	DropClientID                          // Client ID missing, or longer than RFC 8415 §11.1 allows
	DropServerID                          // Server ID present, missing or not ours against §16
	DropIAInInfoRequest                   // Information-request with an IA (§16.12)
	DropNoAddresses                       // Confirm without addresses (§18.3.3)
	NumDropReasons
)

var dropNames = [...]string{"malformed", "relay", "not_from_client", "client_id", "server_id", "ia_in_information_request", "no_addresses"}

func (r DropReason) String() string { return dropNames[r] }

// Refusal says why an IA_NA got no address.
type Refusal uint8

// Refusals, a closed set (metric label values).
const (
	RefusedPoolExhausted Refusal = iota // every pool entry is held: NoAddrsAvail
	RefusedRateLimited                  // the new-binding bucket is empty: NoAddrsAvail
	RefusedNoBinding                    // Renew/Rebind/Release/Decline of an unknown IA: NoBinding
	NumRefusals
)

var refusalNames = [...]string{"pool_exhausted", "rate_limited", "no_binding"}

func (r Refusal) String() string { return refusalNames[r] }

// Limits on what one message can make the server do.
const (
	maxIAs      = 8   // IA_NAs answered per message
	maxDUIDLen  = 130 // type + 128 bytes (RFC 8415 §11.1)
	maxLogged   = 1024
	logInterval = time.Minute
)

// Stats are the server's counters and gauges (Server.Stats).
type Stats struct {
	PoolSize int // entries the server may hand out
	// Leases, Offered and Declined count live bindings by state.
	Leases, Offered, Declined int
	Replies                   uint64 // Advertise and Reply messages sent
	Dropped                   [NumDropReasons]uint64
	Refused                   [NumRefusals]uint64
	PersistErrors             uint64 // lease file writes that failed
}

// Lease is one binding as status and /debug/leases show it.
type Lease struct {
	DUID    string     `json:"duid,omitempty"` // hex
	IAID    string     `json:"iaid,omitempty"` // hex
	Entry   int        `json:"entry"`
	Address netip.Addr `json:"address"`
	// State is offered, bound, expired (the entry is reclaimable but
	// still kept for this client) or declined.
	State   string    `json:"state"`
	Expires time.Time `json:"expires"`
}

// Options are the run-time dependencies of a Server.
type Options struct {
	// HardwareAddr of the LAN interface makes the server's DUID-LL
	// (RFC 8415 §11.4), stable as long as the interface is.
	HardwareAddr net.HardwareAddr
	Logger       *slog.Logger
	Now          func() time.Time // nil means time.Now
}

// Server is the DHCPv6 server of the address book. Handle is safe for
// concurrent use.
type Server struct {
	cfg    Config
	book   *hba.Book
	duid   dhcpv6.DUID
	log    *slog.Logger
	now    func() time.Time
	t1, t2 time.Duration
	dns    []net.IP
	onLink netip.Prefix

	mu          sync.Mutex
	tab         table
	newBindings bucket.Bucket
	logged      map[string]bool // DUIDs whose exhaustion was logged
	lastPersist time.Time       // last failed-write log
	stats       Stats
}

// New returns a server handing out the entries of book that cfg names,
// loading the lease file. A lease file that does not parse is renamed to
// <file>.bad and the server starts empty (logged at Error).
func New(cfg Config, book *hba.Book, o Options) (*Server, error) {
	if err := cfg.Validate("dhcpv6", book.Len()); err != nil {
		return nil, fmt.Errorf("dhcp6: %w", err)
	}
	if len(o.HardwareAddr) == 0 {
		return nil, fmt.Errorf("dhcp6: no hardware address for the server DUID")
	}
	s := &Server{
		cfg:         cfg,
		book:        book,
		duid:        &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: o.HardwareAddr},
		log:         o.Logger,
		now:         o.Now,
		onLink:      book.Prefixes()[0],
		newBindings: bucket.New(cfg.NewBindingsPerSecond, cfg.NewBindingsBurst),
		logged:      map[string]bool{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "dhcpv6")
	if s.now == nil {
		s.now = time.Now
	}
	s.t1, s.t2 = cfg.t1t2()
	for _, a := range cfg.DNSServers {
		s.dns = append(s.dns, net.IP(a.AsSlice()))
	}
	first, end := cfg.poolRange(book.Len())
	s.tab = newTable(first, end)
	s.stats.PoolSize = end - first
	if cfg.LeaseFile != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) addr(e int) netip.Addr { return s.book.Entry(e).ULID() }

func (s *Server) load() error {
	data, err := statefile.Read(s.cfg.LeaseFile)
	if err != nil || data == nil {
		return err
	}
	loaded, skipped, err := s.tab.unmarshal(data, s.addr)
	if err != nil {
		bad := s.cfg.LeaseFile + ".bad"
		s.log.Error("lease file unreadable, starting without bindings", "file", s.cfg.LeaseFile, "moved_to", bad, "err", err)
		s.tab = newTable(s.tab.first, s.tab.end)
		if err := os.Rename(s.cfg.LeaseFile, bad); err != nil {
			return fmt.Errorf("dhcp6: %w", err)
		}
		return nil
	}
	s.log.Info("bindings loaded", "file", s.cfg.LeaseFile, "bindings", loaded, "skipped", skipped)
	return nil
}

// saveLocked writes the lease file; a failure is counted and logged at
// most once a minute, and the server goes on from memory.
func (s *Server) saveLocked(now time.Time) {
	if s.cfg.LeaseFile == "" {
		return
	}
	data, err := s.tab.marshal(s.addr)
	if err == nil {
		err = statefile.Write(s.cfg.LeaseFile, data)
	}
	if err != nil {
		s.stats.PersistErrors++
		if now.Sub(s.lastPersist) >= logInterval {
			s.lastPersist = now
			s.log.Error("writing the lease file", "file", s.cfg.LeaseFile, "err", err)
		}
		return
	}
	for _, b := range s.tab.byEntry {
		b.saved = b.expires
	}
}

// Stats returns a snapshot of the counters and gauges.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Leases, st.Offered, st.Declined = s.tab.counts(s.now())
	return st
}

// Leases returns every binding the server holds, in entry order.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]Lease, 0, len(s.tab.byEntry))
	for e := s.tab.first; e < s.tab.end && len(out) < len(s.tab.byEntry); e++ {
		b := s.tab.byEntry[e]
		if b == nil {
			continue
		}
		l := Lease{Entry: e, Address: s.addr(e), State: b.state.String(), Expires: b.expires}
		if b.state != stateDeclined {
			l.DUID, l.IAID = hex.EncodeToString([]byte(b.key.duid)), hex.EncodeToString(b.key.iaid[:])
			if !b.live(now) {
				l.State = "expired"
			}
		}
		out = append(out, l)
	}
	return out
}

// Close writes the lease file with the latest lifetimes.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saveLocked(s.now())
}

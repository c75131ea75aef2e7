package dhcp6

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// state is where a binding is in its life.
type state uint8

const (
	// offered: given in an Advertise, held for offerHold so that the
	// Request finds it; then reclaimable.
	stateOffered state = iota
	// bound: committed by Reply until expires.
	stateBound
	// declined: the entry is out of the pool until expires (no client).
	stateDeclined
)

var stateNames = [...]string{"offered", "bound", "declined"}

func (s state) String() string { return stateNames[s] }

// offerHold is how long an advertised entry waits for the Request.
const offerHold = time.Minute

// clientKey names one IA_NA of one client (RFC 8415 §12).
type clientKey struct {
	duid string // DUID bytes
	iaid [4]byte
}

// binding ties one client IA_NA (or, declined, nobody) to one book entry.
// Expired bindings stay until the entry is needed by someone else, so a
// client that comes back after a long absence gets its entry again.
type binding struct {
	key     clientKey
	entry   int
	state   state
	expires time.Time
	// saved is expires as last written to the lease file: lifetime
	// extensions are written only when they move it by saveSlack.
	saved time.Time
}

// saveSlack bounds how stale the persisted expiry of a renewed binding may
// be, so that a client renewing in a loop cannot make the server fsync per
// message.
const saveSlack = time.Minute

func (b *binding) live(now time.Time) bool { return now.Before(b.expires) }

// table is the binding database. The caller holds Server.mu.
type table struct {
	first, end int // pool entries: first .. end-1
	byClient   map[clientKey]*binding
	byEntry    map[int]*binding
	next       int // where the search for a never-used entry resumes
}

func newTable(first, end int) table {
	return table{first: first, end: end, next: first,
		byClient: map[clientKey]*binding{}, byEntry: map[int]*binding{}}
}

func (t *table) inPool(e int) bool { return e >= t.first && e < t.end }

// owned returns the binding of k, if k still holds its entry.
func (t *table) owned(k clientKey) *binding {
	return t.byClient[k]
}

// takeable reports whether entry e can go to k at now.
func (t *table) takeable(e int, k clientKey, now time.Time) bool {
	if !t.inPool(e) {
		return false
	}
	b := t.byEntry[e]
	return b == nil || b.state != stateDeclined && b.key == k || !b.live(now)
}

// pick chooses an entry for a new binding of k: hint when takeable, else
// a never-used entry, else the entry whose binding expired first. It
// returns -1 when the pool is exhausted.
func (t *table) pick(k clientKey, hint int, now time.Time) int {
	if hint >= 0 && t.takeable(hint, k, now) {
		return hint
	}
	for n := t.end - t.first; n > 0 && t.next < t.end; n-- {
		e := t.next
		t.next++
		if t.byEntry[e] == nil {
			return e
		}
	}
	victim := -1
	var oldest time.Time
	for e, b := range t.byEntry {
		if !b.live(now) && (victim < 0 || b.expires.Before(oldest) || b.expires.Equal(oldest) && e < victim) {
			victim, oldest = e, b.expires
		}
	}
	return victim
}

// bind gives entry e to k (pick chose it), evicting an expired holder.
func (t *table) bind(k clientKey, e int, st state, expires time.Time) *binding {
	if old := t.byEntry[e]; old != nil && old.state != stateDeclined {
		delete(t.byClient, old.key)
	}
	if old := t.byClient[k]; old != nil && old.entry != e {
		delete(t.byEntry, old.entry)
	}
	b := &binding{key: k, entry: e, state: st, expires: expires}
	t.byClient[k] = b
	t.byEntry[e] = b
	return b
}

// decline takes b's entry out of the pool until until.
func (t *table) decline(b *binding, until time.Time) {
	delete(t.byClient, b.key)
	t.byEntry[b.entry] = &binding{entry: b.entry, state: stateDeclined, expires: until}
}

// counts returns the bindings by state that are live at now.
func (t *table) counts(now time.Time) (bound, offered, declined int) {
	for _, b := range t.byEntry {
		if !b.live(now) {
			continue
		}
		switch b.state {
		case stateBound:
			bound++
		case stateOffered:
			offered++
		case stateDeclined:
			declined++
		}
	}
	return
}

// leaseFile is the JSON document of the lease file.
type leaseFile struct {
	Version  int     `json:"version"`
	Bindings []Lease `json:"bindings"` // State: offered, bound or declined
}

const leaseFileVersion = 1

// marshal writes the table in entry order (stable files diff well).
func (t *table) marshal(addr func(int) netip.Addr) ([]byte, error) {
	f := leaseFile{Version: leaseFileVersion, Bindings: make([]Lease, 0, len(t.byEntry))}
	for _, b := range t.byEntry {
		le := Lease{Entry: b.entry, Address: addr(b.entry), State: b.state.String(), Expires: b.expires.UTC()}
		if b.state != stateDeclined {
			le.DUID, le.IAID = hex.EncodeToString([]byte(b.key.duid)), hex.EncodeToString(b.key.iaid[:])
		}
		f.Bindings = append(f.Bindings, le)
	}
	sort.Slice(f.Bindings, func(i, j int) bool { return f.Bindings[i].Entry < f.Bindings[j].Entry })
	return json.MarshalIndent(f, "", "\t")
}

// unmarshal loads a lease file into t. Records whose entry left the pool
// or whose address no longer matches the book (new secret or prefix) are
// skipped and counted in skipped; a file that does not parse is an error.
func (t *table) unmarshal(data []byte, addr func(int) netip.Addr) (loaded, skipped int, err error) {
	var f leaseFile
	if err := json.Unmarshal(data, &f); err != nil {
		return 0, 0, fmt.Errorf("dhcp6: lease file: %w", err)
	}
	if f.Version != leaseFileVersion {
		return 0, 0, fmt.Errorf("dhcp6: lease file version %d, want %d", f.Version, leaseFileVersion)
	}
	for _, le := range f.Bindings {
		st := -1
		for i, n := range stateNames {
			if n == le.State {
				st = i
			}
		}
		if st < 0 || !t.inPool(le.Entry) || addr(le.Entry) != le.Address || t.byEntry[le.Entry] != nil {
			skipped++
			continue
		}
		b := &binding{entry: le.Entry, state: state(st), expires: le.Expires, saved: le.Expires}
		if b.state != stateDeclined {
			duid, err1 := hex.DecodeString(le.DUID)
			iaid, err2 := hex.DecodeString(le.IAID)
			k := clientKey{duid: string(duid)}
			if err1 != nil || err2 != nil || len(iaid) != 4 || len(duid) == 0 {
				skipped++
				continue
			}
			copy(k.iaid[:], iaid)
			if t.byClient[k] != nil {
				skipped++
				continue
			}
			b.key = k
			t.byClient[k] = b
		}
		t.byEntry[le.Entry] = b
		loaded++
	}
	return loaded, skipped, nil
}

package hba

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// DefaultBookSec is the Sec a Book uses unless WithSec says otherwise. See
// the package documentation for the cost trade-off.
const DefaultBookSec = 0

// MaxBookCount bounds the number of book entries (memory and start-up
// time, not a protocol limit).
const MaxBookCount = 1 << 20

// Derivation labels; changing one changes every address of every site.
const (
	bookSalt      = "shim6gw hba book v1"
	modifierLabel = "shim6gw hba modifier"
	emLabel       = "shim6gw hba extended modifier"
)

// MinSecretLen is the shortest site secret the gateway and `shim6gw hba`
// accept, in bytes: 128 bits, so the book cannot be guessed.
const MinSecretLen = 16

// TrimSecret returns the secret held in a secret file's bytes: the bytes
// as they are, minus one trailing "\n" or "\r\n" (what an editor or echo
// adds). Everything else, whitespace included, is part of the secret, so
// binary secrets (head -c 32 /dev/urandom) survive intact.
func TrimSecret(b []byte) []byte {
	if t, ok := bytes.CutSuffix(b, []byte("\r\n")); ok {
		return t
	}
	t, _ := bytes.CutSuffix(b, []byte("\n"))
	return t
}

// Option configures NewBook.
type Option func(*bookOptions)

type bookOptions struct {
	sec uint8
}

// WithSec sets the Sec parameter of every entry (0..MaxGenerateSec).
func WithSec(sec uint8) Option {
	return func(o *bookOptions) { o.sec = sec }
}

// Entry is one host of the address book: an HBA-only set (RFC 5535 §6) with
// one address per site prefix. Its slices are shared with the Book and must
// not be modified.
type Entry struct {
	Index          int
	Modifier       [16]byte // after the Hash2 search
	CollisionCount uint8
	Sec            uint8
	// ExtendedModifier is the encoded Extended Modifier, the PDS Public
	// Key field (see EncodeExtendedModifier).
	ExtendedModifier []byte
	Prefixes         []netip.Prefix // the site /64s, in Multi-Prefix order
	Addresses        []netip.Addr   // Addresses[i] is under Prefixes[i]
	ext              []byte         // Multi-Prefix extension TLV, P=0
}

// ULID returns the address under the first prefix, which the host uses as
// its upper-layer identifier.
func (e Entry) ULID() netip.Addr { return e.Addresses[0] }

// PDS returns the CGA Parameter Data Structure of Addresses[prefixIndex]
// as sent in a Shim6 CGA PDS option (RFC 5533 §5.15.4). Any PDS of the
// entry verifies every address of the entry with VerifyHBA.
func (e Entry) PDS(prefixIndex int) []byte {
	return AppendPDS(make([]byte, 0, keyOff+len(e.ExtendedModifier)+len(e.ext)),
		e.Modifier, prefix64(e.Prefixes[prefixIndex].Addr()), e.CollisionCount, e.ExtendedModifier, e.ext)
}

// Book is a site's HBA address book: count HBA-only sets derived
// deterministically from a secret. It is immutable after NewBook and safe
// for concurrent reads.
type Book struct {
	sec      uint8
	prefixes []netip.Prefix
	entries  []Entry
	index    map[netip.Addr]bookPos
}

type bookPos struct {
	entry, prefix int32
}

// NewBook derives count entries from secret for the site /64s in prefixes
// (at least two, distinct). Entry i's starting modifier and Extended
// Modifier come from HKDF-SHA256 (RFC 5869) of the secret, with the
// entry index in the info string; then RFC 5535 §6 steps 3-6 run. An
// address that repeats an earlier one of the book counts as a collision
// (step 6.4). The same secret, prefixes and Sec always give the same book.
func NewBook(secret []byte, prefixes []netip.Prefix, count int, opts ...Option) (*Book, error) {
	o := bookOptions{sec: DefaultBookSec}
	for _, f := range opts {
		f(&o)
	}
	if len(secret) == 0 {
		return nil, invalidf("empty secret")
	}
	if err := checkPrefixes(prefixes, 2); err != nil {
		return nil, err
	}
	if count < 1 || count > MaxBookCount {
		return nil, invalidf("host count %d is not in 1..%d", count, MaxBookCount)
	}
	if o.sec > MaxGenerateSec {
		return nil, fmt.Errorf("%w: sec %d, generation supports 0..%d", ErrUnsupportedSec, o.sec, MaxGenerateSec)
	}
	prk, err := hkdf.Extract(sha256.New, secret, []byte(bookSalt))
	if err != nil {
		return nil, fmt.Errorf("hba: deriving book key: %w", err)
	}
	n := len(prefixes)
	b := &Book{
		sec:      o.sec,
		prefixes: append([]netip.Prefix(nil), prefixes...),
		entries:  make([]Entry, count),
		index:    make(map[netip.Addr]bookPos, count*n),
	}
	ext := AppendMultiPrefix(nil, false, b.prefixes)
	addrs := make([]netip.Addr, count*n)
	ems := make([]byte, count*EncodedExtendedModifierLen)
	var info []byte
	for i := range b.entries {
		info = binary.BigEndian.AppendUint32(append(info[:0], modifierLabel...), uint32(i))
		m, err := hkdf.Expand(sha256.New, prk, string(info), 16)
		if err != nil {
			return nil, fmt.Errorf("hba: deriving modifier %d: %w", i, err)
		}
		info = binary.BigEndian.AppendUint32(append(info[:0], emLabel...), uint32(i))
		emb, err := hkdf.Expand(sha256.New, prk, string(info), ExtendedModifierLen)
		if err != nil {
			return nil, fmt.Errorf("hba: deriving extended modifier %d: %w", i, err)
		}
		em := ems[i*EncodedExtendedModifierLen : (i+1)*EncodedExtendedModifierLen : (i+1)*EncodedExtendedModifierLen]
		copy(em, emDERPrefix)
		copy(em[len(emDERPrefix):], emb)
		s := Set{
			Sec:        o.sec,
			PublicKey:  em,
			Extensions: ext,
			Prefixes:   b.prefixes,
			Addresses:  addrs[i*n : (i+1)*n : (i+1)*n],
		}
		s.Modifier = searchModifier([16]byte(m), o.sec, em, ext)
		taken := func(a netip.Addr) bool { _, dup := b.index[a]; return dup }
		if !s.fill(taken) {
			return nil, fmt.Errorf("%w: entry %d: three collisions", ErrCollisionCount, i)
		}
		b.entries[i] = Entry{
			Index:            i,
			Modifier:         s.Modifier,
			CollisionCount:   s.CollisionCount,
			Sec:              o.sec,
			ExtendedModifier: em,
			Prefixes:         b.prefixes,
			Addresses:        s.Addresses,
			ext:              ext,
		}
		for j, a := range s.Addresses {
			b.index[a] = bookPos{int32(i), int32(j)}
		}
	}
	return b, nil
}

// Len returns the number of entries.
func (b *Book) Len() int { return len(b.entries) }

// Sec returns the Sec parameter of every entry.
func (b *Book) Sec() uint8 { return b.sec }

// Prefixes returns the site /64s in Multi-Prefix order; do not modify.
func (b *Book) Prefixes() []netip.Prefix { return b.prefixes }

// Entry returns entry i; it panics if i is out of range.
func (b *Book) Entry(i int) Entry { return b.entries[i] }

// Lookup finds the entry and prefix index of addr. It does not allocate.
func (b *Book) Lookup(addr netip.Addr) (entry, prefixIndex int, ok bool) {
	p, ok := b.index[addr]
	if !ok {
		return 0, 0, false
	}
	return int(p.entry), int(p.prefix), true
}

// Locator returns the address of entry under prefix prefixIndex; it panics
// if either is out of range.
func (b *Book) Locator(entry, prefixIndex int) netip.Addr {
	return b.entries[entry].Addresses[prefixIndex]
}

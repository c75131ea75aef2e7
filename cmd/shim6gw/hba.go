package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/shim6gw/shim6gw/hba"
)

// defaultHBACount matches the gateway's default hba.hosts.
const defaultHBACount = 256

// prefixList is a repeatable --prefix flag.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	s := make([]string, len(*p))
	for i, x := range *p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(v string) error {
	x, err := netip.ParsePrefix(v)
	if err != nil {
		return errors.New("not a prefix")
	}
	*p = append(*p, x)
	return nil
}

// hbaPlanEntry is one host in the JSON plan: enough to re-verify every
// address with any RFC 5535 implementation.
type hbaPlanEntry struct {
	Index          int      `json:"index"`
	ULID           string   `json:"ulid"`
	Modifier       string   `json:"modifier"`
	CollisionCount uint8    `json:"collision_count"`
	Sec            uint8    `json:"sec"`
	Prefixes       []string `json:"prefixes"`
	Addresses      []string `json:"addresses"`
	PDS            string   `json:"pds"` // CGA PDS of the ULID, hex
}

const hbaUsage = `usage: shim6gw hba --prefix P1/64 --prefix P2/64 --secret-file FILE [--count N] [--format text|json] [--sec S]

Print the HBA address plan (RFC 5535) that the gateway derives from the
site secret: per host index its ULID (under the first prefix) and its
locators (one per prefix, in --prefix order). The secret file's bytes are
the secret, minus one trailing newline ("\n" or "\r\n").

flags:
`

// runHBA implements "shim6gw hba".
func runHBA(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("hba", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	var prefixes prefixList
	fset.Var(&prefixes, "prefix", "a site /64, once per uplink; the first gives the ULIDs")
	secretFile := fset.String("secret-file", "", "file holding the site secret")
	count := fset.Int("count", defaultHBACount, "number of hosts")
	format := fset.String("format", "text", "output format: text or json")
	sec := fset.Uint("sec", hba.DefaultBookSec, "CGA Sec parameter (0..2); changes every address")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, hbaUsage)
			fset.SetOutput(stdout)
			fset.PrintDefaults()
			return exitOK
		}
		return failf(stderr, exitUsage, "hba: %v", err)
	}
	switch {
	case fset.NArg() > 0:
		return failf(stderr, exitUsage, "hba: unexpected argument %q", fset.Arg(0))
	case *format != "text" && *format != "json":
		return failf(stderr, exitUsage, "hba: --format must be text or json, got %q", *format)
	case *secretFile == "":
		return failf(stderr, exitUsage, "hba: --secret-file is required")
	case *sec > 7:
		return failf(stderr, exitUsage, "hba: --sec %d is not in 0..7", *sec)
	}
	secret, err := readSecret(*secretFile)
	if err != nil {
		return failf(stderr, exitUsage, "hba: %v", err)
	}
	book, err := hba.NewBook(secret, prefixes, *count, hba.WithSec(uint8(*sec)))
	if err != nil {
		status := exitFail
		if errors.Is(err, hba.ErrInvalid) || errors.Is(err, hba.ErrUnsupportedSec) {
			status = exitUsage
		}
		return failf(stderr, status, "%v", err) // already "hba: ..."
	}
	if *format == "json" {
		err = writeHBAJSON(stdout, book)
	} else {
		err = writeHBAText(stdout, book)
	}
	if err != nil {
		return failf(stderr, exitFail, "hba: writing plan: %v", err)
	}
	return exitOK
}

// readSecret returns the file's bytes minus one trailing newline.
func readSecret(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read secret file %q: %v", name, err)
	}
	b = hba.TrimSecret(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("secret file %q is empty", name)
	}
	if len(b) < hba.MinSecretLen {
		// The gateway refuses such a secret too: a plan printed from it
		// could never be served.
		return nil, fmt.Errorf("secret file %q holds %d bytes, need at least %d", name, len(b), hba.MinSecretLen)
	}
	return b, nil
}

func writeHBAJSON(w io.Writer, book *hba.Book) error {
	prefixes := make([]string, len(book.Prefixes()))
	for i, p := range book.Prefixes() {
		prefixes[i] = p.String()
	}
	plan := make([]hbaPlanEntry, book.Len())
	for i := range plan {
		e := book.Entry(i)
		addrs := make([]string, len(e.Addresses))
		for j, a := range e.Addresses {
			addrs[j] = a.String()
		}
		plan[i] = hbaPlanEntry{
			Index:          e.Index,
			ULID:           e.ULID().String(),
			Modifier:       hex.EncodeToString(e.Modifier[:]),
			CollisionCount: e.CollisionCount,
			Sec:            e.Sec,
			Prefixes:       prefixes,
			Addresses:      addrs,
			PDS:            hex.EncodeToString(e.PDS(0)),
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(plan)
}

func writeHBAText(w io.Writer, book *hba.Book) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "# HBA address plan: %d hosts, %d prefixes, sec %d\n", book.Len(), len(book.Prefixes()), book.Sec())
	fmt.Fprint(tw, "INDEX")
	for i, p := range book.Prefixes() {
		if i == 0 {
			fmt.Fprintf(tw, "\tULID (%s)", p)
		} else {
			fmt.Fprintf(tw, "\tLOCATOR (%s)", p)
		}
	}
	fmt.Fprintln(tw)
	for i := range book.Len() {
		fmt.Fprint(tw, i)
		for _, a := range book.Entry(i).Addresses {
			fmt.Fprintf(tw, "\t%s", a)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

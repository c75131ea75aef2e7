package fastpath

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// ProgramName is the kernel name of the program (truncated to 15 bytes
// by the kernel); Cleanup recognises our attachments by it.
const ProgramName = "shim6gw_fastpath"

const flagRedirect = 1 // FP_REDIRECT

// Options configure Load.
type Options struct {
	// TUNIndex is the interface index of the gateway's TUN device. The
	// program looks routes up as if a rewritten packet had come out of
	// it, so the gateway's policy rules (iif tun from P_X → table upX)
	// choose the uplink exactly as for the TUN path.
	TUNIndex int

	// MaxContexts sizes the context maps and stamp slots (the gateway
	// passes limits.max_contexts); 0 means MaxContexts.
	MaxContexts int

	// testRun makes the program rewrite but not route: a packet it would
	// forward returns TC_ACT_REDIRECT with its bytes, for
	// BPF_PROG_TEST_RUN.
	testRun bool
}

// Program is the loaded program and its maps. Nothing is pinned: the
// program and maps live while the Program (and links of Attach) are open.
type Program struct {
	objs fastpathObjects
	maps *Maps

	mu    sync.Mutex
	links []*Attachment
}

// Load loads the program and its maps into the kernel. It needs
// CAP_BPF and CAP_NET_ADMIN (root) and a kernel with TCX (6.6).
func Load(opts Options) (*Program, error) {
	p := &Program{}
	n := opts.MaxContexts
	if n <= 0 {
		n = MaxContexts
	}
	spec, err := loadFastpath()
	if err != nil {
		return nil, fmt.Errorf("fastpath: %w", err)
	}
	for name, entries := range map[string]int{"by_tag": n, "by_pair": n, "locators": locatorsPerContext * n, "stamps": stampShards * n} {
		spec.Maps[name].MaxEntries = uint32(entries)
	}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("fastpath: load: %+v", ve)
		}
		return nil, fmt.Errorf("fastpath: load: %w", err)
	}
	cfg := fastpathFpConfig{TunIfindex: uint32(opts.TUNIndex)}
	if !opts.testRun {
		cfg.Flags = flagRedirect
	}
	if err := p.objs.Config.Put(uint32(0), cfg); err != nil {
		p.objs.Close()
		return nil, fmt.Errorf("fastpath: config: %w", err)
	}
	m, err := newMaps(&p.objs.fastpathMaps, n)
	if err != nil {
		p.objs.Close()
		return nil, err
	}
	p.maps = m
	return p, nil
}

// Maps returns the maps the gateway keeps in step with the rewrite table.
func (p *Program) Maps() *Maps { return p.maps }

// Close detaches every attachment and unloads the program and maps.
func (p *Program) Close() error {
	p.mu.Lock()
	links := p.links
	p.links = nil
	p.mu.Unlock()
	var errs []error
	for _, a := range links {
		errs = append(errs, a.Close())
	}
	p.maps.stampsMem = nil
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}

// Attachment is the program attached (TCX ingress) to a set of
// interfaces; Close detaches it from all of them.
type Attachment struct {
	once  sync.Once
	links []link.Link
	err   error
}

// Close detaches the program. Closing twice is harmless.
func (a *Attachment) Close() error {
	a.once.Do(func() {
		var errs []error
		for _, l := range a.links {
			errs = append(errs, l.Close())
		}
		a.err = errors.Join(errs...)
	})
	return a.err
}

// Attach attaches the program at TCX ingress of the LAN interface and of
// every uplink, through bpf_links owned by this process: if the process
// dies, the kernel detaches them. Every interface must be Ethernet-like.
// On error nothing stays attached.
func (p *Program) Attach(lan string, uplinks []string) (*Attachment, error) {
	a := &Attachment{}
	seen := map[string]bool{}
	for _, name := range append([]string{lan}, uplinks...) {
		if seen[name] {
			continue // once per interface, or it would run twice
		}
		seen[name] = true
		ifi, err := net.InterfaceByName(name)
		if err == nil && !isEthernet(ifi) {
			err = errors.New("not an Ethernet interface")
		}
		var l link.Link
		if err == nil {
			l, err = link.AttachTCX(link.TCXOptions{
				Interface: ifi.Index, Program: p.objs.Shim6gwFastpath, Attach: ebpf.AttachTCXIngress,
			})
		}
		if err != nil {
			_ = a.Close()
			return nil, fmt.Errorf("fastpath: attach to %s: %w", name, err)
		}
		a.links = append(a.links, l)
	}
	p.mu.Lock()
	p.links = append(p.links, a)
	p.mu.Unlock()
	return a, nil
}

// isEthernet reports whether ifi carries Ethernet frames: the program
// parses a 14-byte Ethernet header. (Read from rtnetlink, not sysfs, so
// that it holds in the calling thread's network namespace.)
func isEthernet(ifi *net.Interface) bool {
	return len(ifi.HardwareAddr) == 6 && ifi.Flags&(net.FlagLoopback|net.FlagPointToPoint) == 0
}

// Cleanup removes programs named ProgramName from TCX ingress of the
// given interfaces, whoever attached them (crash recovery; a bpf_link
// normally goes away with its process, but a holder may survive). It
// returns how many it removed; missing interfaces are skipped.
func Cleanup(ifaces []string) (int, error) {
	removed := 0
	var errs []error
	for _, name := range ifaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			continue
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			errs = append(errs, fmt.Errorf("fastpath: query %s: %w", name, err))
			continue
		}
		for _, ap := range res.Programs {
			ok, err := removeIfOurs(ifi.Index, ap)
			if err != nil {
				errs = append(errs, fmt.Errorf("fastpath: detach from %s: %w", name, err))
			}
			if ok {
				removed++
			}
		}
	}
	return removed, errors.Join(errs...)
}

func removeIfOurs(ifindex int, ap link.AttachedProgram) (bool, error) {
	prog, err := ebpf.NewProgramFromID(ap.ID)
	if err != nil {
		return false, err
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return false, err
	}
	// The kernel keeps 15 bytes; newer kernels report the BTF name whole.
	if info.Name != ProgramName && info.Name != ProgramName[:unix.BPF_OBJ_NAME_LEN-1] {
		return false, nil
	}
	if id, ok := ap.LinkID(); ok {
		l, err := link.NewFromID(id)
		if err != nil {
			return false, err
		}
		defer l.Close()
		return err == nil, l.Detach()
	}
	return true, link.RawDetachProgram(link.RawDetachProgramOptions{
		Target: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress,
	})
}

package nstest

import (
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/shim6gw/shim6gw/internal/nsrun"
)

// TCXProgram is one program attached at TCX ingress of an interface.
type TCXProgram struct {
	Name string // as the kernel keeps it: at most 15 bytes
	Prog ebpf.ProgramID
	Link link.ID // 0 if attached without a bpf_link
}

// TCXIngress lists the programs at TCX ingress of each of ifaces in the
// named namespace, in run order (bpftool need not be installed).
func TCXIngress(ns string, ifaces []string) (map[string][]TCXProgram, error) {
	out := map[string][]TCXProgram{}
	err := nsrun.InNamed(ns, func() error {
		for _, name := range ifaces {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return fmt.Errorf("query %s: %w", name, err)
			}
			out[name] = []TCXProgram{}
			for _, ap := range res.Programs {
				p, err := ebpf.NewProgramFromID(ap.ID)
				if err != nil {
					return err
				}
				info, err := p.Info()
				p.Close()
				if err != nil {
					return err
				}
				id, _ := ap.LinkID()
				out[name] = append(out[name], TCXProgram{Name: info.Name, Prog: ap.ID, Link: id})
			}
		}
		return nil
	})
	return out, err
}

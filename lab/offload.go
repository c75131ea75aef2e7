package lab

import (
	"context"
	"fmt"
	"os/exec"
)

// SetOffloads sets TSO, GSO and GRO on both ends of every veth of the lab.
// Off: every packet is its own skb at every hop, as on a wire between
// machines and as shimmed traffic always is (the kernel has no GSO handler
// for next header 140): the per-packet ceiling. On: a new veth's defaults,
// TSO and GSO on, GRO off (a veth passes its peer's super-packets on
// whole without GRO).
func (l *Lab) SetOffloads(ctx context.Context, on bool) error {
	if _, err := exec.LookPath("ethtool"); err != nil {
		return fmt.Errorf("%w: ethtool", ErrTool)
	}
	seg := "off"
	if on {
		seg = "on"
	}
	for _, k := range l.topoLinks() {
		for _, end := range [2]struct {
			n   Node
			dev string
		}{{k.a, k.aName}, {k.b, k.bName}} {
			if _, err := l.Exec(ctx, end.n, offloadArgs(end.dev, seg)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// offloadArgs is the ethtool command that sets TSO and GSO to seg ("on"
// or "off") on dev, GRO off.
func offloadArgs(dev, seg string) []string {
	return []string{"ethtool", "-K", dev, "tso", seg, "gso", seg, "gro", "off"}
}

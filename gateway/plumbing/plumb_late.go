package plumbing

import (
	"errors"
	"os"
	"syscall"
)

// An uplink interface may not exist yet when the gateway starts (PPPoE,
// LTE and VLAN interfaces appear late) or may vanish and come back. The
// gateway treats it exactly like an uplink that is down: its route stays
// pending, its accept_ra is set when it appears, and the monitor reports
// the uplink up once it is usable.

// linkAbsent reports the errors of a route whose device is down or does
// not exist (yet): the route waits for the uplink.
func linkAbsent(err error) bool {
	return errors.Is(err, syscall.ENETDOWN) || errors.Is(err, syscall.ENODEV)
}

// sysctlAbsent reports a per-interface sysctl of an interface that does
// not exist: nothing to set now, nothing to restore later.
func sysctlAbsent(err error) bool {
	return errors.Is(err, os.ErrNotExist)
}

// deferAcceptRA remembers an uplink whose accept_ra could not be set
// because the interface does not exist yet. Called with p.mu held.
func (p *Plumber) deferAcceptRA(iface string) {
	if p.lateRA == nil {
		p.lateRA = map[string]bool{}
	}
	p.lateRA[iface] = true
	p.log.Warn("uplink interface missing, treated as down until it appears", "interface", iface)
}

// setLateSysctls sets accept_ra on deferred interfaces that now exist.
// Called with p.mu held, before routes are re-installed.
func (p *Plumber) setLateSysctls() error {
	var errs []error
	for iface := range p.lateRA {
		err := p.setSysctl(sysctlAcceptRA(iface), "2")
		switch {
		case err == nil:
			delete(p.lateRA, iface)
			p.log.Info("uplink interface appeared, accept_ra set", "interface", iface)
		case !sysctlAbsent(err):
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

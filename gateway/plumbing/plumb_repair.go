package plumbing

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
)

// Repair kinds: the kind label of shim6gw_plumbing_repairs_total.
const (
	RepairRule  = "rule"
	RepairRoute = "route"
)

// RepairKinds lists the kind label values.
var RepairKinds = []string{RepairRule, RepairRoute}

// RepairResult is what one Repair pass did.
type RepairResult struct {
	// Rules and Routes re-installed after someone else removed them (a
	// network manager flushing foreign rules, an operator's `ip rule
	// flush`). A route of an uplink that came back is not a repair.
	Rules, Routes int
	// Missing is what is still not in the kernel after the pass.
	Missing []string
}

// Repair re-installs every rule and route of the gateway that is gone
// from the kernel, sets accept_ra on uplinks that appeared, and leaves
// pending the routes whose uplink is down or absent. Its cost is one rule
// dump and one dump per gateway table, whatever changed.
func (p *Plumber) Repair() (RepairResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var res RepairResult
	if !p.applied {
		return res, nil
	}
	var errs []error
	if err := p.setLateSysctls(); err != nil {
		errs = append(errs, err)
	}
	have, err := p.ops.Rules()
	if err != nil {
		return res, fmt.Errorf("gateway: list rules: %w", err)
	}
	for _, r := range p.rules {
		if slices.Contains(have, r) {
			continue
		}
		if err := p.ops.AddRule(r); err != nil && !errors.Is(err, syscall.EEXIST) {
			res.Missing = append(res.Missing, "rule "+r.String())
			errs = append(errs, fmt.Errorf("gateway: re-add rule %v: %w", r, err))
			continue
		}
		res.Rules++
		p.log.Warn("re-installed a rule someone removed", "rule", r.String())
	}
	tables := map[int][]Route{}
	for i, r := range p.routes {
		rs, ok := tables[r.Table]
		if !ok {
			if rs, err = p.ops.Routes(r.Table); err != nil {
				return res, fmt.Errorf("gateway: list table %d: %w", r.Table, err)
			}
			tables[r.Table] = rs
		}
		if slices.Contains(rs, r) {
			delete(p.pending, i)
			continue
		}
		err := p.ops.ReplaceRoute(r)
		switch {
		case err == nil && p.pending[i]:
			delete(p.pending, i)
			p.log.Info("installed the route of an uplink that came back", "route", r.String())
		case err == nil:
			res.Routes++
			p.log.Warn("re-installed a route someone removed", "route", r.String())
		case linkAbsent(err):
			p.pending[i] = true // the kernel dropped it with the link
		default:
			res.Missing = append(res.Missing, "route "+r.String())
			errs = append(errs, fmt.Errorf("gateway: re-add route %v: %w", r, err))
		}
	}
	return res, errors.Join(errs...)
}

package metrics

import (
	"strings"
	"unicode"

	"github.com/shim6gw/shim6gw/shim6"
)

// This file converts the engine's types (package shim6) into the metrics
// and /debug/contexts views, so the control loop only moves values.

// StateLabel returns the ContextStateLabels value of an engine state:
// its RFC name in snake case ("idle" for IDLE, which is not stored).
func StateLabel(s shim6.State) string { return snake(s.String()) }

// TypeLabel returns the MessageTypeLabels value of a control message type.
func TypeLabel(t shim6.Type) string {
	if !t.Known() {
		return "unknown"
	}
	return snake(t.String())
}

// snake turns "I2BIS-SENT" into "i2bis_sent" and "UpdateRequest" into
// "update_request".
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '-':
			r = '_'
		case unicode.IsUpper(r) && i > 0 && unicode.IsLower(rune(s[i-1])):
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// ContextInfoFrom converts the engine's description of a context.
func ContextInfoFrom(c shim6.ContextInfo) ContextInfo {
	return ContextInfo{
		LocalULID: c.LocalULID, PeerULID: c.PeerULID, State: StateLabel(c.State),
		LocalLocator: c.LocalLocator, PeerLocator: c.PeerLocator,
		LocalTag: uint64(c.LocalTag), PeerTag: uint64(c.PeerTag),
		RTT: c.RTT, LastFailover: c.LastFailover,
	}
}

// ControlStatsFrom turns the engine's counters and its current contexts
// into the metrics view. The control loop calls it (it owns the engine)
// and publishes the result for the scraper.
func ControlStatsFrom(s *shim6.Stats, contexts []shim6.ContextInfo) ControlStats {
	cs := ControlStats{
		ContextsByState: map[string]uint64{},
		Establishments: map[string]uint64{
			"established": s.Established, "failed": s.Failed, "no_support": s.NoSupport, "recovered": s.Recoveries,
		},
		Messages:     map[MessageKey]uint64{},
		Drops:        map[string]uint64{},
		Explorations: s.Explorations,
		Failovers:    s.Failovers,
		Evictions:    s.Evictions,
	}
	for _, c := range contexts {
		cs.ContextsByState[StateLabel(c.State)]++
	}
	for t := range s.Rx {
		label := TypeLabel(shim6.Type(t))
		if s.Rx[t] > 0 {
			cs.Messages[MessageKey{label, "rx"}] += s.Rx[t]
		}
		if s.Tx[t] > 0 {
			cs.Messages[MessageKey{label, "tx"}] += s.Tx[t]
		}
	}
	for d, n := range s.Drops {
		if n > 0 {
			cs.Drops[shim6.DropReason(d).String()] += n
		}
	}
	return cs
}

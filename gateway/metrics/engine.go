package metrics

import (
	"github.com/shim6gw/shim6gw/shim6"
)

// This file converts the engine's types (package shim6) into the metrics
// and /debug/contexts views, so the control loop only moves values.

// StateLabel returns the ContextStateLabels value of an engine state
// ("idle" for IDLE, which the engine does not store).
func StateLabel(s shim6.State) string {
	switch s {
	case shim6.StateI1Sent:
		return "i1_sent"
	case shim6.StateI2Sent:
		return "i2_sent"
	case shim6.StateI2bisSent:
		return "i2bis_sent"
	case shim6.StateEstablished:
		return "established"
	case shim6.StateEFailed:
		return "e_failed"
	case shim6.StateNoSupport:
		return "no_support"
	}
	return "idle"
}

// TypeLabel returns the MessageTypeLabels value of a control message type.
func TypeLabel(t shim6.Type) string {
	switch t {
	case shim6.TypeI1:
		return "i1"
	case shim6.TypeR1:
		return "r1"
	case shim6.TypeI2:
		return "i2"
	case shim6.TypeR2:
		return "r2"
	case shim6.TypeR1bis:
		return "r1bis"
	case shim6.TypeI2bis:
		return "i2bis"
	case shim6.TypeUpdateRequest:
		return "update_request"
	case shim6.TypeUpdateAck:
		return "update_ack"
	case shim6.TypeKeepalive:
		return "keepalive"
	case shim6.TypeProbe:
		return "probe"
	case shim6.TypeError:
		return "error"
	}
	return "unknown"
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

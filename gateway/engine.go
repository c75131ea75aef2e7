package gateway

import (
	"github.com/shim6gw/shim6gw/shim6"
)

// This file converts between the configuration and metrics views of
// package gateway and the engine's types (package shim6), so the control
// loop only moves values.

// Engine returns the timers as the engine takes them.
func (t Timers) Engine() shim6.Timers {
	return shim6.Timers{
		I1Timeout:            t.I1Timeout,
		I1RetriesMax:         t.I1RetriesMax,
		I2Timeout:            t.I2Timeout,
		I2RetriesMax:         t.I2RetriesMax,
		I2bisTimeout:         t.I2bisTimeout,
		I2bisRetriesMax:      t.I2bisRetriesMax,
		ValidatorMinLifetime: t.ValidatorMinLifetime,
		NoR1HolddownTime:     t.NoR1HolddownTime,
		ICMPHolddownTime:     t.ICMPHolddownTime,
		UpdateTimeout:        t.UpdateTimeout,
		MaxUpdateTimeout:     t.MaxUpdateTimeout,
		SendTimeout:          t.SendTimeout,
		KeepaliveTimeout:     t.KeepaliveTimeout,
		InitialProbeTimeout:  t.InitialProbeTimeout,
		NumInitialProbes:     t.NumInitialProbes,
		MaxProbeTimeout:      t.MaxProbeTimeout,
		IdleTimeout:          t.IdleTimeout,
		NonceInterval:        t.NonceInterval,
		SecretRotation:       t.SecretRotation,
	}
}

// Engine returns the initiation policy as the engine takes it.
func (p PolicyConfig) Engine() shim6.Policy {
	return shim6.Policy{Packets: p.InitiateAfterNotices, After: p.InitiateAfter, Window: p.Window, MaxPending: p.MaxPending}
}

// Apply sets the engine's resource limits from the configuration.
func (l LimitsConfig) Apply(ec *shim6.EngineConfig) {
	ec.MaxContexts = l.MaxContexts
}

// EngineUplinks returns the uplinks as the engine names them: a local
// locator inside an uplink's provider prefix is on that uplink.
func (c *Config) EngineUplinks() []shim6.Uplink {
	out := make([]shim6.Uplink, len(c.Uplinks))
	for i, u := range c.Uplinks {
		out[i] = shim6.Uplink{Name: u.Name, Prefix: u.Prefix}
	}
	return out
}

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

package shim6

import (
	"fmt"
	"reflect"
	"time"
)

// Live reconfiguration (SIGHUP in the gateway): timers and the initiation
// policy change without a restart, open contexts stay.

// SetTimers replaces the engine's timers. Zero fields take the RFC
// defaults as in NewEngine; a negative field is an error (ErrConfig) and
// leaves the timers unchanged. Contexts keep their state and tags; the
// deadlines of established contexts are recomputed at once (so a shorter
// Send Timeout takes effect for a Send timer already running, RFC 5534
// §6.4), handshake retransmissions use the new values from their next
// retransmission. Peers learn a new Send Timeout (our Keepalive Timeout
// option, RFC 5534 §5.3) only with contexts established afterwards.
//
// A change of NonceInterval, SecretRotation or ValidatorMinLifetime
// re-keys the Responder Validators: an R1/R1bis sent before the change
// may be refused, and its initiator retransmits its I1 (RFC 5533 §7.8).
func (e *Engine) SetTimers(t Timers) error {
	if err := checkTimers(t); err != nil {
		return err
	}
	t = t.withDefaults()
	old := e.t
	e.t = t
	if old.NonceInterval != t.NonceInterval || old.SecretRotation != t.SecretRotation ||
		old.ValidatorMinLifetime != t.ValidatorMinLifetime {
		e.val = newValidators(e.val.site, t)
	}
	for _, c := range e.byPair {
		e.reschedule(c)
	}
	return nil
}

// Timers returns the timers in effect (defaults filled in).
func (e *Engine) Timers() Timers { return e.t }

// SetPolicy replaces the initiation policy (RFC 5533 §1.1 deferred
// context establishment). Zero fields take the defaults as in NewEngine;
// a negative field is an error (ErrConfig). Pairs already being counted
// keep their counts and are judged by the new policy on their next
// packet; if MaxPending shrank, the oldest pairs are forgotten as new
// ones arrive.
func (e *Engine) SetPolicy(p Policy) error {
	if p.InitiateAfterNotices < 0 || p.InitiateAfter < 0 || p.Window < 0 || p.MaxPending < 0 {
		return fmt.Errorf("%w: negative policy value %+v", ErrConfig, p)
	}
	e.pol = p.withDefaults()
	return nil
}

// Policy returns the initiation policy in effect (defaults filled in).
func (e *Engine) Policy() Policy { return e.pol }

// checkTimers rejects negative durations and counts; zero means "default".
func checkTimers(t Timers) error {
	v := reflect.ValueOf(t)
	for i := range v.NumField() {
		f := v.Field(i)
		neg := false
		switch x := f.Interface().(type) {
		case time.Duration:
			neg = x < 0
		case int:
			neg = x < 0
		}
		if neg {
			return fmt.Errorf("%w: timer %s is negative (%v)", ErrConfig, v.Type().Field(i).Name, f.Interface())
		}
	}
	return nil
}

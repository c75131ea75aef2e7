package metrics

import (
	"slices"
	"testing"
)

// TestLabelVocabulary pins the label values dashboards and alert rules
// use: renaming an enum value in shim6 or rewrite renames a series.
func TestLabelVocabulary(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want []string
	}{
		{"states", ContextStateLabels, []string{"i1_sent", "i2_sent", "i2bis_sent", "established", "e_failed", "no_support"}},
		{"message types", MessageTypeLabels, []string{"i1", "r1", "i2", "r2", "r1bis", "i2bis", "update_request", "update_ack",
			"keepalive", "probe", "error", "unknown"}},
		{"control drops", ControlDropLabels, []string{"malformed", "unknown_type", "critical_option", "no_context", "bad_validator",
			"stale_nonce", "verify_failed", "wrong_state", "bad_locator", "rate_limited", "bad_address", "bad_preferences",
			"too_long", "bad_validator_len", "context_limit", "peer_key_too_large", "verify_budget", "source_quota"}},
		{"directions", PacketDirectionLabels, []string{"outbound", "inbound"}},
		{"path kinds", PathKindLabels, []string{"passthrough", "outbound_shim", "inbound_shim", "control", "fallback_out",
			"fallback_in", "icmp_error", "too_big"}},
		{"packet drops", PacketDropLabels, []string{"malformed", "no_headroom", "too_big", "unknown_tag", "locator_mismatch",
			"bad_payload_header", "fragmented_shim"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
	if got := snake("UpdateRequest") + " " + snake("I2BIS-SENT") + " " + snake("R1bis"); got != "update_request i2bis_sent r1bis" {
		t.Errorf("snake: %s", got)
	}
}

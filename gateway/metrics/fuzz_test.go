package metrics

import (
	"encoding/json"
	"testing"
)

// FuzzContextInfoJSON: decoding never panics, and what decodes re-encodes
// to something that decodes to the same value.
func FuzzContextInfoJSON(f *testing.F) {
	for _, c := range testContexts {
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	f.Add([]byte(`{"local_tag":"ffffffffffff","rtt_seconds":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c ContextInfo
		if err := json.Unmarshal(b, &c); err != nil {
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var back ContextInfo
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("decode of re-encoded %s: %v", out, err)
		}
		if back.LocalULID != c.LocalULID || back.PeerTag != c.PeerTag || back.State != c.State ||
			!back.LastFailover.Equal(c.LastFailover) {
			t.Fatalf("round trip changed %+v into %+v", c, back)
		}
	})
}

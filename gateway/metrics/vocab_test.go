package metrics

import (
	"slices"
	"testing"

	"github.com/shim6gw/shim6gw/rewrite"
)

// TestDataplaneVocabularyMatchesRewrite keeps the closed label sets in
// step with package rewrite's names: a reason or path kind the collector
// does not know would silently vanish from /metrics.
func TestDataplaneVocabularyMatchesRewrite(t *testing.T) {
	var drops []string
	for r := rewrite.NotDropped + 1; r < rewrite.NumDropReasons; r++ {
		drops = append(drops, r.String())
	}
	if !slices.Equal(drops, PacketDropLabels) {
		t.Errorf("PacketDropLabels = %v, rewrite has %v", PacketDropLabels, drops)
	}
	var paths []string
	for k := rewrite.PathKind(0); k < rewrite.NumPathKinds; k++ {
		if k != rewrite.PathDropped { // counted by reason instead
			paths = append(paths, k.String())
		}
	}
	if !slices.Equal(paths, PathKindLabels) {
		t.Errorf("PathKindLabels = %v, rewrite has %v", PathKindLabels, paths)
	}
	dirs := []string{rewrite.Outbound.String(), rewrite.Inbound.String()}
	if !slices.Equal(dirs, PacketDirectionLabels) {
		t.Errorf("PacketDirectionLabels = %v, rewrite has %v", PacketDirectionLabels, dirs)
	}
}

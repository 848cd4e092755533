package groups

import (
	"testing"

	"github.com/streamline-dev/streamline/shared/meta"
)

// TestDesiredOwnerSpreadsAndMovesLittle: shards spread over gateways, and
// a gateway joining only takes shards for itself (nothing moves between
// the others), so a scale-out interrupts as few groups as possible.
func TestDesiredOwnerSpreadsAndMovesLittle(t *testing.T) {
	three := []string{"gateway-1", "gateway-2", "gateway-3"}
	four := append([]string{"gateway-4"}, three...)
	count := map[string]int{}
	for shard := range meta.GroupShards {
		before, after := desiredOwner(shard, three), desiredOwner(shard, four)
		count[before]++
		if after != before && after != "gateway-4" {
			t.Fatalf("shard %d moved from %s to %s when gateway-4 joined", shard, before, after)
		}
		if desiredOwner(shard, []string{three[2], three[0], three[1]}) != before {
			t.Fatalf("shard %d: owner depends on the order gateways are listed", shard)
		}
	}
	for _, id := range three {
		if n := count[id]; n < meta.GroupShards/6 {
			t.Fatalf("%s owns %d of %d shards: %v", id, n, meta.GroupShards, count)
		}
	}
}

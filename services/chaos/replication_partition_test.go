package chaos

import (
	"testing"
	"time"
)

// TestReplicatedLeaderPartitioned is issue 13's network partitions, on the
// campaign's workload (a replication factor 3 local topic with
// min.insync.replicas=2 next to the others, idempotent acks=all
// producers, a committing consumer group, admin churn). logsvc-1 leads a
// third of that topic's partitions (replica placement spreads leaders) and
// is cut off with a toxiproxy blackhole for 15 s:
//
//   - from etcd: its lease expires, it is fenced (it acknowledges nothing
//     more) and the controller elects a new leader from the ISR; when the
//     link heals it rejoins as a follower and truncates what it appended
//     after its last acknowledged batch (KIP-320);
//   - from the gateways and its followers (its advertised address, which
//     both use): its followers fall out of its ISR, so acks=all cannot
//     complete there (NOT_ENOUGH_REPLICAS once the ISR is below 2), and
//     after healing they catch up and rejoin.
//
// The campaign's checker then requires every acknowledged record exactly
// once, in order, at its offset (lost, duplicated, misplaced, reordered,
// phantom all 0) and every partition to take writes again.
func TestReplicatedLeaderPartitioned(t *testing.T) {
	for name, link := range map[string]string{"from-etcd": "logsvc-1->etcd", "from-followers-and-gateways": "gateway->logsvc-1"} {
		t.Run(name, func(t *testing.T) {
			Run(t, Config{Seed: 1, Duration: 30 * time.Second, plan: []step{
				{kind: "blackhole", target: link, at: 0, dur: 15 * time.Second},
			}})
		})
	}
}

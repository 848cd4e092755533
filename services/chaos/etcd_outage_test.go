package chaos

import (
	"testing"
	"time"
)

// TestEtcdOutage is issue 10's "etcd unavailable for 15 s (every member)":
// with idempotent producers, a committing consumer group and admin churn
// running on local and diskless topics, etcd is frozen (SIGSTOP: requests
// hang) and, in the second case, killed (connections refused) and started
// again after 15 s. Nothing acknowledged may be lost (an acknowledgement
// during the outage can only be a retry of a batch stored before), no process
// may crash or exit (every lease expires meanwhile: each process must
// register again by itself), every process must be ready within 30 s and
// every partition take produce and fetch within 60 s afterwards. The
// checks are the campaign's (see Run).
func TestEtcdOutage(t *testing.T) {
	for _, kind := range []string{"pause", "kill"} {
		t.Run(kind, func(t *testing.T) {
			Run(t, Config{Seed: 1, Duration: 30 * time.Second, plan: []step{
				{kind: kind, target: "etcd", at: 0, dur: 15 * time.Second},
			}})
		})
	}
}

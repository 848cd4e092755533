// Package etcdembed holds the settings every etcd server Streamline runs
// shares: the all-in-one's embedded etcd and streamline-etcd (which the
// compose file and the Kubernetes manifests run).
//
// Streamline's metadata is small but rewritten often (leases, manifests,
// group offsets), and etcd keeps every old revision until it is
// compacted: without compaction its database grows until it reaches the
// backend quota and etcd refuses every write (NOSPACE). etcd compacts by
// itself when auto-compaction is configured, so that is what Apply does.
package etcdembed

import (
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// DefaultHistory is how much revision history etcd keeps: watches that
// fall further behind than this re-list (meta.Cache does) instead of
// resuming. Kubernetes' API server compacts at the same period.
const DefaultHistory = 5 * time.Minute

// Apply configures cfg to compact its revision history periodically,
// keeping history (DefaultHistory when zero; negative disables
// compaction).
func Apply(cfg *embed.Config, history time.Duration) {
	if history == 0 {
		history = DefaultHistory
	}
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = history.String()
	if history < 0 {
		cfg.AutoCompactionRetention = "0" // etcd's own default: never
	}
}

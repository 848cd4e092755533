// Package etcdhealth watches the etcd cluster Streamline keeps its
// metadata in: each member's database size, size in use and quota, and the
// cluster's alarms, as metrics; a NOSPACE alarm as a readiness failure and
// a loud log line; and, in the one process that is asked to (the elected
// log-service controller), the upkeep with etcd's own Maintenance API:
// defragmenting a member whose database is mostly free space, and
// recovering from NOSPACE (compact, defragment, disarm) once compaction
// has made room.
//
// Revision history itself is compacted by etcd (auto-compaction, see
// package etcdembed); defragmentation returns the freed pages to the file
// system, which etcd never does by itself.
package etcdhealth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defaults of a Monitor.
const (
	DefaultInterval = 15 * time.Second
	// DefaultDefragMinBytes: smaller databases are not worth a defrag (it
	// blocks the member's writes while it runs).
	DefaultDefragMinBytes = 64 << 20
	// DefaultDefragFreeRatio: defragment once at least this share of the
	// database file is free pages.
	DefaultDefragFreeRatio = 0.5
)

// Config configures a Monitor.
type Config struct {
	Client *clientv3.Client
	// Upkeep reports whether this process does the upkeep now
	// (defragmentation, NOSPACE recovery); nil: never.
	Upkeep          func() bool
	Interval        time.Duration
	DefragMinBytes  int64
	DefragFreeRatio float64
	Logger          *slog.Logger
}

// Monitor polls etcd's health; see the package comment.
type Monitor struct {
	cfg Config
	log *slog.Logger

	dbSize, inUse, quota *prometheus.GaugeVec
	alarms               *prometheus.GaugeVec
	defrags              prometheus.Counter

	mu      sync.Mutex
	problem error
}

// New returns a monitor; Run polls.
func New(cfg Config) (*Monitor, error) {
	if cfg.Client == nil {
		return nil, errors.New("etcdhealth: Client is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.DefragMinBytes <= 0 {
		cfg.DefragMinBytes = DefaultDefragMinBytes
	}
	if cfg.DefragFreeRatio <= 0 {
		cfg.DefragFreeRatio = DefaultDefragFreeRatio
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Monitor{cfg: cfg, log: cfg.Logger.With("component", "etcdhealth")}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "streamline", Subsystem: "etcd", Name: name, Help: help}, labels)
	}
	m.dbSize = gauge("db_size_bytes", "Size of the etcd member's database file, by member endpoint.", "endpoint")
	m.inUse = gauge("db_size_in_use_bytes", "Bytes of the etcd member's database in use (the rest is free pages a defragmentation returns), by member endpoint.", "endpoint")
	m.quota = gauge("db_quota_bytes", "The etcd member's backend quota: at this size it raises NOSPACE and refuses writes, by member endpoint.", "endpoint")
	m.alarms = gauge("alarm", "1 while the etcd cluster has an alarm of this type raised (NOSPACE: every write is refused).", "alarm")
	m.defrags = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "streamline", Subsystem: "etcd", Name: "defragmentations_total", Help: "Defragmentations of etcd members this process ran."})
	return m, nil
}

// Describe implements prometheus.Collector: a Monitor is registered as
// one collector of the streamline_etcd_* series.
func (m *Monitor) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Monitor) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *Monitor) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.dbSize, m.inUse, m.quota, m.alarms, m.defrags}
}

// Problem is non-nil while etcd cannot take writes (a NOSPACE or CORRUPT
// alarm): readiness checks report it.
func (m *Monitor) Problem() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.problem
}

// Run polls until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// member is one endpoint's status.
type member struct {
	endpoint           string
	size, inUse, quota int64
	revision           int64
}

// Poll checks etcd once (Run calls it every Interval).
func (m *Monitor) Poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Interval)
	defer cancel()
	var members []member
	for _, ep := range m.cfg.Client.Endpoints() {
		st, err := m.cfg.Client.Status(ctx, ep)
		if err != nil {
			m.log.Debug("etcd member status", "endpoint", ep, "err", err)
			continue
		}
		mb := member{endpoint: ep, size: st.DbSize, inUse: st.DbSizeInUse, quota: st.DbSizeQuota, revision: st.Header.GetRevision()}
		members = append(members, mb)
		m.dbSize.WithLabelValues(ep).Set(float64(mb.size))
		m.inUse.WithLabelValues(ep).Set(float64(mb.inUse))
		m.quota.WithLabelValues(ep).Set(float64(mb.quota))
	}
	alarms, err := m.cfg.Client.AlarmList(ctx)
	if err != nil {
		m.log.Debug("etcd alarms", "err", err)
		return
	}
	raised := map[pb.AlarmType]bool{}
	for _, a := range alarms.Alarms {
		raised[a.Alarm] = true
	}
	for _, a := range []pb.AlarmType{pb.AlarmType_NOSPACE, pb.AlarmType_CORRUPT} {
		v := 0.0
		if raised[a] {
			v = 1
		}
		m.alarms.WithLabelValues(a.String()).Set(v)
	}
	var problem error
	switch {
	case raised[pb.AlarmType_CORRUPT]:
		problem = errors.New("etcd raised a CORRUPT alarm: a member's data disagrees with the others; see etcd's logs")
	case raised[pb.AlarmType_NOSPACE]:
		problem = errors.New("etcd is out of space (NOSPACE alarm): every metadata write is refused until history is compacted, the database defragmented and the alarm disarmed")
	}
	m.mu.Lock()
	m.problem = problem
	m.mu.Unlock()
	if problem != nil {
		m.log.Error("etcd cannot take writes", "err", problem)
	}
	if m.cfg.Upkeep == nil || !m.cfg.Upkeep() || len(members) == 0 {
		return
	}
	if raised[pb.AlarmType_NOSPACE] {
		m.recoverSpace(ctx, members, alarms.Alarms)
		return
	}
	for _, mb := range members {
		if mb.size >= m.cfg.DefragMinBytes && float64(mb.size-mb.inUse) >= m.cfg.DefragFreeRatio*float64(mb.size) {
			m.defragment(ctx, mb, "mostly free pages")
		}
	}
}

// defragment defragments one member (its writes wait meanwhile).
func (m *Monitor) defragment(ctx context.Context, mb member, why string) bool {
	began := time.Now()
	if _, err := m.cfg.Client.Defragment(ctx, mb.endpoint); err != nil {
		m.log.Warn("etcd defragmentation failed", "endpoint", mb.endpoint, "err", err)
		return false
	}
	m.defrags.Inc()
	m.log.Info("defragmented etcd member", "endpoint", mb.endpoint, "why", why, "db_size_before", mb.size, "in_use", mb.inUse, "took", time.Since(began))
	return true
}

// recoverSpace is etcd's NOSPACE procedure: compact the history up to now,
// defragment every member, and disarm the alarm when each database is
// back below 80% of its quota (otherwise the next poll tries again: the
// data itself does not fit, and an operator must delete some).
func (m *Monitor) recoverSpace(ctx context.Context, members []member, alarms []*pb.AlarmMember) {
	rev := members[0].revision
	if _, err := m.cfg.Client.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		m.log.Warn("compacting etcd to recover from NOSPACE", "revision", rev, "err", err)
	}
	for _, mb := range members {
		if !m.defragment(ctx, mb, "NOSPACE") {
			return
		}
	}
	for _, mb := range members {
		st, err := m.cfg.Client.Status(ctx, mb.endpoint)
		if err != nil {
			return
		}
		if q := st.DbSizeQuota; q > 0 && float64(st.DbSize) > 0.8*float64(q) {
			m.log.Error("etcd is still nearly full after compaction and defragmentation: the metadata itself does not fit; delete topics or raise etcd's quota",
				"endpoint", mb.endpoint, "db_size", st.DbSize, "quota", q)
			return
		}
	}
	for _, a := range alarms {
		if a.Alarm != pb.AlarmType_NOSPACE {
			continue
		}
		if _, err := m.cfg.Client.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm}); err != nil {
			m.log.Warn("disarming etcd's NOSPACE alarm", "member", fmt.Sprintf("%x", a.MemberID), "err", err)
			return
		}
	}
	m.log.Info("etcd recovered from NOSPACE: history compacted, members defragmented, alarm disarmed")
	m.mu.Lock()
	m.problem = nil
	m.mu.Unlock()
}

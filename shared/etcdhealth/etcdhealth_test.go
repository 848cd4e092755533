package etcdhealth_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamline-dev/streamline/shared/etcdhealth"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// TestNoSpaceIsReportedAndRecovered fills a real etcd until it raises
// NOSPACE and refuses writes: the monitor reports it (Problem, the alarm
// gauge); once the data is deleted, the process doing the upkeep
// compacts, defragments and disarms, and etcd takes writes again.
func TestNoSpaceIsReportedAndRecovered(t *testing.T) {
	const quota = 4 << 20
	cli := metatest.StartWith(t, func(cfg *embed.Config) { cfg.QuotaBackendBytes = quota }).Client
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	value := strings.Repeat("x", 128<<10)
	var n int
	for ; ; n++ {
		_, err := cli.Put(ctx, fmt.Sprintf("fill/%04d", n), value)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 1000 {
			t.Fatal("etcd never ran out of space")
		}
	}
	upkeep := false
	reg := prometheus.NewRegistry()
	m, err := etcdhealth.New(etcdhealth.Config{Client: cli, Upkeep: func() bool { return upkeep }, DefragMinBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(m)
	m.Poll(ctx)
	if err := m.Problem(); err == nil || !strings.Contains(err.Error(), "NOSPACE") {
		t.Fatalf("problem %v, want NOSPACE", err)
	}
	if got := gauge(t, reg, "streamline_etcd_alarm", "NOSPACE"); got != 1 {
		t.Fatalf("alarm gauge %v", got)
	}
	if got := gauge(t, reg, "streamline_etcd_db_quota_bytes", ""); got != quota {
		t.Fatalf("quota gauge %v, want %d", got, quota)
	}

	// Deletes are allowed under NOSPACE; the space comes back only through
	// compaction and defragmentation, and writes only once disarmed.
	if _, err := cli.Delete(ctx, "fill/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	m.Poll(ctx)
	if m.Problem() == nil {
		t.Fatal("recovered without the upkeep")
	}
	upkeep = true
	m.Poll(ctx)
	if err := m.Problem(); err != nil {
		t.Fatalf("after upkeep: %v", err)
	}
	if _, err := cli.Put(ctx, "after", "ok"); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	m.Poll(ctx)
	if got := gauge(t, reg, "streamline_etcd_alarm", "NOSPACE"); got != 0 {
		t.Fatalf("alarm gauge after recovery %v", got)
	}
	if got := gauge(t, reg, "streamline_etcd_defragmentations_total", ""); got < 1 {
		t.Fatalf("defragmentations %v", got)
	}
	t.Logf("%d values of 128 KiB filled a %d MiB quota; recovered", n, quota>>20)
}

// gauge reads a gathered gauge or counter.
func gauge(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

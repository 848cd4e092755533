package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

// TestSeparateServiceBinaries runs the cluster as separate OS processes — a
// real etcd, and the logsvc, uploader and gateway binaries — and proves
// that they find each other through etcd alone: a franz-go client creates a
// 2-partition topic through the gateway, produces 2000 records and reads
// every one back at its acknowledged offset, each partition dense and in
// produce order. Then each binary stops cleanly on SIGTERM (exit 0 within
// 30 s) and its etcd registration is revoked at once, not left to expire
// with its lease (10 s TTL).
func TestSeparateServiceBinaries(t *testing.T) {
	etcd := metatest.Start(t)
	eps := strings.Join(etcd.Endpoints, ",")
	logsvcBin := cluster.Binary(t, "./logsvc/cmd/logsvc")
	uploaderBin := cluster.Binary(t, "./uploader/cmd/uploader")
	gatewayBin := cluster.Binary(t, "./gateway/cmd/gateway")

	// A fixed free port: the listen address is what logsvc advertises.
	ls := cluster.StartProcessStderr(t, logsvcBin, "log service started",
		"--etcd-endpoints", eps, "--data-dir", t.TempDir(), "--grpc-addr", cluster.FreeAddr(t), "--id", "logsvc-1")
	up := cluster.StartProcessStderr(t, uploaderBin, "uploader started",
		"--etcd-endpoints", eps, "--grpc-addr", cluster.FreeAddr(t), "--id", "uploader-1")
	addr := cluster.FreeAddr(t)
	gw := cluster.StartProcessStderr(t, gatewayBin, "gateway ready",
		"--etcd-endpoints", eps, "--kafka-addr", addr, "--node-id", "1", "--admin-addr", cluster.FreeAddr(t))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "separate"
	adm := kadm.NewClient(newClient(t, addr))
	if resp, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	prod := newClient(t, addr, kgo.DefaultProduceTopic(topic))
	const n = 2000
	acked := produceAll(ctx, t, prod, n, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%10)), Value: []byte(fmt.Sprintf("v-%05d", i))}
	})
	if len(acked) != 2 {
		t.Fatalf("records landed in %d partitions, want 2", len(acked))
	}
	for p, m := range acked {
		// One producer, one partition: offsets are dense and in produce
		// order (values carry the produce index, zero-padded).
		offs := make([]int64, 0, len(m))
		for o := range m {
			offs = append(offs, o)
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		for i, o := range offs {
			if o != int64(i) {
				t.Fatalf("partition %d: offsets not dense from 0: %d at position %d", p, o, i)
			}
			if i > 0 && string(m[o].value) <= string(m[offs[i-1]].value) {
				t.Fatalf("partition %d: %s at offset %d after %s", p, m[o].value, o, m[offs[i-1]].value)
			}
		}
	}
	consumeAndCompare(ctx, t, addr, topic, acked)

	// Clean shutdown, gateway first (clients are still connected to it).
	for _, s := range []struct {
		name string
		p    *cluster.Process
		key  string
	}{
		{"gateway", gw, "/streamline/nodes/gateway/gateway-1"},
		{"uploader", up, "/streamline/nodes/uploader/uploader-1"},
		{"logsvc", ls, "/streamline/nodes/logsvc/logsvc-1"},
	} {
		if !keyExists(ctx, t, etcd.Client, s.key) {
			t.Fatalf("%s: %s not registered while running", s.name, s.key)
		}
		start := time.Now()
		s.p.Signal(syscall.SIGTERM)
		if err := s.p.Wait(30 * time.Second); err != nil {
			t.Fatalf("%s after SIGTERM: %v (want exit code 0)", s.name, err)
		}
		// Revoked on close: gone well before the 10 s lease could expire.
		deadline := time.Now().Add(5 * time.Second)
		for keyExists(ctx, t, etcd.Client, s.key) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s still in etcd 5s after a clean exit", s.name, s.key)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s: exited 0 and deregistered %v after SIGTERM", s.name, time.Since(start).Round(time.Millisecond))
	}
}

func keyExists(ctx context.Context, t testing.TB, cli *clientv3.Client, key string) bool {
	t.Helper()
	resp, err := cli.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("etcd get %s: %v", key, err)
	}
	return resp.Count > 0
}

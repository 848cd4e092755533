package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestAllInOneEagerFlush runs the all-in-one binary with the longest
// diskless batch timeout (10 s) and no idle flush, so the only rule that
// can cut a flush for a lone record before the timeout is
// --diskless-eager-flush (nothing is uploading). Each record produced one
// at a time is acknowledged, reads back, and counts as an eager flush on
// /metrics (without the rule each would wait out the 10 s and count as
// none).
func TestAllInOneEagerFlush(t *testing.T) {
	bin := cluster.Binary(t, "./services/cmd/streamline")
	ports := cluster.FreeAddrs(t, 5)
	addr, httpAddr := ports[0], ports[4]
	cluster.StartProcess(t, bin, readyMarker, "--data-dir", t.TempDir(), "--kafka-addr", addr, "--etcd-client-addr", ports[1],
		"--etcd-peer-addr", ports[2], "--admin-addr", ports[3], "--http-addr", httpAddr,
		"--diskless-batch-timeout", "10s", "--diskless-idle-flush", "0", "--diskless-eager-flush")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const topic, records = "eager", 5
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(30*time.Second))
	if resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"storage.mode": ptr("diskless")}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	for i := range records {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "lone-%d", i)}).FirstErr(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}

	cons := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < records {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read back %d of %d records: %v", len(got), records, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	for i, v := range got {
		if want := fmt.Sprintf("lone-%d", i); v != want {
			t.Fatalf("record %d reads %q, want %q", i, v, want)
		}
	}

	fams := scrape(t, "http://"+httpAddr+"/metrics")
	eager, ok := sample(fams, "streamline_logsvc_buffer_eager_flushes_total", map[string]string{"storage_mode": "diskless"})
	if !ok || eager < records {
		t.Fatalf("eager flushes %v (series present: %v), want at least %d", eager, ok, records)
	}
	if idle, _ := sample(fams, "streamline_logsvc_buffer_idle_flushes_total", map[string]string{"storage_mode": "diskless"}); idle != 0 {
		t.Errorf("idle flushes %v with --diskless-idle-flush 0", idle)
	}
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAdminConfigsAndDeleteRecords drives the config and record admin
// APIs with franz-go's kadm against an all-in-one, on a local and a
// diskless topic:
//   - IncrementalAlterConfigs (kadm.AlterTopicConfigs) and AlterConfigs
//     (kadm.AlterTopicConfigsState) change retention, and DescribeConfigs
//     shows it; a change between local and diskless is refused with
//     INVALID_CONFIG;
//   - DeleteRecords moves the log start: a consumer from the start gets
//     its first record at the new start, byte for byte the one produced
//     there, ListOffsets earliest answers it, a fetch below it is
//     OFFSET_OUT_OF_RANGE, and deleting past the high watermark is
//     OFFSET_OUT_OF_RANGE;
//   - after the all-in-one restarts on the same data directory the
//     configs and both log starts are still there (local: the checkpoint
//     next to the segments; diskless: etcd), and DeleteRecords at -1 (the
//     high watermark) empties the log while produce continues after it.
func TestAdminConfigsAndDeleteRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dataDir := t.TempDir()
	s, restart := startRestartable(t, dataDir)
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))

	topics := map[string]string{"adm-local": "local", "adm-diskless": "diskless"}
	acked := map[string]map[int64]produced{}
	for topic, mode := range topics {
		resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"storage.mode": kmsg.StringPtr(mode)}, topic)
		if err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Err)
		}
		// Several batches of several records each, so the new start lies
		// inside a batch.
		prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(7))
		acked[topic] = produceAll(ctx, t, prod, 100, func(i int) *kgo.Record {
			return &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("%s-%03d", topic, i))}
		})[0]
		if len(acked[topic]) != 100 {
			t.Fatalf("%s: %d records acknowledged in partition 0", topic, len(acked[topic]))
		}
	}

	for topic, mode := range topics {
		// Incremental: retention.ms.
		alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kmsg.StringPtr("3600000")}}, topic)
		if err == nil {
			_, err = alter.On(topic, nil)
		}
		if err != nil {
			t.Fatalf("%s: alter retention.ms: %v", topic, err)
		}
		wantConfig(ctx, t, adm, topic, "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
		// The whole set (AlterConfigs): retention.bytes and the topic's
		// own storage.mode; retention.ms goes back to its default.
		alter, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{
			{Name: "retention.bytes", Value: kmsg.StringPtr("1073741824")},
			{Name: "storage.mode", Value: kmsg.StringPtr(mode)},
		}, topic)
		if err == nil {
			_, err = alter.On(topic, nil)
		}
		if err != nil {
			t.Fatalf("%s: alter configs: %v", topic, err)
		}
		wantConfig(ctx, t, adm, topic, "retention.bytes", "1073741824", kmsg.ConfigSourceDynamicTopicConfig)
		wantConfig(ctx, t, adm, topic, "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)
		// storage.mode cannot change between local and diskless, through
		// either API.
		other := map[string]string{"local": "diskless", "diskless": "local"}[mode]
		wantMsg := map[string]string{"local": "a local or hybrid topic cannot become diskless", "diskless": "storage.mode of a diskless topic cannot be changed"}[mode]
		for api, alterFn := range map[string]func(context.Context, []kadm.AlterConfig, ...string) (kadm.AlterConfigsResponses, error){
			"IncrementalAlterConfigs": adm.AlterTopicConfigs, "AlterConfigs": adm.AlterTopicConfigsState,
		} {
			alter, err := alterFn(ctx, []kadm.AlterConfig{{Name: "storage.mode", Value: kmsg.StringPtr(other)}}, topic)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := alter.On(topic, nil)
			if r.Err != kerr.InvalidConfig || r.ErrMessage != wantMsg {
				t.Fatalf("%s: %s storage.mode=%s: %v %q, want INVALID_CONFIG", topic, api, other, r.Err, r.ErrMessage)
			}
		}
		wantConfig(ctx, t, adm, topic, "storage.mode", mode, kmsg.ConfigSourceDynamicTopicConfig)
		// A batch window above meta.MaxBatchTimeout would outlast the
		// clients' request timeout: refused, and the old value stays.
		alter, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "remote.storage.batch.timeout.ms", Value: kmsg.StringPtr("60000")}}, topic)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := alter.On(topic, nil); r.Err != kerr.InvalidConfig || !strings.Contains(r.ErrMessage, "60000 is above the maximum 10000") {
			t.Fatalf("%s: remote.storage.batch.timeout.ms=60000: %v %q, want INVALID_CONFIG naming the maximum", topic, r.Err, r.ErrMessage)
		}
		wantConfig(ctx, t, adm, topic, "remote.storage.batch.timeout.ms", "100", kmsg.ConfigSourceDefaultConfig)

		// DeleteRecords below 37 (inside a batch: they hold up to 7).
		low := deleteRecords(ctx, t, adm, topic, 37)
		if low.Err != nil || low.LowWatermark != 37 {
			t.Fatalf("%s: delete records below 37: low watermark %d, %v", topic, low.LowWatermark, low.Err)
		}
		if r := deleteRecords(ctx, t, adm, topic, 101); r.Err != kerr.OffsetOutOfRange {
			t.Fatalf("%s: delete past the high watermark: %v", topic, r.Err)
		}
		checkLogStart(ctx, t, s.KafkaAddr(), adm, topic, 37, acked[topic])
	}

	// Restart on the same data directory and ports.
	s = restart(nil)
	adm = kadm.NewClient(newClient(t, s.KafkaAddr()))
	for topic := range topics {
		wantConfig(ctx, t, adm, topic, "retention.bytes", "1073741824", kmsg.ConfigSourceDynamicTopicConfig)
		checkLogStart(ctx, t, s.KafkaAddr(), adm, topic, 37, acked[topic])

		// -1 deletes everything up to the high watermark; new records
		// follow it and are all a consumer from the start gets.
		if low := deleteRecords(ctx, t, adm, topic, -1); low.Err != nil || low.LowWatermark != 100 {
			t.Fatalf("%s: delete records to the high watermark: %d %v", topic, low.LowWatermark, low.Err)
		}
		prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic))
		more := produceAll(ctx, t, prod, 5, func(i int) *kgo.Record {
			return &kgo.Record{Value: []byte(fmt.Sprintf("%s-after-%d", topic, i))}
		})[0]
		checkLogStart(ctx, t, s.KafkaAddr(), adm, topic, 100, more)
	}
}

// wantConfig waits until topic's config name is described as value from
// src (any gateway answers from its cache; the one that wrote has it).
func wantConfig(ctx context.Context, t *testing.T, adm *kadm.Client, topic, name, value string, src kmsg.ConfigSource) {
	t.Helper()
	var got kadm.Config
	for i := 0; i < 100; i++ {
		rc, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		c, err := rc.On(topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, cf := range c.Configs {
			if cf.Key == name {
				got = cf
			}
		}
		if got.MaybeValue() == value && got.Source == src {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s = %q from %v, want %q from %v", topic, name, got.MaybeValue(), got.Source, value, src)
}

// deleteRecords deletes partition 0 of topic below offset, retrying
// while the partition has no leader yet (after a restart).
func deleteRecords(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, offset int64) kadm.DeleteRecordsResponse {
	t.Helper()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: offset})
	for i := 0; ; i++ {
		resp, err := adm.DeleteRecords(ctx, offs)
		if err != nil {
			t.Fatalf("%s: delete records: %v", topic, err)
		}
		r, ok := resp.Lookup(topic, 0)
		if !ok {
			t.Fatalf("%s: no delete records answer for partition 0: %+v", topic, resp)
		}
		if (r.Err != kerr.NotLeaderForPartition && r.Err != kerr.LeaderNotAvailable) || i == 100 {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkLogStart checks that partition 0 of topic starts at start:
// ListOffsets earliest answers it, a fetch below it is
// OFFSET_OUT_OF_RANGE, and a consumer from the start gets exactly the
// records of want at or after start, the first one at start.
func checkLogStart(ctx context.Context, t *testing.T, addr string, adm *kadm.Client, topic string, start int64, want map[int64]produced) {
	t.Helper()
	var earliest int64 = -1
	for i := 0; i < 100; i++ {
		lo, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := lo.Lookup(topic, 0); ok && o.Err == nil {
			earliest = o.Offset
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if earliest != start {
		t.Fatalf("%s: ListOffsets earliest %d, want %d", topic, earliest, start)
	}

	if start > 0 {
		cl := newClient(t, addr)
		tp, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		req.MaxWaitMillis, req.MaxBytes = 100, 1<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic, ft.TopicID = topic, tp[topic].ID
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = start-1, 1<<20, -1
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		fresp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if p := fresp.Topics[0].Partitions[0]; p.ErrorCode != kerr.OffsetOutOfRange.Code || p.LogStartOffset != start {
			t.Fatalf("%s: fetch at %d: error %v, log start %d; want OFFSET_OUT_OF_RANGE and %d", topic, start-1, kerr.ErrorForCode(p.ErrorCode), p.LogStartOffset, start)
		}
	}

	n := 0
	for o := range want {
		if o >= start {
			n++
		}
	}
	cons := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	defer cons.Close()
	got := 0
	for got < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: consumed %d of %d records from %d", topic, got, n, start)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("%s: fetch: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if got == 0 && r.Offset != start {
				t.Fatalf("%s: first record consumed from the start is at %d, want %d", topic, r.Offset, start)
			}
			w, ok := want[r.Offset]
			if !ok || r.Offset < start || !bytes.Equal(w.value, r.Value) {
				t.Fatalf("%s: record at %d %q, want %q", topic, r.Offset, r.Value, w.value)
			}
			if !strings.HasPrefix(string(r.Value), topic) {
				t.Fatalf("%s: foreign record %q", topic, r.Value)
			}
			got++
		})
	}
}

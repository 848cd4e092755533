package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"github.com/streamline-dev/streamline/services/cluster"
)

// TestDescribeLogDirsSizes: an all-in-one with a local and a diskless
// topic. kadm.DescribeAllLogDirs reports one dir per storage mode
// ("local:<node>", "diskless:<node>") with each partition's size: at least
// the record values produced to it and not wildly more (batch and record
// overhead); the admin API's DescribeTopic shows the same sizes.
func TestDescribeLogDirsSizes(t *testing.T) {
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	topics := map[string]string{"sizes-local": "local", "sizes-diskless": "diskless"}
	const perPartition, valueLen = 100, 200
	values := map[string]map[int32]int64{} // bytes of values produced, per partition
	for topic, mode := range topics {
		resp, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"storage.mode": kmsg.StringPtr(mode)}, topic)
		if err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Err)
		}
		// Partitions 0 and 1 get data, 2 stays empty.
		prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerBatchCompression(kgo.NoCompression())) // sizes are stored bytes
		produceAll(ctx, t, prod, 2*perPartition, func(i int) *kgo.Record {
			return &kgo.Record{Partition: int32(i % 2), Value: bytes.Repeat([]byte{byte('a' + i%26)}, valueLen)}
		})
		values[topic] = map[int32]int64{0: perPartition * valueLen, 1: perPartition * valueLen, 2: 0}
	}

	// Sizes per topic and partition, from every broker (gateway).
	var sizes map[string]map[int32]int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		dirs, err := adm.DescribeAllLogDirs(ctx, nil)
		sizes = map[string]map[int32]int64{}
		ok := err == nil
		dirs.Each(func(d kadm.DescribedLogDir) {
			if d.Err != nil {
				ok = false
			}
			for topic, mode := range topics {
				ps, has := d.Topics[topic]
				if !has {
					continue
				}
				if !strings.HasPrefix(d.Dir, mode+":") {
					t.Fatalf("%s (%s) described in dir %q", topic, mode, d.Dir)
				}
				if d.TotalBytes != -1 || d.UsableBytes != -1 {
					t.Fatalf("dir %s: total %d usable %d, want -1 (unknown)", d.Dir, d.TotalBytes, d.UsableBytes)
				}
				if sizes[topic] == nil {
					sizes[topic] = map[int32]int64{}
				}
				for n, p := range ps {
					sizes[topic][n] = p.Size
				}
			}
		})
		if ok && len(sizes["sizes-local"]) == 3 && len(sizes["sizes-diskless"]) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log dirs: %v, sizes %v", err, sizes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for topic, ps := range values {
		for n, v := range ps {
			got := sizes[topic][n]
			// Each record carries ~10 bytes of framing, each batch ~61.
			if got < v || got > v+v/2+4096 {
				t.Fatalf("%s/%d: size %d for %d bytes of values", topic, n, got, v)
			}
			if v == 0 && got != 0 {
				t.Fatalf("%s/%d: empty partition has size %d", topic, n, got)
			}
		}
	}

	admin, _ := adminClient(t, s.AdminAddr())
	for topic := range topics {
		desc, err := admin.DescribeTopic(ctx, &adminv1.DescribeTopicRequest{Name: topic})
		if err != nil {
			t.Fatal(err)
		}
		if len(desc.Partitions) != 3 {
			t.Fatalf("%s: %d partitions", topic, len(desc.Partitions))
		}
		for _, p := range desc.Partitions {
			if p.HighWatermark > 0 && p.SizeBytes <= 0 {
				t.Fatalf("%s/%d: %d records but size_bytes %d", topic, p.Partition, p.HighWatermark, p.SizeBytes)
			}
			if p.SizeBytes != sizes[topic][p.Partition] {
				t.Fatalf("%s/%d: admin API size %d, DescribeLogDirs %d", topic, p.Partition, p.SizeBytes, sizes[topic][p.Partition])
			}
		}
	}
	t.Logf("sizes: %v", sizes)
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamline-dev/streamline/services/allinone"
	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/meta"
)

// TestDisklessLostObject deletes by hand the object holding a committed
// range of a diskless partition (as a GC race or an operator could) and
// restarts the all-in-one, so no memory of it is left. The partition must
// still open: produce is acknowledged after the end, the ranges before and
// after the lost one are read back, and a fetch of the lost range gets
// KAFKA_STORAGE_ERROR promptly instead of a crash, a hang or an empty
// answer that would stall the consumer silently.
func TestDisklessLostObject(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dataDir := t.TempDir()
	s, restart := startRestartable(t, dataDir)
	const topic = "lost-object"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if r, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"storage.mode": kmsg.StringPtr("diskless")}, topic); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	// Three rounds, each acknowledged before the next: each in objects of
	// its own.
	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic))
	for round := range 3 {
		for i := range 10 {
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("r%d-%d", round, i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	tp, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	topicID := meta.TopicID(tp[topic].ID)

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.EtcdEndpoint()}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := meta.NewStore(cli, "").RangesFrom(ctx, topicID, 0, 15, 1)
	cli.Close()
	if err != nil || len(rs) != 1 {
		t.Fatalf("manifest range of offset 15: %+v %v", rs, err)
	}
	lost := rs[0]
	if lost.BaseOffset < 10 || lost.LastOffset > 19 {
		t.Fatalf("range %d..%d is not within the second round", lost.BaseOffset, lost.LastOffset)
	}

	prod.Close()
	s = restart(func() { // while it is down, no memory of the object is left
		removed := 0
		_ = filepath.Walk(filepath.Join(dataDir, "objects"), func(path string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() && strings.HasSuffix(filepath.ToSlash(path), lost.Object) {
				removed++
				return os.Remove(path)
			}
			return nil
		})
		if removed != 1 {
			t.Fatalf("removed %d files for object %s", removed, lost.Object)
		}
	})

	// The partition opens: produce is acknowledged after the old end.
	prod = newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic))
	r, err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).First()
	if err != nil || r.Offset != 30 {
		t.Fatalf("produce after the restart: offset %v, %v; want 30", r, err)
	}

	cl := newClient(t, s.KafkaAddr())
	fetch := func(offset int64) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		req.MaxWaitMillis, req.MaxBytes = 100, 1<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic, ft.TopicID = topic, tp[topic].ID // kgo may send v13+ (ids)
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = offset, 1<<20, -1
		ft.Partitions = []kmsg.FetchRequestTopicPartition{fp}
		req.Topics = []kmsg.FetchRequestTopic{ft}
		// A retriable answer (the node still opening the partition) is
		// asked again; the lost range's answer is not retriable.
		var last int16
		for {
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatalf("fetch %d: %v (last answer: error %d)", offset, err, last)
			}
			p := resp.Topics[0].Partitions[0]
			last = p.ErrorCode
			if ke := kerr.ErrorForCode(p.ErrorCode); ke == nil || ke == kerr.KafkaStorageError || !kerr.IsRetriable(ke) {
				return p
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, off := range []int64{0, lost.LastOffset + 1, 30} {
		p := fetch(off)
		if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
			t.Fatalf("fetch %d: error %d, %d bytes; want records", off, p.ErrorCode, len(p.RecordBatches))
		}
	}
	p := fetch(lost.BaseOffset)
	if p.ErrorCode != kerr.KafkaStorageError.Code {
		t.Fatalf("fetch of the lost range %d..%d: error %d, %d bytes; want KAFKA_STORAGE_ERROR",
			lost.BaseOffset, lost.LastOffset, p.ErrorCode, len(p.RecordBatches))
	}
	if p.HighWatermark != 31 {
		t.Fatalf("high watermark %d with the lost range, want 31", p.HighWatermark)
	}
}

// startRestartable starts an all-in-one on dataDir and returns it with a
// restart function: it closes the server, runs whileDown (nil: nothing),
// and starts it again on the same data directory and ports (ports of our
// own that were just released; fresh "free" ones could be taken meanwhile).
func startRestartable(t *testing.T, dataDir string) (*allinone.Server, func(whileDown func()) *allinone.Server) {
	var ports allinone.Config
	s := cluster.StartAllInOne(t, cluster.WithDataDir(dataDir), func(c *allinone.Config) { ports = *c })
	return s, func(whileDown func()) *allinone.Server {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if whileDown != nil {
			whileDown()
		}
		s = cluster.StartAllInOne(t, cluster.WithDataDir(dataDir), func(c *allinone.Config) {
			c.KafkaAddr, c.EtcdClientAddr, c.EtcdPeerAddr, c.AdminAddr = ports.KafkaAddr, ports.EtcdClientAddr, ports.EtcdPeerAddr, ports.AdminAddr
		})
		return s
	}
}

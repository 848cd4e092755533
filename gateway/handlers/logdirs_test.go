package handlers_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc"

	"github.com/streamline-dev/streamline/gateway"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
)

// sizesLog is a LogService that answers DescribeSizes only: 1000 +
// partition bytes for topic "ld", 2000 + partition for "ldd".
type sizesLog struct {
	logv1.UnimplementedLogServiceServer
}

func fakeSize(topic string, p int32) int64 {
	if topic == "ldd" {
		return 2000 + int64(p)
	}
	return 1000 + int64(p)
}

func (sizesLog) DescribeSizes(_ context.Context, req *logv1.DescribeSizesRequest) (*logv1.DescribeSizesResponse, error) {
	resp := &logv1.DescribeSizesResponse{}
	for _, p := range req.GetPartitions() {
		resp.Partitions = append(resp.Partitions, &logv1.DescribeSizesPartitionResult{
			Topic: p.GetTopic(), Partition: p.GetPartition(), SizeBytes: fakeSize(p.GetTopic(), p.GetPartition()),
		})
	}
	return resp, nil
}

// TestDescribeLogDirs: a live log-service node (log-2, a fake answering
// sizes) and the harness's dead one (log-1). Each gateway answers only for
// the partitions it leads in Metadata, one dir per storage mode and node;
// the dead node's dir is KAFKA_STORAGE_ERROR without partitions; unknown
// topics and partitions are omitted; summed over both gateways every live
// partition is counted once (also through kadm.DescribeAllLogDirs).
func TestDescribeLogDirs(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	logv1.RegisterLogServiceServer(srv, sizesLog{})
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	sess, err := concurrency.NewSession(c.store.Client(), concurrency.WithTTL(30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	live := meta.LogNode{ID: "log-2", Addr: l.Addr().String()}
	if err := c.store.RegisterLogNode(ctx, sess, live); err != nil {
		t.Fatal(err)
	}
	dead := meta.LogNode{ID: "log-1", Addr: c.deadLogAddr}
	// Placed round-robin: "ld" even partitions on log-1 (dead), odd on
	// log-2; "ldd" (diskless) all on log-2.
	if _, err := c.store.CreateTopic(ctx, &meta.Topic{Name: "ld", Partitions: 6, StorageMode: meta.StorageLocal}, []meta.LogNode{dead, live}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.store.CreateTopic(ctx, &meta.Topic{Name: "ldd", Partitions: 2, StorageMode: meta.StorageDiskless}, []meta.LogNode{live}); err != nil {
		t.Fatal(err)
	}
	// The gateway "leader" of every partition, as both gateways see it.
	gwLeader := map[string]map[int32]int32{}
	waitFor(t, func() bool {
		for _, g := range []*gateway.Gateway{c.auto, c.manual} {
			md := c.metadata(g, []string{"ld", "ldd"})
			for _, mt := range md.Topics {
				if mt.ErrorCode != 0 {
					return false
				}
				gwLeader[*mt.Topic] = map[int32]int32{}
				for _, mp := range mt.Partitions {
					gwLeader[*mt.Topic][mp.Partition] = mp.Leader
				}
			}
		}
		return true
	})

	type dirPart struct {
		dir, topic string
		partition  int32
	}
	for _, g := range []*gateway.Gateway{c.auto, c.manual} {
		self := g.Advertised().NodeID
		// What g must answer: its partitions, live ones with sizes.
		want := map[dirPart]int64{}
		wantErr := map[string]*kerr.Error{}
		for topic, parts := range gwLeader {
			for p, leader := range parts {
				if leader != self {
					continue
				}
				switch {
				case topic == "ldd":
					want[dirPart{"diskless:log-2", topic, p}] = fakeSize(topic, p)
					wantErr["diskless:log-2"] = nil
				case p%2 == 1:
					want[dirPart{"local:log-2", topic, p}] = fakeSize(topic, p)
					wantErr["local:log-2"] = nil
				default:
					wantErr["local:log-1"] = kerr.KafkaStorageError
				}
			}
		}
		for v := int16(0); v <= 4; v++ {
			for _, all := range []bool{true, false} {
				req := kmsg.NewPtrDescribeLogDirsRequest()
				req.Version = v
				if !all {
					req.Topics = []kmsg.DescribeLogDirsRequestTopic{
						{Topic: "ld", Partitions: []int32{0, 1, 2, 3, 4, 5, 9, 1}},
						{Topic: "ldd", Partitions: []int32{0, 1}},
						{Topic: "missing", Partitions: []int32{0}},
					}
				}
				resp := c.raw(g, req).(*kmsg.DescribeLogDirsResponse)
				wantCode(t, "top level", resp.ErrorCode, nil)
				got := map[dirPart]int64{}
				gotDirs := map[string]bool{}
				for i, d := range resp.Dirs {
					if i > 0 && resp.Dirs[i-1].Dir >= d.Dir {
						t.Fatalf("gateway %d v%d: dirs not sorted: %s after %s", self, v, d.Dir, resp.Dirs[i-1].Dir)
					}
					we, ok := wantErr[d.Dir]
					if !ok {
						t.Fatalf("gateway %d v%d: unexpected dir %q", self, v, d.Dir)
					}
					gotDirs[d.Dir] = true
					wantCode(t, d.Dir, d.ErrorCode, we)
					if v >= 4 && (d.TotalBytes != -1 || d.UsableBytes != -1) {
						t.Fatalf("%s v%d: total %d usable %d, want -1", d.Dir, v, d.TotalBytes, d.UsableBytes)
					}
					for _, dt := range d.Topics {
						for _, dp := range dt.Partitions {
							k := dirPart{d.Dir, dt.Topic, dp.Partition}
							if _, dup := got[k]; dup {
								t.Fatalf("gateway %d v%d: %v twice", self, v, k)
							}
							if dp.OffsetLag != 0 || dp.IsFuture {
								t.Fatalf("%v: lag %d future %v", k, dp.OffsetLag, dp.IsFuture)
							}
							got[k] = dp.Size
						}
					}
				}
				if len(gotDirs) != len(wantErr) || len(got) != len(want) {
					t.Fatalf("gateway %d v%d all=%v: dirs %v partitions %v; want dirs %v partitions %v", self, v, all, gotDirs, got, wantErr, want)
				}
				for k, size := range want {
					if got[k] != size {
						t.Fatalf("gateway %d v%d: %v size %d, want %d", self, v, k, got[k], size)
					}
				}
			}
		}
	}

	// kadm asks every broker; the sum counts each live partition once.
	dirs, err := c.admin(c.manual).DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var total, wantTotal int64
	seen := map[dirPart]bool{}
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			k := dirPart{d.Dir, p.Topic, p.Partition}
			if seen[k] {
				t.Fatalf("%v described by two brokers", k)
			}
			seen[k] = true
			total += p.Size
		})
		if d.Dir == "local:log-1" && d.Err != kerr.KafkaStorageError {
			t.Fatalf("broker %d dir %s: err %v", d.Broker, d.Dir, d.Err)
		}
	})
	for p := int32(1); p < 6; p += 2 {
		wantTotal += fakeSize("ld", p)
	}
	wantTotal += fakeSize("ldd", 0) + fakeSize("ldd", 1)
	if total != wantTotal || len(seen) != 5 {
		t.Fatalf("kadm: %d partitions, %d bytes; want 5 and %d", len(seen), total, wantTotal)
	}
}

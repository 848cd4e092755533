package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kmsg"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/gateway/internal/kafkatest"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// TestRequestSpansAndGroupMetrics runs a consumer group's join, sync and
// offset commit against a gateway with a metrics registry and a span
// recorder: every Kafka request is a kafka.<Api> span with its key,
// version and client id, and the registry counts the requests, the loaded
// group and its member, and the offset commit's etcd transaction. Scrapes
// run concurrently with the group traffic (under -race in CI).
func TestRequestSpansAndGroupMetrics(t *testing.T) {
	e := metatest.Start(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reg := prometheus.NewRegistry()
	g := newGateway(t, e, gateway.Config{NodeID: 1, TracerProvider: tp, Metrics: reg})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The committed topic must exist; a log-service node record (nobody
	// listens there) lets it be placed. Registered before
	// the gateway starts, so its cache has it from the first load.
	sess, err := concurrency.NewSession(e.Client, concurrency.WithTTL(30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	if err := meta.NewStore(e.Client, "").RegisterLogNode(ctx, sess, meta.LogNode{ID: "log-1", Addr: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := reg.Gather(); err != nil {
				t.Errorf("gather: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()

	conn := kafkatest.Dial(t, g.Addr().String())
	create := kmsg.NewPtrCreateTopicsRequest()
	create.Version, create.TimeoutMillis = 4, 10000
	create.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "t", NumPartitions: 1, ReplicationFactor: 1}}
	if code := conn.RoundTrip(create).(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create topic: error %d", code)
	}
	const group = "observed"
	waitFor(t, func() bool {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorKey = 3, group
		return conn.RoundTrip(req).(*kmsg.FindCoordinatorResponse).ErrorCode == 0
	})
	join := func(member string) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version, req.Group, req.MemberID = 9, group, member
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis, req.ProtocolType = 10000, 5000, "consumer"
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: (&kmsg.ConsumerMemberMetadata{Topics: []string{"t"}}).AppendTo(nil)}}
		return conn.RoundTrip(req).(*kmsg.JoinGroupResponse)
	}
	joined := join(join("").MemberID)
	if joined.ErrorCode != 0 {
		t.Fatalf("join: error %d", joined.ErrorCode)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.MemberID, sync.Generation = 5, group, joined.MemberID, joined.Generation
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: joined.MemberID, MemberAssignment: []byte("x")}}
	if code := conn.RoundTrip(sync).(*kmsg.SyncGroupResponse).ErrorCode; code != 0 {
		t.Fatalf("sync: error %d", code)
	}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version, commit.Group, commit.MemberID, commit.Generation = 8, group, joined.MemberID, joined.Generation
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 7, LeaderEpoch: -1}}}}
	if code := conn.RoundTrip(commit).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("commit: error %d", code)
	}
	close(stop)
	<-scraped

	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, label, want string) float64 {
		t.Helper()
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if label != "" && !hasLabel(m, label, want) {
					continue
				}
				switch {
				case m.Histogram != nil:
					return float64(m.GetHistogram().GetSampleCount())
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Errorf("no series %s{%s=%q}", name, label, want)
		return 0
	}
	if v := value("streamline_gateway_groups", "", ""); v != 1 {
		t.Errorf("streamline_gateway_groups = %v, want 1", v)
	}
	if v := value("streamline_gateway_group_members", "", ""); v != 1 {
		t.Errorf("streamline_gateway_group_members = %v, want 1", v)
	}
	if v := value("streamline_etcd_commit_duration_seconds", "op", "group_offsets"); v != 1 {
		t.Errorf("group offset commits observed %v, want 1", v)
	}
	if v := value("streamline_gateway_request_duration_seconds", "api", "JoinGroup"); v != 2 {
		t.Errorf("JoinGroup requests observed %v, want 2", v)
	}
	if v := value("streamline_gateway_request_duration_seconds", "api", "OffsetCommit"); v != 1 {
		t.Errorf("OffsetCommit requests observed %v, want 1", v)
	}

	spans := map[string]int{}
	for _, sp := range rec.Ended() {
		spans[sp.Name()]++
		if sp.Name() != "kafka.OffsetCommit" {
			continue
		}
		attrs := map[string]string{}
		for _, a := range sp.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if attrs["kafka.api_key"] != "8" || attrs["kafka.api_version"] != "8" || attrs["kafka.client_id"] != "test" {
			t.Errorf("kafka.OffsetCommit attributes %v", attrs)
		}
	}
	if spans["kafka.JoinGroup"] != 2 || spans["kafka.SyncGroup"] != 1 || spans["kafka.OffsetCommit"] != 1 {
		t.Errorf("spans %v: want 2 kafka.JoinGroup, 1 kafka.SyncGroup, 1 kafka.OffsetCommit", spans)
	}
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() == value {
			return true
		}
	}
	return false
}

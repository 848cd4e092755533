package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"github.com/streamline-dev/streamline/services/cluster"
)

func adminClient(t *testing.T, addr string) (adminv1.AdminServiceClient, *grpc.ClientConn) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return adminv1.NewAdminServiceClient(conn), conn
}

// wantStatus checks a call failed with code and a message naming what.
func wantStatus(t *testing.T, what string, err error, code codes.Code, mention string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), mention) {
		t.Fatalf("%s: got %v %q, want %v mentioning %q", what, st.Code(), st.Message(), code, mention)
	}
}

// TestAdminAPI drives the admin gRPC API of an all-in-one: topics with
// storage modes and remote-storage knobs, partitions with offsets, the
// cluster, consumer groups with lag and offset resets, health, and the
// errors a caller gets for bad input.
func TestAdminAPI(t *testing.T) {
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, conn := adminClient(t, s.AdminAddr())

	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: adminv1.AdminService_ServiceDesc.ServiceName})
	if err != nil || hc.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", hc, err)
	}

	batch := int64(65536)
	created, err := admin.CreateTopic(ctx, &adminv1.CreateTopicRequest{
		Name: "admin-diskless", Partitions: 3, StorageMode: adminv1.StorageMode_STORAGE_MODE_DISKLESS,
		RemoteStorage: &adminv1.RemoteStorage{BatchSizeBytes: &batch},
		Configs:       map[string]string{"retention.ms": "3600000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tp := created.Topic; tp.StorageMode != adminv1.StorageMode_STORAGE_MODE_DISKLESS || tp.Partitions != 3 ||
		tp.RemoteStorage.GetBatchSizeBytes() != batch || tp.Configs["retention.ms"] != "3600000" || tp.Id == "" {
		t.Fatalf("created %+v", tp)
	}

	_, err = admin.CreateTopic(ctx, &adminv1.CreateTopicRequest{Name: "admin-diskless", Partitions: 1})
	wantStatus(t, "duplicate", err, codes.AlreadyExists, "admin-diskless")
	_, err = admin.CreateTopic(ctx, &adminv1.CreateTopicRequest{Partitions: 1})
	wantStatus(t, "no name", err, codes.InvalidArgument, "name")
	_, err = admin.CreateTopic(ctx, &adminv1.CreateTopicRequest{Name: "bad/name"})
	wantStatus(t, "bad name", err, codes.InvalidArgument, "name")
	_, err = admin.CreateTopic(ctx, &adminv1.CreateTopicRequest{Name: "many", Partitions: 100000})
	wantStatus(t, "too many partitions", err, codes.InvalidArgument, "partitions")
	_, err = admin.CreateTopic(ctx, &adminv1.CreateTopicRequest{Name: "cfg", Configs: map[string]string{"no.such.config": "1"}})
	wantStatus(t, "unknown config", err, codes.InvalidArgument, "no.such.config")
	_, err = admin.CreateTopic(ctx, &adminv1.CreateTopicRequest{Name: "cfg", Configs: map[string]string{"retention.ms": "soon"}})
	wantStatus(t, "bad config value", err, codes.InvalidArgument, "retention.ms")
	_, err = admin.DescribeTopic(ctx, &adminv1.DescribeTopicRequest{Name: "missing"})
	wantStatus(t, "missing topic", err, codes.NotFound, "missing")
	_, err = admin.DeleteTopic(ctx, &adminv1.DeleteTopicRequest{Name: "missing"})
	wantStatus(t, "delete missing topic", err, codes.NotFound, "")
	if _, err := admin.CreateTopic(ctx, &adminv1.CreateTopicRequest{Name: "validated", ValidateOnly: true}); err != nil {
		t.Fatalf("validate only: %v", err)
	}
	// Kafka's '.'/'_' collision rule: InvalidArgument on the name, naming
	// the existing topic (validate_only too). AlreadyExists would say the
	// name asked for exists, and a GetTopic of it would then be NotFound.
	if _, err := admin.CreateTopic(ctx, &adminv1.CreateTopicRequest{Name: "admin.col", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for _, validate := range []bool{false, true} {
		_, err = admin.CreateTopic(ctx, &adminv1.CreateTopicRequest{Name: "admin_col", Partitions: 1, ValidateOnly: validate})
		wantStatus(t, "colliding name", err, codes.InvalidArgument, "name: ")
		wantStatus(t, "colliding name", err, codes.InvalidArgument, "Topic 'admin_col' collides with existing topic: admin.col")
	}
	if _, err := admin.DeleteTopic(ctx, &adminv1.DeleteTopicRequest{Name: "admin.col"}); err != nil {
		t.Fatal(err)
	}

	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic("admin-diskless"))
	produceAll(ctx, t, prod, 30, func(i int) *kgo.Record { return &kgo.Record{Value: []byte{byte(i)}} })
	desc, err := admin.DescribeTopic(ctx, &adminv1.DescribeTopicRequest{Name: "admin-diskless"})
	if err != nil {
		t.Fatal(err)
	}
	var hwm int64
	for _, p := range desc.Partitions {
		if p.LeaderNode == "" || p.OffsetsError != "" || p.LogStartOffset != 0 {
			t.Fatalf("partition %+v", p)
		}
		hwm += p.HighWatermark
	}
	if len(desc.Partitions) != 3 || hwm != 30 {
		t.Fatalf("%d partitions with %d records, want 3 and 30", len(desc.Partitions), hwm)
	}
	listed, err := admin.ListTopics(ctx, &adminv1.ListTopicsRequest{})
	if err != nil || len(listed.Topics) != 1 || listed.Topics[0].Name != "admin-diskless" {
		t.Fatalf("list: %v %v", listed, err)
	}

	cl, err := admin.DescribeCluster(ctx, &adminv1.DescribeClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Gateways) != 1 || len(cl.LogNodes) != 1 || len(cl.Uploaders) != 1 || cl.Controller != cl.LogNodes[0].Id ||
		cl.LogNodes[0].PartitionsLed["diskless"] != 3 {
		t.Fatalf("cluster %+v", cl)
	}

	// A group consumes everything and commits; then it is inactive.
	cons := newClient(t, s.KafkaAddr(), kgo.ConsumerGroup("admin-group"), kgo.ConsumeTopics("admin-diskless"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	pollAndCommit(ctx, t, cons, 30)
	dg, err := admin.DescribeGroup(ctx, &adminv1.DescribeGroupRequest{Group: "admin-group"})
	if err != nil {
		t.Fatal(err)
	}
	if dg.Group.State != "Stable" || len(dg.Members) != 1 || dg.TotalLag != 0 || len(dg.Offsets) != 3 {
		t.Fatalf("describe group %+v", dg)
	}
	_, err = admin.ResetGroupOffsets(ctx, &adminv1.ResetGroupOffsetsRequest{Group: "admin-group", Topic: "admin-diskless", To: &adminv1.ResetGroupOffsetsRequest_Earliest{Earliest: true}})
	wantStatus(t, "reset an active group", err, codes.FailedPrecondition, "active members")
	cons.Close()

	groups, err := admin.ListGroups(ctx, &adminv1.ListGroupsRequest{})
	if err != nil || len(groups.Groups) != 1 || groups.Groups[0].Group != "admin-group" || groups.Groups[0].State != "Empty" {
		t.Fatalf("list groups: %v %v", groups, err)
	}
	_, err = admin.ResetGroupOffsets(ctx, &adminv1.ResetGroupOffsetsRequest{Group: "admin-group", Topic: "admin-diskless"})
	wantStatus(t, "reset without a target", err, codes.InvalidArgument, "to")
	reset, err := admin.ResetGroupOffsets(ctx, &adminv1.ResetGroupOffsetsRequest{Group: "admin-group", Topic: "admin-diskless", To: &adminv1.ResetGroupOffsetsRequest_Earliest{Earliest: true}})
	if err != nil || len(reset.Offsets) != 3 {
		t.Fatalf("reset: %v %v", reset, err)
	}
	dg, err = admin.DescribeGroup(ctx, &adminv1.DescribeGroupRequest{Group: "admin-group"})
	if err != nil || dg.TotalLag != 30 {
		t.Fatalf("after reset to earliest: lag %d (%v), want 30", dg.GetTotalLag(), err)
	}
	_, err = admin.DescribeGroup(ctx, &adminv1.DescribeGroupRequest{Group: "no-such-group"})
	wantStatus(t, "missing group", err, codes.NotFound, "no-such-group")

	if _, err := admin.DeleteTopic(ctx, &adminv1.DeleteTopicRequest{Name: "admin-diskless"}); err != nil {
		t.Fatal(err)
	}
	// The group's topic is gone: describing the group still works, and
	// its offsets of the deleted topic are no longer shown (Kafka deletes
	// them with the topic).
	dg, err = admin.DescribeGroup(ctx, &adminv1.DescribeGroupRequest{Group: "admin-group"})
	if err != nil || len(dg.Offsets) != 0 || dg.TotalLag != 0 {
		t.Fatalf("group of a deleted topic: %+v %v", dg, err)
	}
}

// TestAdminAPIWithGrpcurl runs the real grpcurl binary against the admin
// API, as the README shows: list the services through reflection, create a
// diskless topic.
func TestAdminAPIWithGrpcurl(t *testing.T) {
	grpcurl, err := exec.LookPath("grpcurl")
	if err != nil {
		grpcurl = filepath.Join(goBin(t), "grpcurl")
		if _, err := os.Stat(grpcurl); err != nil {
			t.Fatal("grpcurl is not installed: run `make tools` (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4)")
		}
	}
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, grpcurl, "-plaintext", s.AdminAddr(), "list").CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl list: %v\n%s", err, out)
	}
	for _, svc := range []string{"streamline.admin.v1.AdminService", "grpc.health.v1.Health"} {
		if !strings.Contains(string(out), svc) {
			t.Fatalf("grpcurl list does not show %s:\n%s", svc, out)
		}
	}
	out, err = exec.CommandContext(ctx, grpcurl, "-plaintext", "-d", `{"name":"from-grpcurl","partitions":2,"storage_mode":"STORAGE_MODE_DISKLESS"}`,
		s.AdminAddr(), "streamline.admin.v1.AdminService/CreateTopic").CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl CreateTopic: %v\n%s", err, out)
	}
	var resp struct {
		Topic struct {
			Name        string `json:"name"`
			Partitions  int    `json:"partitions"`
			StorageMode string `json:"storageMode"`
		} `json:"topic"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || resp.Topic.Name != "from-grpcurl" || resp.Topic.Partitions != 2 || resp.Topic.StorageMode != "STORAGE_MODE_DISKLESS" {
		t.Fatalf("grpcurl CreateTopic answered %s (%v)", out, err)
	}
	out, err = exec.CommandContext(ctx, grpcurl, "-plaintext", "-d", `{"name":"from-grpcurl"}`,
		s.AdminAddr(), "streamline.admin.v1.AdminService/CreateTopic").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "AlreadyExists") {
		t.Fatalf("grpcurl duplicate CreateTopic: err %v\n%s", err, out)
	}
}

// goBin is where `go install` puts tools.
func goBin(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin")
}

// pollAndCommit consumes n records with a group member and commits them.
func pollAndCommit(ctx context.Context, t *testing.T, cons *kgo.Client, n int) {
	t.Helper()
	for got := 0; got < n; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("consume timed out")
		}
		got += fs.NumRecords()
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
}

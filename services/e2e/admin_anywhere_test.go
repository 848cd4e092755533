package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"github.com/streamline-dev/streamline/services/cluster"
)

// TestAdminAPIWhateverGatewaysAdvertise runs every admin call on both
// gateways of a process cluster whose gateways advertise Kafka addresses
// nothing listens on, as in a container whose advertised host port is
// only reachable from outside: Kafka clients reach the gateways through a
// dialer that maps the advertised addresses (the port mapping), and the
// admin API must need no route to any Kafka address. Consumer-group calls
// land on the gateway that coordinates the group and on the one that
// does not: DescribeGroup answers from the state in etcd, and
// ResetGroupOffsets is forwarded to the coordinator's admin API.
func TestAdminAPIWhateverGatewaysAdvertise(t *testing.T) {
	store := "file://" + t.TempDir()
	// Ports in the reserved range below 1024 that no test process binds.
	advertised := []string{"127.0.0.1:9", "127.0.0.1:13"}
	c := cluster.StartCluster(t, cluster.ClusterOptions{
		LogServices: 1, SessionTTL: clusterTTL,
		ExtraArgs: map[string][]string{
			"gateway":   {"--session-ttl", clusterTTL.String()},
			"gateway-1": {"--advertised-kafka-addr", advertised[0]},
			"gateway-2": {"--advertised-kafka-addr", advertised[1]},
			"logsvc":    {"--object-store", store, "--diskless-batch-timeout", "20ms"},
			"uploader":  {"--object-store", store},
		},
	})
	boot := c.Bootstrap()
	mapped := map[string]string{advertised[0]: boot[0], advertised[1]: boot[1]}
	dialer := kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if real, ok := mapped[host]; ok {
			host = real
		}
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var admins []adminv1.AdminServiceClient
	for _, addr := range c.AdminAddrs() {
		a, _ := adminClient(t, addr)
		admins = append(admins, a)
	}

	const topic, group, n = "anywhere", "anywhere-group", 40
	created, err := admins[0].CreateTopic(ctx, &adminv1.CreateTopicRequest{Name: topic, Partitions: 4, StorageMode: adminv1.StorageMode_STORAGE_MODE_DISKLESS})
	if err != nil {
		t.Fatalf("CreateTopic through gateway-1's admin API: %v", err)
	}
	if created.Topic.GetStorageMode() != adminv1.StorageMode_STORAGE_MODE_DISKLESS || created.Topic.GetId() == "" {
		t.Fatalf("created %+v", created.Topic)
	}
	_, err = admins[1].CreateTopic(ctx, &adminv1.CreateTopicRequest{Name: topic, Partitions: 1})
	wantStatus(t, "create twice", err, codes.AlreadyExists, "topic anywhere already exists")

	prod := newClient(t, mapped[advertised[0]], dialer, kgo.DefaultProduceTopic(topic))
	produceAll(ctx, t, prod, n, func(i int) *kgo.Record { return &kgo.Record{Value: []byte{byte(i)}} })
	for i, a := range admins {
		desc, err := a.DescribeTopic(ctx, &adminv1.DescribeTopicRequest{Name: topic})
		if err != nil {
			t.Fatalf("gateway-%d DescribeTopic: %v", i+1, err)
		}
		var hwm int64
		for _, p := range desc.Partitions {
			if p.OffsetsError != "" || p.LogStartOffset != 0 || p.SizeBytes <= 0 && p.HighWatermark > 0 {
				t.Fatalf("gateway-%d partition %+v", i+1, p)
			}
			hwm += p.HighWatermark
		}
		if hwm != n {
			t.Fatalf("gateway-%d: high watermarks add up to %d, want %d", i+1, hwm, n)
		}
	}

	cons := newClient(t, mapped[advertised[1]], dialer, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	pollAndCommit(ctx, t, cons, n)
	// Both gateways see the group, its member and assignment, and no lag.
	for i, a := range admins {
		waitFor(ctx, t, func() bool {
			dg, err := a.DescribeGroup(ctx, &adminv1.DescribeGroupRequest{Group: group})
			return err == nil && dg.Group.State == "Stable" && len(dg.Members) == 1 && len(dg.Members[0].Assigned) == 1 &&
				len(dg.Offsets) == 4 && dg.TotalLag == 0 && dg.Group.Coordinator > 0
		}, "gateway-%d DescribeGroup shows the stable group with lag 0", i+1)
		listed, err := a.ListGroups(ctx, &adminv1.ListGroupsRequest{})
		if err != nil || len(listed.Groups) != 1 || listed.Groups[0].Group != group {
			t.Fatalf("gateway-%d ListGroups: %v %v", i+1, listed, err)
		}
		_, err = a.ResetGroupOffsets(ctx, &adminv1.ResetGroupOffsetsRequest{Group: group, Topic: topic, To: &adminv1.ResetGroupOffsetsRequest_Earliest{Earliest: true}})
		wantStatus(t, "reset an active group", err, codes.FailedPrecondition, "active members")
	}
	cons.Close()

	// Resets through each gateway: one coordinates the group, the other
	// forwards.
	for i, a := range admins {
		to := &adminv1.ResetGroupOffsetsRequest{Group: group, Topic: topic, To: &adminv1.ResetGroupOffsetsRequest_Earliest{Earliest: true}}
		wantLag := int64(n)
		if i == 1 {
			to.To, wantLag = &adminv1.ResetGroupOffsetsRequest_Latest{Latest: true}, 0
		}
		waitFor(ctx, t, func() bool {
			_, err := a.ResetGroupOffsets(ctx, to)
			if err != nil {
				t.Logf("gateway-%d reset: %v", i+1, err) // the member's leave may still be in flight
			}
			return err == nil
		}, "gateway-%d ResetGroupOffsets", i+1)
		for j, b := range admins {
			dg, err := b.DescribeGroup(ctx, &adminv1.DescribeGroupRequest{Group: group})
			if err != nil || dg.TotalLag != wantLag || dg.Group.State != "Empty" {
				t.Fatalf("after reset through gateway-%d, gateway-%d describes %+v (%v), want lag %d", i+1, j+1, dg, err, wantLag)
			}
		}
	}
	cl, err := admins[1].DescribeCluster(ctx, &adminv1.DescribeClusterRequest{})
	if err != nil || len(cl.Gateways) != 2 || len(cl.LogNodes) != 1 {
		t.Fatalf("cluster %+v %v", cl, err)
	}
	if _, err := admins[1].DeleteTopic(ctx, &adminv1.DeleteTopicRequest{Name: topic}); err != nil {
		t.Fatal(err)
	}
	_, err = admins[1].DescribeTopic(ctx, &adminv1.DescribeTopicRequest{Name: topic})
	wantStatus(t, "deleted topic", err, codes.NotFound, "topic anywhere does not exist")
}

// waitFor polls cond every 100 ms until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting: "+format, args...)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

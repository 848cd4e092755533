// Package adminapi serves streamline.admin.v1.AdminService, the operator's
// gRPC API, from a gateway.
//
// Every operation is a call of the gateway's protocol-neutral layer
// (package ops), the same calls the Kafka handlers make, so the admin API
// and Kafka clients see the same rules and the same data, and the API
// works wherever the gateway runs, whatever Kafka address it advertises.
// Reads of topics and the cluster come from the gateway's etcd-watched
// cache. A group change (ResetGroupOffsets) is made by the gateway
// coordinating the group: another gateway forwards the call to that
// gateway's admin API (peers.go). Errors become gRPC status codes
// (errors.go).
package adminapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/streamline-dev/streamline/gateway/ops"
	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Config configures a Server.
type Config struct {
	Store *meta.Store
	Cache *meta.Cache
	// Ops runs the operations (shared with the Kafka handlers).
	Ops *ops.Ops
	// Self is this gateway's registration: a call forwarded to the group
	// coordinator is never sent back to Self.
	Self      meta.Gateway
	ClusterID string
	// DialOptions are used to reach other gateways' admin APIs (tracing).
	DialOptions []grpc.DialOption
	Logger      *slog.Logger
}

// Server implements adminv1.AdminServiceServer.
type Server struct {
	adminv1.UnimplementedAdminServiceServer
	cfg Config
	ops *ops.Ops
	log *slog.Logger
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Cache == nil || cfg.Ops == nil {
		return nil, errors.New("adminapi: Store, Cache and Ops are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg, ops: cfg.Ops, log: cfg.Logger.With("component", "adminapi")}, nil
}

// remoteConfigs maps RemoteStorage fields to topic config names.
var remoteConfigs = []string{meta.ConfigBatchSizeBytes, meta.ConfigBatchTimeoutMs, meta.ConfigUploadParallelism, meta.ConfigReadCacheBytes}

func storageModeName(m adminv1.StorageMode) (string, error) {
	switch m {
	case adminv1.StorageMode_STORAGE_MODE_UNSPECIFIED:
		return "", nil
	case adminv1.StorageMode_STORAGE_MODE_LOCAL:
		return string(meta.StorageLocal), nil
	case adminv1.StorageMode_STORAGE_MODE_HYBRID:
		return string(meta.StorageHybrid), nil
	case adminv1.StorageMode_STORAGE_MODE_DISKLESS:
		return string(meta.StorageDiskless), nil
	}
	return "", invalid("storage_mode", "unknown value %d", m)
}

func storageModeEnum(m meta.StorageMode) adminv1.StorageMode {
	switch m {
	case meta.StorageLocal:
		return adminv1.StorageMode_STORAGE_MODE_LOCAL
	case meta.StorageHybrid:
		return adminv1.StorageMode_STORAGE_MODE_HYBRID
	case meta.StorageDiskless:
		return adminv1.StorageMode_STORAGE_MODE_DISKLESS
	}
	return adminv1.StorageMode_STORAGE_MODE_UNSPECIFIED
}

// invalid is an INVALID_ARGUMENT status naming the field.
func invalid(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

func requireName(field, v string) error {
	if v == "" {
		return invalid(field, "required")
	}
	return nil
}

// CreateTopic implements adminv1.AdminServiceServer.
func (s *Server) CreateTopic(ctx context.Context, req *adminv1.CreateTopicRequest) (*adminv1.CreateTopicResponse, error) {
	if err := requireName("name", req.GetName()); err != nil {
		return nil, err
	}
	if req.GetPartitions() < 0 || req.GetPartitions() > meta.MaxPartitions {
		return nil, invalid("partitions", "%d is not in 0..%d (0: the cluster default)", req.GetPartitions(), meta.MaxPartitions)
	}
	configs := map[string]string{}
	for k, v := range req.GetConfigs() {
		if _, ok := meta.LookupConfig(k); !ok {
			return nil, invalid("configs", "unknown topic config %q", k)
		}
		configs[k] = v
	}
	mode, err := storageModeName(req.GetStorageMode())
	if err != nil {
		return nil, err
	}
	if mode != "" {
		if v, ok := configs[meta.ConfigStorageMode]; ok && v != mode {
			return nil, invalid("storage_mode", "%s disagrees with configs[storage.mode]=%s", mode, v)
		}
		configs[meta.ConfigStorageMode] = mode
	}
	if rs := req.GetRemoteStorage(); rs != nil {
		vals := []*int64{rs.BatchSizeBytes, rs.BatchTimeoutMs, nil, rs.ReadCacheBytes}
		if rs.UploadParallelism != nil {
			p := int64(*rs.UploadParallelism)
			vals[2] = &p
		}
		fields := []string{"remote_storage.batch_size_bytes", "remote_storage.batch_timeout_ms", "remote_storage.upload_parallelism", "remote_storage.read_cache_bytes"}
		for i, v := range vals {
			if v == nil {
				continue
			}
			s := strconv.FormatInt(*v, 10)
			if err := meta.ValidateTopicConfig(remoteConfigs[i], s); err != nil {
				return nil, invalid(fields[i], "%v", err)
			}
			configs[remoteConfigs[i]] = s
		}
	}
	if rf := req.GetReplicationFactor(); rf < 0 || rf > 1<<15-1 {
		return nil, invalid("replication_factor", "%d is not in 0..32767 (0: the cluster default)", rf)
	}
	spec := ops.TopicSpec{Name: req.GetName(), Partitions: req.GetPartitions(), ReplicationFactor: int16(req.GetReplicationFactor())}
	if spec.ReplicationFactor == 0 {
		spec.ReplicationFactor = -1 // the gateway's default
	}
	if spec.Partitions == 0 {
		spec.Partitions = -1 // the gateway's default
	}
	names := make([]string, 0, len(configs))
	for k := range configs {
		names = append(names, k)
	}
	sort.Strings(names) // the first bad config is the same on every call
	for _, k := range names {
		v := configs[k]
		spec.Configs = append(spec.Configs, ops.ConfigEntry{Name: k, Value: &v})
	}
	t, rev, e := s.ops.CreateTopic(ctx, spec, req.GetValidateOnly())
	if e != nil {
		return nil, opsStatus(e)
	}
	if req.GetValidateOnly() {
		return &adminv1.CreateTopicResponse{Topic: s.topic(t)}, nil
	}
	if err := s.ops.WaitRevision(ctx, rev, 0); err != nil {
		return nil, status.Errorf(codes.DeadlineExceeded, "topic %s was created, but this gateway has not seen it yet (%v)", t.Name, err)
	}
	if got, ok := s.cfg.Cache.Topic(t.Name); ok {
		t = &got // with its id
	}
	return &adminv1.CreateTopicResponse{Topic: s.topic(t)}, nil
}

// topic converts a topic record.
func (s *Server) topic(t *meta.Topic) *adminv1.Topic {
	out := &adminv1.Topic{
		Name: t.Name, Partitions: t.Partitions, StorageMode: storageModeEnum(t.StorageMode),
		Configs: map[string]string{}, ReplicationFactor: int32(max(t.ReplicationFactor, 1)),
	}
	// What partition 0 has now: a reassignment may have changed the
	// factor the topic was created with (Kafka's tools report it so).
	if ps := s.cfg.Cache.Partitions(t.Name); len(ps) > 0 && ps[0].TopicID == t.ID {
		out.ReplicationFactor = int32(ps[0].ReplicationFactor())
	}
	if !t.ID.IsZero() {
		out.Id = base64.RawURLEncoding.EncodeToString(t.ID[:])
	}
	for _, tc := range s.ops.TopicConfigs(t, nil) {
		out.Configs[tc.Definition.Name] = tc.Value
	}
	if ops.UsesRemoteBatching(t.StorageMode) {
		rs := &adminv1.RemoteStorage{}
		get := func(name string) *int64 {
			n, err := strconv.ParseInt(out.Configs[name], 10, 64)
			if err != nil {
				return nil
			}
			return &n
		}
		rs.BatchSizeBytes, rs.BatchTimeoutMs, rs.ReadCacheBytes = get(meta.ConfigBatchSizeBytes), get(meta.ConfigBatchTimeoutMs), get(meta.ConfigReadCacheBytes)
		if p := get(meta.ConfigUploadParallelism); p != nil {
			v := int32(*p)
			rs.UploadParallelism = &v
		}
		out.RemoteStorage = rs
	}
	return out
}

// DescribeTopic implements adminv1.AdminServiceServer. Offsets and sizes
// come from the log-service nodes leading the partitions; a partition
// whose node cannot answer shows -1, with the reason in offsets_error.
func (s *Server) DescribeTopic(ctx context.Context, req *adminv1.DescribeTopicRequest) (*adminv1.DescribeTopicResponse, error) {
	if err := requireName("name", req.GetName()); err != nil {
		return nil, err
	}
	t, ok := s.cfg.Cache.Topic(req.GetName())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %s does not exist", req.GetName())
	}
	out := &adminv1.DescribeTopicResponse{Topic: s.topic(&t)}
	parts := s.cfg.Cache.Partitions(t.Name)
	tps := make([]meta.TopicPartition, len(parts))
	for i, p := range parts {
		tps[i] = meta.TopicPartition{Topic: t.Name, Partition: p.Partition}
	}
	offsets := s.startsAndEnds(ctx, tps)
	sizes := s.ops.PartitionSizes(ctx, parts)
	gws := s.cfg.Cache.Gateways()
	for i, p := range parts {
		rp := &adminv1.Partition{
			Partition: p.Partition, LeaderNode: p.Leader, LeaderEpoch: p.LeaderEpoch,
			LogStartOffset: -1, HighWatermark: -1, SizeBytes: sizes[i].Size,
			Replicas: p.ReplicaSet(), Isr: p.InSyncReplicas(),
		}
		if len(gws) > 0 {
			rp.GatewayLeader = ops.LeaderGateway(gws, t.Name, p.Partition).NodeID
		}
		var errs []string
		for j, dst := range []*int64{&rp.LogStartOffset, &rp.HighWatermark} {
			o := offsets[2*i+j]
			if o.Err == nil {
				*dst = o.Offset
			} else if len(errs) == 0 || errs[0] != o.Err.Message {
				errs = append(errs, o.Err.Message)
			}
		}
		rp.OffsetsError = strings.Join(errs, "; ")
		out.Partitions = append(out.Partitions, rp)
	}
	sort.Slice(out.Partitions, func(i, j int) bool { return out.Partitions[i].Partition < out.Partitions[j].Partition })
	return out, nil
}

// ListTopics implements adminv1.AdminServiceServer.
func (s *Server) ListTopics(ctx context.Context, _ *adminv1.ListTopicsRequest) (*adminv1.ListTopicsResponse, error) {
	topics := s.cfg.Cache.Topics()
	sort.Slice(topics, func(i, j int) bool { return topics[i].Name < topics[j].Name })
	out := &adminv1.ListTopicsResponse{}
	for i := range topics {
		out.Topics = append(out.Topics, s.topic(&topics[i]))
	}
	return out, nil
}

// DeleteTopic implements adminv1.AdminServiceServer.
func (s *Server) DeleteTopic(ctx context.Context, req *adminv1.DeleteTopicRequest) (*adminv1.DeleteTopicResponse, error) {
	if err := requireName("name", req.GetName()); err != nil {
		return nil, err
	}
	rev, e := s.ops.DeleteTopic(ctx, req.GetName())
	if e != nil {
		return nil, opsStatus(e)
	}
	if err := s.ops.WaitRevision(ctx, rev, 0); err != nil {
		return nil, status.Errorf(codes.DeadlineExceeded, "topic %s was deleted, but this gateway has not seen it yet (%v)", req.GetName(), err)
	}
	return &adminv1.DeleteTopicResponse{}, nil
}

// AlterTopicConfigs implements adminv1.AdminServiceServer: an incremental
// change (configs not named keep their values).
func (s *Server) AlterTopicConfigs(ctx context.Context, req *adminv1.AlterTopicConfigsRequest) (*adminv1.AlterTopicConfigsResponse, error) {
	if err := requireName("name", req.GetName()); err != nil {
		return nil, err
	}
	if len(req.GetSet()) == 0 && len(req.GetDelete()) == 0 {
		return nil, invalid("set", "nothing to change: give set or delete")
	}
	var changes []ops.ConfigChange
	for k, v := range req.GetSet() {
		if _, ok := meta.LookupConfig(k); !ok {
			return nil, invalid("set", "unknown topic config %q", k)
		}
		changes = append(changes, ops.ConfigChange{Name: k, Op: ops.ConfigSet, Value: &v})
	}
	for _, k := range req.GetDelete() {
		if _, ok := meta.LookupConfig(k); !ok {
			return nil, invalid("delete", "unknown topic config %q", k)
		}
		changes = append(changes, ops.ConfigChange{Name: k, Op: ops.ConfigDelete})
	}
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].Name < changes[j].Name })
	rev, e := s.ops.AlterTopicConfigs(ctx, req.GetName(), changes, false, req.GetValidateOnly())
	if e != nil {
		if e.Field == "configs" {
			e.Field = "set"
		}
		return nil, opsStatus(e)
	}
	if rev > 0 {
		if err := s.ops.WaitRevision(ctx, rev, 0); err != nil {
			return nil, status.Errorf(codes.DeadlineExceeded, "configs of topic %s were changed, but this gateway has not seen the change yet (%v)", req.GetName(), err)
		}
	}
	t, ok := s.cfg.Cache.Topic(req.GetName())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %s does not exist", req.GetName())
	}
	return &adminv1.AlterTopicConfigsResponse{Topic: s.topic(&t)}, nil
}

// DescribeCluster implements adminv1.AdminServiceServer.
func (s *Server) DescribeCluster(ctx context.Context, _ *adminv1.DescribeClusterRequest) (*adminv1.DescribeClusterResponse, error) {
	out := &adminv1.DescribeClusterResponse{ClusterId: s.cfg.ClusterID}
	for _, g := range s.cfg.Cache.Gateways() {
		out.Gateways = append(out.Gateways, &adminv1.Gateway{Id: g.ID, NodeId: g.NodeID, Host: g.Host, Port: g.Port, Rack: g.Rack})
	}
	led := map[string]map[string]int32{}
	for _, p := range s.cfg.Cache.AllPartitions() {
		t, ok := s.cfg.Cache.Topic(p.Topic)
		if !ok || p.Leader == "" {
			continue
		}
		if led[p.Leader] == nil {
			led[p.Leader] = map[string]int32{}
		}
		led[p.Leader][string(t.StorageMode)]++
	}
	for _, n := range s.cfg.Cache.LogNodes() {
		out.LogNodes = append(out.LogNodes, &adminv1.LogNode{Id: n.ID, Addr: n.Addr, PartitionsLed: led[n.ID]})
	}
	for _, u := range s.cfg.Cache.Uploaders() {
		out.Uploaders = append(out.Uploaders, &adminv1.Uploader{Id: u.ID, Addr: u.Addr})
	}
	ctrl, err := s.cfg.Store.ElectionLeader(ctx, meta.ControllerElection)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading the controller election: %v", err)
	}
	out.Controller = ctrl
	return out, nil
}

// startsAndEnds lists the log start and end offsets of tps: answers 2i
// and 2i+1 are tps[i]'s.
func (s *Server) startsAndEnds(ctx context.Context, tps []meta.TopicPartition) []ops.ListedOffset {
	qs := make([]ops.OffsetQuery, 0, 2*len(tps))
	for _, tp := range tps {
		qs = append(qs,
			ops.OffsetQuery{Topic: tp.Topic, Partition: tp.Partition, Timestamp: ops.Earliest, CurrentLeaderEpoch: -1},
			ops.OffsetQuery{Topic: tp.Topic, Partition: tp.Partition, Timestamp: ops.Latest, CurrentLeaderEpoch: -1})
	}
	return s.listOffsets(ctx, qs)
}

// Retries of retriable per-partition answers (a partition whose leader is
// opening it right after a create or a leader change answers
// NOT_LEADER_OR_FOLLOWER for a moment), as a Kafka admin client retries.
const (
	offsetRetries     = 7
	offsetRetryPause  = 50 * time.Millisecond
	offsetRetryPauseX = 2 // the pause doubles after each round
)

// listOffsets answers qs, asking again for the partitions whose answer
// was a retriable error, for a few rounds (about 6 s) or until ctx ends;
// what is still failing then is returned as it is.
func (s *Server) listOffsets(ctx context.Context, qs []ops.OffsetQuery) []ops.ListedOffset {
	out := s.ops.ListOffsets(ctx, 0, qs)
	pause := offsetRetryPause
	for range offsetRetries {
		var again []int
		for i, o := range out {
			if o.Err != nil && o.Err.Retriable {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return out
		case <-time.After(pause):
		}
		pause *= offsetRetryPauseX
		sub := make([]ops.OffsetQuery, len(again))
		for k, i := range again {
			sub[k] = qs[i]
		}
		for k, o := range s.ops.ListOffsets(ctx, 0, sub) {
			out[again[k]] = o
		}
	}
	return out
}

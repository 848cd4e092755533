// Package adminapi serves streamline.admin.v1.AdminService, the operator's
// gRPC API, from a gateway.
//
// Reads (topics, partitions, cluster) come from the gateway's etcd-watched
// cache. Every change and every group or offset query goes through the
// gateway's own Kafka API with franz-go's kadm on a loopback connection:
// the Kafka handlers already implement every rule (topic names, limits,
// config validation, storage-mode availability, group states and
// coordinators), and going through them means the admin API can never
// disagree with what Kafka clients see. Kafka error codes become gRPC
// status codes (errors.go).
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

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Config configures a Server.
type Config struct {
	Store *meta.Store
	Cache *meta.Cache
	// Kafka is an admin client of this cluster's Kafka API (the gateway's
	// own listener).
	Kafka *kadm.Client
	// TopicDefaults are the gateway's server-level topic config defaults.
	TopicDefaults meta.Defaults
	ClusterID     string
	Logger        *slog.Logger
}

// Server implements adminv1.AdminServiceServer.
type Server struct {
	adminv1.UnimplementedAdminServiceServer
	cfg Config
	log *slog.Logger
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Cache == nil || cfg.Kafka == nil {
		return nil, errors.New("adminapi: Store, Cache and Kafka are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "adminapi")}, nil
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
	if err := meta.ValidateTopicName(req.GetName()); err != nil {
		return nil, invalid("name", "%v", err)
	}
	if req.GetPartitions() < 0 || req.GetPartitions() > meta.MaxPartitions {
		return nil, invalid("partitions", "%d is not in 0..%d (0: the cluster default)", req.GetPartitions(), meta.MaxPartitions)
	}
	configs := map[string]*string{}
	for k, v := range req.GetConfigs() {
		if _, ok := meta.LookupConfig(k); !ok {
			return nil, invalid("configs", "unknown topic config %q", k)
		}
		configs[k] = kadm.StringPtr(v)
	}
	mode, err := storageModeName(req.GetStorageMode())
	if err != nil {
		return nil, err
	}
	if mode != "" {
		if v, ok := configs[meta.ConfigStorageMode]; ok && *v != mode {
			return nil, invalid("storage_mode", "%s disagrees with configs[storage.mode]=%s", mode, *v)
		}
		configs[meta.ConfigStorageMode] = kadm.StringPtr(mode)
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
			configs[remoteConfigs[i]] = &s
		}
	}
	partitions := req.GetPartitions()
	if partitions == 0 {
		partitions = -1 // the gateway's default
	}
	var resp kadm.CreateTopicResponse
	if req.GetValidateOnly() {
		rs, err := s.cfg.Kafka.ValidateCreateTopics(ctx, partitions, -1, configs, req.GetName())
		if err == nil {
			resp, err = rs.On(req.GetName(), nil)
		}
		if err != nil && resp.Err == nil {
			return nil, kafkaStatus(err, "name", topicDetail(req.GetName()))
		}
		if resp.Err != nil {
			return nil, kafkaStatus(resp.Err, createField(resp.Err), resp.ErrMessage, topicDetail(req.GetName()))
		}
		t := &meta.Topic{Name: req.GetName(), Partitions: resp.NumPartitions, StorageMode: meta.StorageMode(valueOr(configs[meta.ConfigStorageMode], string(meta.StorageLocal)))}
		return &adminv1.CreateTopicResponse{Topic: s.topic(t)}, nil
	}
	resp, err = s.cfg.Kafka.CreateTopic(ctx, partitions, -1, configs, req.GetName())
	if err != nil && resp.Err == nil {
		return nil, kafkaStatus(err, "name", topicDetail(req.GetName()))
	}
	if resp.Err != nil {
		return nil, kafkaStatus(resp.Err, createField(resp.Err), resp.ErrMessage, topicDetail(req.GetName()))
	}
	t, err := s.waitTopic(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateTopicResponse{Topic: s.topic(t)}, nil
}

// createField names the request field a CreateTopics error is about.
// A name colliding with an existing topic's (col.x and col_x) is
// INVALID_TOPIC_EXCEPTION, so InvalidArgument on "name" with Kafka's
// message naming the existing topic: AlreadyExists would tell the caller
// that the name it asked for exists, and its next GetTopic of that name
// would be NotFound.
func createField(err error) string {
	if errors.Is(err, kerr.InvalidTopicException) {
		return "name"
	}
	return "configs"
}

func topicDetail(name string) string { return fmt.Sprintf("topic %q", name) }

func valueOr(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

// waitTopic waits until this gateway's cache shows the topic (the write
// may have been served by another gateway).
func (s *Server) waitTopic(ctx context.Context, name string) (*meta.Topic, error) {
	for {
		ch := s.cfg.Cache.Changed()
		if t, ok := s.cfg.Cache.Topic(name); ok {
			return &t, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// topic converts a topic record.
func (s *Server) topic(t *meta.Topic) *adminv1.Topic {
	out := &adminv1.Topic{
		Name: t.Name, Partitions: t.Partitions, StorageMode: storageModeEnum(t.StorageMode),
		Configs: map[string]string{},
	}
	if !t.ID.IsZero() {
		out.Id = base64.RawURLEncoding.EncodeToString(t.ID[:])
	}
	for name, cv := range t.Effective(s.cfg.TopicDefaults) {
		out.Configs[name] = cv.Value
	}
	if t.StorageMode == meta.StorageDiskless {
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

// DescribeTopic implements adminv1.AdminServiceServer.
func (s *Server) DescribeTopic(ctx context.Context, req *adminv1.DescribeTopicRequest) (*adminv1.DescribeTopicResponse, error) {
	if err := requireName("name", req.GetName()); err != nil {
		return nil, err
	}
	t, ok := s.cfg.Cache.Topic(req.GetName())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist", req.GetName())
	}
	out := &adminv1.DescribeTopicResponse{Topic: s.topic(&t)}
	gatewayLeaders := map[int32]int32{}
	if md, err := s.cfg.Kafka.Metadata(ctx, t.Name); err == nil {
		if td, ok := md.Topics[t.Name]; ok {
			for p, pd := range td.Partitions {
				gatewayLeaders[p] = pd.Leader
			}
		}
	}
	starts, startErr := s.cfg.Kafka.ListStartOffsets(ctx, t.Name)
	ends, endErr := s.cfg.Kafka.ListEndOffsets(ctx, t.Name)
	parts := s.cfg.Cache.Partitions(t.Name)
	sizes := s.partitionSizes(ctx, t.Name, parts)
	for _, p := range parts {
		rp := &adminv1.Partition{
			Partition: p.Partition, LeaderNode: p.Leader, LeaderEpoch: p.LeaderEpoch,
			GatewayLeader: gatewayLeaders[p.Partition], LogStartOffset: -1, HighWatermark: -1,
			SizeBytes: -1,
		}
		if size, ok := sizes[p.Partition]; ok {
			rp.SizeBytes = size
		}
		var errs []string
		if startErr != nil {
			errs = append(errs, startErr.Error())
		} else if o, ok := starts.Lookup(t.Name, p.Partition); ok && o.Err == nil {
			rp.LogStartOffset = o.Offset
		} else if ok {
			errs = append(errs, o.Err.Error())
		}
		if endErr != nil {
			errs = append(errs, endErr.Error())
		} else if o, ok := ends.Lookup(t.Name, p.Partition); ok && o.Err == nil {
			rp.HighWatermark = o.Offset
		} else if ok {
			errs = append(errs, o.Err.Error())
		}
		rp.OffsetsError = strings.Join(errs, "; ")
		out.Partitions = append(out.Partitions, rp)
	}
	sort.Slice(out.Partitions, func(i, j int) bool { return out.Partitions[i].Partition < out.Partitions[j].Partition })
	return out, nil
}

// partitionSizes asks every gateway (Kafka DescribeLogDirs through kadm)
// for the sizes of a topic's partitions; each gateway answers for the
// partitions it leads, so each is found once. A partition missing from the
// answers (its node is down, a gateway did not answer) is left out.
func (s *Server) partitionSizes(ctx context.Context, topic string, parts []meta.Partition) map[int32]int64 {
	set := kadm.TopicsSet{topic: {}}
	for _, p := range parts {
		set[topic][p.Partition] = struct{}{}
	}
	out := map[int32]int64{}
	dirs, err := s.cfg.Kafka.DescribeAllLogDirs(ctx, set)
	if err != nil {
		s.log.Debug("describe log dirs", "topic", topic, "err", err) // other brokers' answers still count
	}
	dirs.Each(func(d kadm.DescribedLogDir) {
		if ps, ok := d.Topics[topic]; ok {
			for n, p := range ps {
				out[n] = p.Size
			}
		}
	})
	return out
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
	resp, err := s.cfg.Kafka.DeleteTopic(ctx, req.GetName())
	if err != nil && resp.Err == nil {
		return nil, kafkaStatus(err, "name", topicDetail(req.GetName()))
	}
	if resp.Err != nil {
		return nil, kafkaStatus(resp.Err, "name", resp.ErrMessage, topicDetail(req.GetName()))
	}
	return &adminv1.DeleteTopicResponse{}, nil
}

// AlterTopicConfigs implements adminv1.AdminServiceServer.
func (s *Server) AlterTopicConfigs(ctx context.Context, req *adminv1.AlterTopicConfigsRequest) (*adminv1.AlterTopicConfigsResponse, error) {
	if err := requireName("name", req.GetName()); err != nil {
		return nil, err
	}
	if len(req.GetSet()) == 0 && len(req.GetDelete()) == 0 {
		return nil, invalid("set", "nothing to change: give set or delete")
	}
	var alters []kadm.AlterConfig
	for k, v := range req.GetSet() {
		if _, ok := meta.LookupConfig(k); !ok {
			return nil, invalid("set", "unknown topic config %q", k)
		}
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(v)})
	}
	for _, k := range req.GetDelete() {
		if _, ok := meta.LookupConfig(k); !ok {
			return nil, invalid("delete", "unknown topic config %q", k)
		}
		alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	alter := s.cfg.Kafka.AlterTopicConfigs
	if req.GetValidateOnly() {
		alter = s.cfg.Kafka.ValidateAlterTopicConfigs
	}
	rs, err := alter(ctx, alters, req.GetName())
	if err != nil {
		return nil, kafkaStatus(err, "name")
	}
	r, err := rs.On(req.GetName(), nil)
	if err != nil {
		return nil, kafkaStatus(err, "name")
	}
	if r.Err != nil {
		return nil, kafkaStatus(r.Err, "set", r.ErrMessage, topicDetail(req.GetName()))
	}
	t, ok := s.cfg.Cache.Topic(req.GetName())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist", req.GetName())
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

package handlers

import (
	"context"
	"sort"
	"time"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeLogDirs: v0-4
//
// Behaviour:
// * Kafka answers per broker, for the replicas on that broker's disks, and
//   tools (kafka-log-dirs, kadm.DescribeAllLogDirs) ask every broker and
//   add the answers up. Every gateway is a broker here and could answer
//   for every partition, so a gateway answers only for the partitions
//   whose Metadata leader is this gateway (leaderGateway): summed over all
//   gateways, each partition is counted exactly once, on the broker
//   clients already see as its leader. Gateways that disagree on the live
//   gateway list for a moment may count a partition twice or not at all.
// * Log dirs are "<storage mode>:<log-service node id>": the storage of
//   that mode on the node leading the partition (an offline local
//   partition's home node). Only dirs holding at least one of this
//   gateway's partitions are listed, sorted by name.
// * Null Topics means every partition this gateway leads; otherwise the
//   requested ones this gateway leads. Unknown topics and partitions,
//   invalid names and partitions led by another gateway are omitted, as
//   Kafka omits what a broker does not host.
// * Sizes come from one LogService.DescribeSizes per node, in parallel:
//   local, the partition's segment (log) files, indexes excluded;
//   diskless, the byte lengths of its committed ranges in object storage.
//   OffsetLag is 0 and IsFuture false (no replicas, no moves).
// * A partition whose size cannot be had (its node is not live, the call
//   fails or times out, the node does not lead it now) is omitted and its
//   dir answers KAFKA_STORAGE_ERROR, as Kafka answers an offline log dir;
//   the dir's other partitions are still listed. A partition deleted
//   meanwhile (UNKNOWN_TOPIC_OR_PARTITION from the node) is just omitted.
// * The request has no timeout field, so the calls are bounded by
//   describeLogDirsTimeout.
//
// Version notes:
// * v1: same as v0 (throttle after response); v2: flexible; v3: top-level
//   ErrorCode (always 0); v4: TotalBytes and UsableBytes, -1 (unknown: the
//   data is spread over nodes and object storage).

func init() { register(35, 0, 4, false, (*Handlers).handleDescribeLogDirs) }

const describeLogDirsTimeout = 30 * time.Second

// logDirSlot is one partition's answer, filled by the node's call.
type logDirSlot struct {
	dir       string
	topic     string
	partition int32
	size      int64
	code      int16
}

type logDirPart struct {
	topic     string
	partition int32
}

type describeSizesCall = nodeCall[*logv1.DescribeSizesRequest, *logDirSlot]

// logDirName names the storage of mode on a log-service node.
func logDirName(mode meta.StorageMode, node string) string {
	if node == "" {
		node = "offline"
	}
	return string(mode) + ":" + node
}

func (h *Handlers) handleDescribeLogDirs(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	gws := h.gateways()
	self := h.cfg.Self.NodeID

	// The partitions to answer: this gateway's, of those asked for.
	var parts []meta.Partition
	if req.Topics == nil {
		for _, p := range h.cache.AllPartitions() {
			if leaderGateway(gws, p.Topic, p.Partition).NodeID == self {
				parts = append(parts, p)
			}
		}
	} else {
		seen := map[logDirPart]bool{}
		for _, rt := range req.Topics {
			for _, n := range rt.Partitions {
				k := logDirPart{rt.Topic, n}
				if seen[k] {
					continue
				}
				seen[k] = true
				if p, ok := h.cache.Partition(rt.Topic, n); ok && leaderGateway(gws, p.Topic, p.Partition).NodeID == self {
					parts = append(parts, p)
				}
			}
		}
	}

	dirErr := map[string]int16{} // every dir answered, with its error
	calls := map[string]*describeSizesCall{}
	var slots []*logDirSlot
	for _, p := range parts {
		t, ok := h.cache.Topic(p.Topic)
		if !ok || t.ID != p.TopicID {
			continue // deleted or re-created meanwhile
		}
		nodeID := p.Leader
		if nodeID == "" {
			nodeID = p.Home
		}
		dir := logDirName(t.StorageMode, nodeID)
		if _, ok := dirErr[dir]; !ok {
			dirErr[dir] = 0
		}
		node, live := h.cache.LogNode(p.Leader)
		if p.Leader == "" || !live {
			dirErr[dir] = kerr.KafkaStorageError.Code
			continue
		}
		s := &logDirSlot{dir: dir, topic: p.Topic, partition: p.Partition, size: -1}
		slots = append(slots, s)
		c := calls[node.Addr]
		if c == nil {
			c = &describeSizesCall{addr: node.Addr, req: &logv1.DescribeSizesRequest{}}
			calls[node.Addr] = c
		}
		c.req.Partitions = append(c.req.Partitions, &logv1.DescribeSizesPartition{Topic: p.Topic, TopicId: t.ID[:], Partition: p.Partition})
		c.dst = append(c.dst, s)
	}
	rpcCtx, cancel := context.WithTimeout(ctx, describeLogDirsTimeout)
	defer cancel()
	forwardEach(rpcCtx, h, "describe log dirs", calls,
		(*logv1.DescribeSizesRequest).GetPartitions,
		func(ctx context.Context, cl logv1.LogServiceClient, r *logv1.DescribeSizesRequest) ([]*logv1.DescribeSizesPartitionResult, error) {
			resp, err := cl.DescribeSizes(ctx, r)
			return resp.GetPartitions(), err
		},
		func(s *logDirSlot, code int16) { s.code = code },
		func(s *logDirSlot, r *logv1.DescribeSizesPartitionResult) { s.size = r.GetSizeBytes() })

	byDir := map[string]map[string][]kmsg.DescribeLogDirsResponseDirTopicPartition{}
	for _, s := range slots {
		switch s.code {
		case 0:
		case kerr.UnknownTopicOrPartition.Code, kerr.UnknownTopicID.Code:
			continue
		default:
			dirErr[s.dir] = kerr.KafkaStorageError.Code
			continue
		}
		if byDir[s.dir] == nil {
			byDir[s.dir] = map[string][]kmsg.DescribeLogDirsResponseDirTopicPartition{}
		}
		rp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		rp.Partition, rp.Size, rp.OffsetLag, rp.IsFuture = s.partition, s.size, 0, false
		byDir[s.dir][s.topic] = append(byDir[s.dir][s.topic], rp)
	}
	dirs := make([]string, 0, len(dirErr))
	for d := range dirErr {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		rd := kmsg.NewDescribeLogDirsResponseDir()
		rd.Dir, rd.ErrorCode, rd.TotalBytes, rd.UsableBytes = d, dirErr[d], -1, -1
		topics := make([]string, 0, len(byDir[d]))
		for t := range byDir[d] {
			topics = append(topics, t)
		}
		sort.Strings(topics)
		for _, t := range topics {
			rt := kmsg.NewDescribeLogDirsResponseDirTopic()
			rt.Topic = t
			rt.Partitions = byDir[d][t]
			sort.Slice(rt.Partitions, func(i, j int) bool { return rt.Partitions[i].Partition < rt.Partitions[j].Partition })
			rd.Topics = append(rd.Topics, rt)
		}
		resp.Dirs = append(resp.Dirs, rd)
	}
	return resp, nil
}

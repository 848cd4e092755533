package handlers

import (
	"context"
	"sort"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
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
// * The request has no timeout field, so the calls are bounded by 30 s
//   (ops.PartitionSizes).
//
// Version notes:
// * v1: same as v0 (throttle after response); v2: flexible; v3: top-level
//   ErrorCode (always 0); v4: TotalBytes and UsableBytes, -1 (unknown: the
//   data is spread over nodes and object storage).

func init() { register(35, 0, 4, false, (*Handlers).handleDescribeLogDirs) }

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
	dirOf := make([]string, len(parts))
	for i, p := range parts {
		nodeID := p.Leader
		if nodeID == "" {
			nodeID = p.Home
		}
		mode := meta.StorageMode("")
		if t, ok := h.cache.Topic(p.Topic); ok && t.ID == p.TopicID {
			mode = t.StorageMode
		}
		dirOf[i] = logDirName(mode, nodeID)
	}
	sizes := h.ops.PartitionSizes(ctx, parts)
	var slots []*logDirSlot
	for i, p := range parts {
		r := sizes[i]
		if r.Err == kerr.UnknownTopicOrPartition {
			continue // deleted or re-created meanwhile
		}
		dir := dirOf[i]
		if _, ok := dirErr[dir]; !ok {
			dirErr[dir] = 0
		}
		slots = append(slots, &logDirSlot{dir: dir, topic: p.Topic, partition: p.Partition, size: r.Size, code: code(r.Err)})
	}

	byDir := map[string]map[string][]kmsg.DescribeLogDirsResponseDirTopicPartition{}
	for _, s := range slots {
		if s.code != 0 {
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

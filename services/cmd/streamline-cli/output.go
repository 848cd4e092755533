package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
)

// JSON output mirrors the admin API's messages with snake_case names,
// storage modes as their config values (local, hybrid, diskless) and
// 64-bit integers as JSON numbers.

type jsonRemoteStorage struct {
	BatchSizeBytes    *int64 `json:"batch_size_bytes,omitempty"`
	BatchTimeoutMs    *int64 `json:"batch_timeout_ms,omitempty"`
	UploadParallelism *int32 `json:"upload_parallelism,omitempty"`
	ReadCacheBytes    *int64 `json:"read_cache_bytes,omitempty"`
}

type jsonTopic struct {
	Name          string             `json:"name"`
	ID            string             `json:"id,omitempty"`
	Partitions    int32              `json:"partitions"`
	Replication   int32              `json:"replication_factor"`
	StorageMode   string             `json:"storage_mode"`
	RemoteStorage *jsonRemoteStorage `json:"remote_storage,omitempty"`
	Configs       map[string]string  `json:"configs"`
}

func topicJSON(t *adminv1.Topic) jsonTopic {
	out := jsonTopic{
		Name: t.GetName(), ID: t.GetId(), Partitions: t.GetPartitions(), Replication: t.GetReplicationFactor(),
		StorageMode: storageModeKey(t.GetStorageMode()), Configs: t.GetConfigs(),
	}
	if out.Configs == nil {
		out.Configs = map[string]string{}
	}
	if rs := t.GetRemoteStorage(); rs != nil {
		out.RemoteStorage = &jsonRemoteStorage{
			BatchSizeBytes: rs.BatchSizeBytes, BatchTimeoutMs: rs.BatchTimeoutMs,
			UploadParallelism: rs.UploadParallelism, ReadCacheBytes: rs.ReadCacheBytes,
		}
	}
	return out
}

type jsonPartition struct {
	Partition      int32    `json:"partition"`
	LeaderNode     string   `json:"leader_node"`
	LeaderEpoch    int32    `json:"leader_epoch"`
	Replicas       []string `json:"replicas"`
	ISR            []string `json:"isr"`
	GatewayLeader  int32    `json:"gateway_leader"`
	LogStartOffset int64    `json:"log_start_offset"`
	HighWatermark  int64    `json:"high_watermark"`
	SizeBytes      int64    `json:"size_bytes"` // -1: unknown
	OffsetsError   string   `json:"offsets_error,omitempty"`
}

type jsonGroupOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	MemberID  string `json:"member_id,omitempty"`
}

func groupOffsetJSON(o *adminv1.GroupOffset) jsonGroupOffset {
	return jsonGroupOffset{Topic: o.GetTopic(), Partition: o.GetPartition(), Committed: o.GetCommitted(), End: o.GetEnd(), Lag: o.GetLag(), MemberID: o.GetMemberId()}
}

type jsonGroupSummary struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
}

func groupSummaryJSON(g *adminv1.GroupSummary) jsonGroupSummary {
	return jsonGroupSummary{Group: g.GetGroup(), State: g.GetState(), ProtocolType: g.GetProtocolType(), Coordinator: g.GetCoordinator()}
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

// newFields writes "Label: value" lines, values aligned one space after
// the longest label.
func newFields(w io.Writer) *table {
	return &table{tw: tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)}
}

func (t *table) row(cols ...string) { fmt.Fprintln(t.tw, strings.Join(cols, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }

// offsetText shows an offset, "-" when unknown (negative).
func offsetText(o int64) string {
	if o < 0 {
		return "-"
	}
	return fmt.Sprint(o)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural is "1 record", "2 records".
func plural(n int64, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

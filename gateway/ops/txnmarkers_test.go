package ops_test

import (
	"testing"

	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TestWriteTxnMarkersRouting: markers are routed by partition like the
// other data calls, answered in order; a partition that does not exist is
// UNKNOWN_TOPIC_OR_PARTITION, a bad name INVALID_TOPIC_EXCEPTION, and a
// leader that cannot be reached the retriable NOT_LEADER_OR_FOLLOWER.
func TestWriteTxnMarkersRouting(t *testing.T) {
	v := newEnv(t)
	o := v.ops(ops.Config{})
	v.logNode("log-1", false)
	if _, e := v.create(o, "txn-data", 1); e != nil {
		t.Fatal(e)
	}
	mk := func(topic string, p int32) ops.TxnMarker {
		return ops.TxnMarker{Topic: topic, Partition: p, ProducerID: 7, ProducerEpoch: 1, Commit: true, CoordinatorEpoch: 3}
	}
	got := o.WriteTxnMarkers(v.ctx, 0, []ops.TxnMarker{mk("txn-data", 1), mk("missing", 0), mk("txn-data", 5), mk("bad name", 0)})
	want := []*kerr.Error{kerr.NotLeaderForPartition, kerr.UnknownTopicOrPartition, kerr.UnknownTopicOrPartition, kerr.InvalidTopicException}
	if len(got) != len(want) {
		t.Fatalf("%d answers for %d markers", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("marker %d: %v, want %v", i, got[i], want[i])
		}
	}
}

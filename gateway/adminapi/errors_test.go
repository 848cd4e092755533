package adminapi

import (
	"testing"

	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestOpsStatusSaysItOnce checks that a failed operation becomes a status
// whose message says what is wrong once: no Kafka code name in front of a
// message that already says it, the field first for invalid arguments,
// the Kafka name only for failures the gRPC code alone would hide.
func TestOpsStatusSaysItOnce(t *testing.T) {
	for _, tc := range []struct {
		e    *ops.Error
		code codes.Code
		msg  string
	}{
		{&ops.Error{Code: kerr.TopicAlreadyExists, Field: "name", Msg: "topic events already exists"}, codes.AlreadyExists, "topic events already exists"},
		{&ops.Error{Code: kerr.UnknownTopicOrPartition, Field: "name", Msg: "topic x does not exist"}, codes.NotFound, "topic x does not exist"},
		{&ops.Error{Code: kerr.InvalidPartitions, Field: "partitions", Msg: "number of partitions 0 must be between 1 and 10000"}, codes.InvalidArgument, "partitions: number of partitions 0 must be between 1 and 10000"},
		{&ops.Error{Code: kerr.InvalidConfig, Field: "storage_mode", Msg: "storage.mode=diskless needs an object store: none"}, codes.InvalidArgument, "storage_mode: storage.mode=diskless needs an object store: none"},
		{&ops.Error{Code: kerr.RequestTimedOut, Msg: "metadata store: context deadline exceeded"}, codes.DeadlineExceeded, "REQUEST_TIMED_OUT: metadata store: context deadline exceeded"},
		{&ops.Error{Code: kerr.InvalidReplicationFactor, Msg: "no live log-service nodes"}, codes.Unavailable, "INVALID_REPLICATION_FACTOR: no live log-service nodes"},
		{&ops.Error{Code: kerr.NonEmptyGroup, Field: "group", Msg: `group "g" has 1 active members (state Stable); stop them before changing its offsets`}, codes.FailedPrecondition, `group "g" has 1 active members (state Stable); stop them before changing its offsets`},
		{&ops.Error{Code: kerr.CoordinatorNotAvailable, Field: "group"}, codes.Unavailable, "COORDINATOR_NOT_AVAILABLE: " + kerr.CoordinatorNotAvailable.Description},
	} {
		st := status.Convert(opsStatus(tc.e))
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("%s %q: got %v %q, want %v %q", tc.e.Code.Message, tc.e.Msg, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
}

// TestLagCountsFromWhatTheConsumerReads: no commit, or a commit below the
// log start, counts from the log start; an unknown start gives -1 then.
func TestLagCountsFromWhatTheConsumerReads(t *testing.T) {
	start := func(o int64) ops.ListedOffset { return ops.ListedOffset{Offset: o} }
	unknown := ops.ListedOffset{Offset: -1, Err: kerr.NotLeaderForPartition}
	for _, tc := range []struct {
		committed int64
		start     ops.ListedOffset
		end, want int64
	}{
		{10, start(0), 30, 20},
		{-1, start(5), 30, 25},
		{2, start(5), 30, 25},
		{30, start(0), 30, 0},
		{10, unknown, 30, 20},
		{-1, unknown, 30, -1},
	} {
		if got := lag(tc.committed, tc.start, tc.end); got != tc.want {
			t.Errorf("lag(committed %d, start %+v, end %d) = %d, want %d", tc.committed, tc.start, tc.end, got, tc.want)
		}
	}
}
